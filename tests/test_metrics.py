"""Each metric against an independent numpy / scikit-image computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from rnnimg import metrics


def _pair(b=3, t=4, c=1, h=16, w=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(b, t, c, h, w, generator=gen)
    pred = (target + 0.2 * torch.randn(b, t, c, h, w, generator=gen)).clamp(0, 1)
    return pred, target


def test_nats_to_bits_per_dim():
    assert metrics.nats_to_bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)


def test_mse_and_mae_sum_over_pixels_mean_over_clips():
    pred, target = _pair(c=3)
    p, t = pred.double().numpy(), target.double().numpy()
    mse = np.array([np.mean([((p[b, k] - t[b, k]) ** 2).sum() for b in range(3)]) for k in range(4)])
    mae = np.array([np.mean([np.abs(p[b, k] - t[b, k]).sum() for b in range(3)]) for k in range(4)])
    assert metrics.mse_per_frame(pred, target).shape == (4,)
    np.testing.assert_allclose(metrics.mse_per_frame(pred, target).numpy(), mse, rtol=1e-6)
    np.testing.assert_allclose(metrics.mae_per_frame(pred, target).numpy(), mae, rtol=1e-6)
    # Summed over pixels, not averaged: one pixel off by 0.5 in a 16x16 frame costs 0.25.
    one = target.clone()
    one[:, 2, 0, 3, 3] += 0.5
    assert metrics.mse_per_frame(one, target)[2].item() == pytest.approx(0.25)
    assert metrics.mse_per_frame(one, target)[1].item() == 0.0


def test_psnr_per_clip_then_mean():
    pred, target = _pair()
    p, t = pred.double().numpy(), target.double().numpy()
    expected = np.array([np.mean([10 * np.log10(1 / np.mean((p[b, k] - t[b, k]) ** 2))
                                  for b in range(3)]) for k in range(4)])
    np.testing.assert_allclose(metrics.psnr(pred, target).numpy(), expected, rtol=1e-6)
    # A uniform error of 0.1 is 20 dB exactly.
    base = torch.full((2, 3, 1, 8, 8), 0.5)
    np.testing.assert_allclose(metrics.psnr(base + 0.1, base).numpy(), 20.0, rtol=1e-6)


def test_psnr_is_computed_in_float_not_wrapped_uint8():
    # pred below target: OpenSTL's legacy path, uint8 frames subtracted in uint8, wraps 51 - 76 to
    # 231 and reports ~0.9 dB for a frame that is off by 0.1 everywhere (20 dB).
    target = torch.full((1, 1, 1, 4, 4), 0.3)
    pred = torch.full((1, 1, 1, 4, 4), 0.2)
    as_uint8 = [(x * 255).round().to(torch.uint8) for x in (pred, target)]
    wrapped = (as_uint8[0] - as_uint8[1]).double().pow(2).mean()  # the legacy computation
    legacy_db = 10 * math.log10(255**2 / wrapped.item())
    assert metrics.psnr(pred, target).item() == pytest.approx(20.0, abs=1e-4)
    assert abs(legacy_db - 20.0) > 15  # the case tells the two apart
    # Integer frames have no known range and wrap when subtracted: refused, not rescaled.
    for fn in (metrics.psnr, metrics.mse_per_frame, metrics.ssim):
        with pytest.raises(ValueError, match="float frames"):
            fn(*as_uint8)


def _skimage_ssim(pred, target):
    """(T,) SSIM per frame averaged over clips, one scikit-image call per frame."""
    b, t = pred.shape[:2]
    expected = []
    for k in range(t):
        per_clip = []
        for i in range(b):
            x = pred[i, k].double().permute(1, 2, 0).numpy()
            y = target[i, k].double().permute(1, 2, 0).numpy()
            per_clip.append(structural_similarity(
                x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
                channel_axis=2))
        expected.append(np.mean(per_clip))
    return np.array(expected)


@pytest.mark.parametrize("channels,height,width", [(1, 64, 64), (3, 23, 37), (1, 11, 12)])
def test_ssim_matches_scikit_image(channels, height, width):
    pred, target = _pair(b=2, t=3, c=channels, h=height, w=width, seed=1)
    got = metrics.ssim(pred, target)
    assert got.dtype == torch.float32 and got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), _skimage_ssim(pred, target), rtol=0, atol=1e-5)
    assert metrics.ssim(target, target).numpy() == pytest.approx(np.ones(3), abs=1e-6)
    per_clip = metrics.ssim_per_clip(pred, target)  # additive: sum over clips / count = ssim
    assert per_clip.dtype == torch.float64 and per_clip.shape == (2, 3)
    np.testing.assert_allclose(per_clip.sum(0).numpy() / 2, got.numpy(), atol=1e-6)


def test_ssim_float32_keeps_digits_on_flat_and_nearly_equal_frames():
    # float32 is where the variance E[x^2] - E[x]^2 loses digits: mostly black Moving-MNIST-like
    # frames and predictions within 1e-3 of the truth, against scikit-image in float64.
    gen = torch.Generator().manual_seed(3)
    target = torch.zeros(4, 2, 1, 32, 32)
    target[..., 8:24, 6:20] = (torch.rand(4, 2, 1, 16, 14, generator=gen) > 0.5).float()
    near = (target + 1e-3 * torch.randn(target.shape, generator=gen)).clamp(0, 1)
    blurred = (0.6 * target + 0.4 * target.roll(1, dims=-1)).clamp(0, 1)
    for pred in (near, blurred):
        np.testing.assert_allclose(metrics.ssim(pred, target).numpy(), _skimage_ssim(pred, target),
                                   rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="11x11"):
        metrics.ssim(target[..., :10], target[..., :10])


def test_shape_mismatch_is_rejected():
    pred, target = _pair()
    with pytest.raises(ValueError):
        metrics.mse_per_frame(pred, target[:, :3])
    with pytest.raises(ValueError):
        metrics.psnr(pred[0], target[0])


def _numpy_miou(pred, target, k, ignore):
    keep = target != ignore
    p, t = pred[keep], target[keep]
    ious = []
    for c in range(k):
        union = np.sum((p == c) | (t == c))
        if union:
            ious.append(np.sum((p == c) & (t == c)) / union)
    return np.mean(ious)


def test_mean_iou_matches_numpy_and_ignores():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, (4, 12, 12))
    target[rng.random(target.shape) < 0.1] = 255
    pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, 5, target.shape))
    pred[pred == 255] = 0
    got = metrics.mean_iou(torch.from_numpy(pred), torch.from_numpy(target), num_classes=7)
    assert got.item() == pytest.approx(_numpy_miou(pred, target, 7, 255), rel=1e-6)


def test_mean_iou_hand_example():
    target = torch.tensor([[0, 0, 1, 255]])
    pred = torch.tensor([[0, 1, 1, 2]])  # the ignored pixel's prediction (2) does not count
    # class 0: I=1, U=2; class 1: I=1, U=2; class 2 absent from both once ignored: excluded
    assert metrics.mean_iou(pred, target, num_classes=4).item() == pytest.approx(0.5)
    with pytest.raises(ValueError):
        metrics.mean_iou(pred, torch.tensor([[0, 0, 9, 1]]), num_classes=4)
    # Pooled over the batch: summing confusion matrices equals scoring the concatenation.
    c = metrics.confusion_matrix(pred, target, 4) + metrics.confusion_matrix(target.clamp(max=3), target, 4)
    both = metrics.mean_iou(torch.cat([pred, target.clamp(max=3)]), torch.cat([target, target]), 4)
    assert metrics.mean_iou_from_confusion(c).item() == pytest.approx(both.item())


def test_ssim_in_chunks_equals_one_call(monkeypatch):
    import rnnimg.metrics as M

    gen = torch.Generator().manual_seed(0)
    pred, target = torch.rand(3, 5, 1, 16, 16, generator=gen), torch.rand(3, 5, 1, 16, 16, generator=gen)
    whole = M.ssim(pred, target)
    monkeypatch.setattr(M, "_SSIM_CHUNK", 4)  # 15 frames in chunks of 4, 4, 4, 3
    assert torch.allclose(M.ssim(pred, target), whole, atol=1e-6)
