"""Voxel IoU at 3D-R2N2's 0.4 threshold equals an independent numpy computation and is pooled
over the split (sums of intersections over sums of unions), overall and per class."""

import numpy as np
import torch

from rnnimg.metrics import voxel_iou_per_shape, voxel_iou_pooled, voxel_iou_sums


def numpy_pooled_iou(prob, target, labels, k, threshold=0.4):
    inter, union = np.zeros(k), np.zeros(k)
    for p, t, c in zip(prob, target, labels):
        pred, true = p > threshold, t >= 0.5
        inter[c] += np.logical_and(pred, true).sum()
        union[c] += np.logical_or(pred, true).sum()
    return inter.sum() / union.sum(), inter / union


def test_pooled_iou_over_batches_equals_numpy_over_the_split():
    rng = np.random.default_rng(0)
    n, k = 10, 3
    target = (rng.random((n, 8, 8, 8)) < rng.uniform(0.05, 0.5, (n, 1, 1, 1))).astype(np.float32)
    prob = np.clip(target * 0.7 + rng.random(target.shape) * 0.5 - 0.1, 0, 1).astype(np.float32)
    prob[0] = 0.4  # exactly the threshold: not filled (> 0.4)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 0, 1, 2])
    want, want_per_class = numpy_pooled_iou(prob, target, labels, k)
    inter = torch.zeros(k, dtype=torch.float64)
    union = torch.zeros(k, dtype=torch.float64)
    for sl in (slice(0, 3), slice(3, 4), slice(4, 10)):  # uneven batches, summed
        i, u = voxel_iou_sums(torch.from_numpy(prob[sl]), torch.from_numpy(target[sl]),
                              torch.from_numpy(labels[sl]), k)
        inter += i
        union += u
    assert abs(voxel_iou_pooled(inter.sum(), union.sum()).item() - want) < 1e-12
    assert np.allclose(voxel_iou_pooled(inter, union).numpy(), want_per_class, atol=1e-12)
    # pooled is not the mean of per-shape IoUs (what averaging per batch would approach)
    per_shape = voxel_iou_per_shape(torch.from_numpy(prob), torch.from_numpy(target))
    assert abs(per_shape.mean().item() - want) > 1e-4
    assert per_shape[0].item() == 0.0  # nothing predicted above 0.4


def test_iou_extremes():
    t = torch.zeros(2, 4, 4, 4)
    t[:, :2] = 1
    i, u = voxel_iou_sums(t.clone(), t)
    assert voxel_iou_pooled(i, u).item() == 1.0
    i, u = voxel_iou_sums(1 - t, t)
    assert voxel_iou_pooled(i, u).item() == 0.0
    i, u = voxel_iou_sums(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2))
    assert torch.isnan(voxel_iou_pooled(i, u)).all()
