"""ReNet sweeps, ReSeg / U-Net segmenters and their pooled evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from rnnimg import create_model, list_models
from rnnimg.data import load_dataset
from rnnimg.errors import RnnImgError
from rnnimg.metrics import confusion_matrix, mean_iou, segmentation_scores
from rnnimg.nn.renet import ReNetLayer

# the non-recurrent segmenter every recurrent one is compared with, at a matched size (docs/architecture.md);
# the segmenters themselves come from the registry, so a new one is tested without edits
BASELINE = "unet"

# --- ReNet: receptive fields ----------------------------------------------------------------------


def _footprint(fn, x, i, j):
    """Which input pixels (H, W) the output at grid cell (i, j) depends on (any channel)."""
    x = x.clone().requires_grad_(True)
    out = fn(x)
    out[:, :, i, j].sum().backward()
    return x.grad.abs().sum(dim=(0, 1)) > 0


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_renet_sweeps_see_their_row_their_column_and_then_the_whole_image(cell):
    """With 2x2 patches on a 7x6 map (padded to 8x6: a 4x3 grid of patches): the row sweep at patch
    (i, j) depends on exactly the pixels of patch row i; the column sweep alone on exactly patch
    column j; a whole ReNet layer (rows, then columns) on every pixel, and so do two layers."""
    torch.manual_seed(0)
    layer = ReNetLayer(2, 3, patch_size=2, cell=cell).double()
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64)
    i, j = 1, 2
    rows = _footprint(lambda t: layer.sweep_rows(layer.patches(t)), x, i, j)
    expected = torch.zeros(7, 6, dtype=torch.bool)
    expected[2 * i:2 * i + 2, :] = True
    assert torch.equal(rows, expected)

    cols_layer = ReNetLayer(2 * 4, 3, patch_size=1, cell=cell).double()  # columns alone on a grid
    grid = torch.randn(1, 6, 4, 3, dtype=torch.float64)  # (B, 2H, h, w) as sweep_columns takes
    cols = _footprint(cols_layer.sweep_columns, grid, i, j)
    expected = torch.zeros(4, 3, dtype=torch.bool)
    expected[:, j] = True
    assert torch.equal(cols, expected)

    assert _footprint(layer, x, i, j).all()  # rows then columns: the whole image
    stack = torch.nn.Sequential(layer, ReNetLayer(6, 3, 1, cell).double())
    assert _footprint(stack, x, 0, 0).all()
    assert layer(x).shape == (1, 6, 4, 3)


def _direction_footprints(sweep, grid, i, j, hidden):
    """Which grid cells (h, w) the forward and the backward half of ``sweep``'s output at (i, j)
    depend on."""
    grid = grid.clone().requires_grad_(True)
    out = sweep(grid)  # (B, 2H, h, w): [forward, backward] halves, as torch's bidirectional RNNs
    seen = []
    for half in (slice(0, hidden), slice(hidden, 2 * hidden)):
        (grad,) = torch.autograd.grad(out[:, half, i, j].sum(), grid, retain_graph=True)
        seen.append(grad.abs().sum(dim=(0, 1)) > 0)
    return seen


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_each_sweep_direction_sees_its_own_side_at_every_position(cell):
    """Along a 5-patch row (column), the forward half at position j sees positions 0..j of its row
    (column) and the backward half positions j..4, at the first, middle and last positions. (At
    the last one a forward-only sweep already sees the whole row, so that is not enough.) One ReNet
    layer then sees the whole image from its first and middle cells as well."""
    torch.manual_seed(0)
    hidden = 3
    layer = ReNetLayer(2, hidden, patch_size=1, cell=cell).double()
    grid = torch.randn(2, 2, 4, 5, dtype=torch.float64)  # (B, C, h=4, w=5)
    for j in (0, 2, 4):
        forward, backward = _direction_footprints(layer.sweep_rows, grid, 1, j, hidden)
        expected = torch.zeros(4, 5, dtype=torch.bool)
        expected[1, :j + 1] = True
        assert torch.equal(forward, expected), f"row sweep, forward half at column {j}"
        expected = torch.zeros(4, 5, dtype=torch.bool)
        expected[1, j:] = True
        assert torch.equal(backward, expected), f"row sweep, backward half at column {j}"
    columns = torch.randn(2, 2 * hidden, 5, 4, dtype=torch.float64)  # (B, 2H, h=5, w=4)
    for i in (0, 2, 4):
        forward, backward = _direction_footprints(layer.sweep_columns, columns, i, 1, hidden)
        expected = torch.zeros(5, 4, dtype=torch.bool)
        expected[:i + 1, 1] = True
        assert torch.equal(forward, expected), f"column sweep, forward half at row {i}"
        expected = torch.zeros(5, 4, dtype=torch.bool)
        expected[i:, 1] = True
        assert torch.equal(backward, expected), f"column sweep, backward half at row {i}"
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64)
    for i, j in ((0, 0), (2, 2), (1, 3)):
        assert _footprint(layer, x, i, j).all(), f"one layer at ({i}, {j}) misses part of the image"


def test_renet_fold_equals_running_every_row_and_column_on_its_own():
    """Folding rows (columns) into the batch gives what a loop over rows (columns) gives."""
    torch.manual_seed(0)
    layer = ReNetLayer(3, 4, patch_size=1).double()
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    rows = layer.sweep_rows(x)
    for b in range(2):
        for r in range(5):
            ref, _ = layer.rows(x[b, :, r].T.unsqueeze(0))  # (1, W, 2H)
            assert torch.allclose(rows[b, :, r], ref[0].T)
    out = layer(x)
    for b in range(2):
        for c in range(6):
            ref, _ = layer.columns(rows[b, :, :, c].T.unsqueeze(0))  # (1, H, 2H)
            assert torch.allclose(out[b, :, :, c], ref[0].T)


# --- segmenters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_models("segment"))
def test_segment_takes_any_size_and_loss_is_cross_entropy_ignoring_255(name):
    torch.manual_seed(0)
    model = create_model(name, "debug").eval()
    image = torch.rand(2, 1, 29, 35)
    labels = model.segment(image)
    assert labels.shape == (2, 29, 35) and labels.dtype == torch.long
    assert labels.min() >= 0 and labels.max() < model.config.num_classes
    batch = model.example_batch(3, torch.Generator().manual_seed(1))
    batch["mask"][:, :5] = 255
    with torch.no_grad():
        logits = model(batch["image"])
        keep = batch["mask"] != 255
        expected = -logits.log_softmax(1).gather(1, batch["mask"].clamp(max=10)[:, None])[:, 0][keep].mean()
        assert torch.allclose(model.loss(batch).loss, expected, atol=1e-6)
        batch["mask"][:] = 255  # nothing to score: a zero loss, not NaN
        assert model.loss(batch).loss.item() == 0.0


def test_grey_input_to_a_colour_model_is_one_line_error():
    model = create_model("reseg", "debug", channels=3)
    with pytest.raises(RnnImgError, match="1 channel.*takes 3"):
        model.segment(torch.rand(1, 1, 32, 32))


def test_config_rejects_bad_fields():
    with pytest.raises(RnnImgError, match="patch_sizes"):
        create_model("reseg", "debug", patch_sizes=(2,))
    with pytest.raises(RnnImgError, match="class_names"):
        create_model("reseg", "debug", num_classes=3, class_names=("a", "b"))
    with pytest.raises(RnnImgError, match="cell"):
        create_model("reseg", "debug", cell="rnn")
    with pytest.raises(RnnImgError, match="widths"):
        create_model("unet", "debug", widths=(8,))
    with pytest.raises(RnnImgError, match="layout"):
        create_model("scanseg", "debug", layout="diagonal")
    with pytest.raises(RnnImgError, match="scan_hidden"):
        create_model("scanseg", "debug", scan_hidden=0)
    with pytest.raises(RnnImgError, match="bottleneck_convs"):
        create_model("scanseg", "debug", bottleneck_convs=0)


@pytest.mark.parametrize("name", [n for n in list_models("segment") if n != BASELINE])
def test_baseline_is_parameter_matched(name):
    count = [sum(p.numel() for p in create_model(n, "scenes").parameters()) for n in (name, BASELINE)]
    assert abs(count[0] - count[1]) / count[0] < 0.05, count


@pytest.mark.parametrize("layout, local_conv", [("renet", False), ("cross", False), ("renet", True)])
def test_scanseg_logit_in_one_corner_depends_on_the_opposite_corner(layout, local_conv):
    """The scan blocks give every pixel's logits the whole image, far beyond the convolutions'
    reach: the logits at (0, 0) change with the pixel at (31, 31), and those at (31, 0) with (0, 31)."""
    torch.manual_seed(0)
    model = create_model("scanseg", "debug", layout=layout, local_conv=local_conv).double().eval()
    image = torch.rand(1, 1, 32, 32, dtype=torch.float64, requires_grad=True)
    logits = model(image)
    for (i, j), (y, x) in (((0, 0), (31, 31)), ((31, 0), (0, 31))):
        (grad,) = torch.autograd.grad(logits[0, :, i, j].sum(), image, retain_graph=True)
        assert grad[0, 0, y, x].abs() > 0


# --- metrics: pooled, absent classes, ignore ------------------------------------------------------


def _numpy_scores(pred, target, k, ignore=255):
    keep = target != ignore
    p, t = pred[keep], target[keep]
    ious = np.full(k, np.nan)
    for c in range(k):
        union = np.sum((p == c) | (t == c))
        if union:
            ious[c] = np.sum((p == c) & (t == c)) / union
    return np.nanmean(ious), ious, np.mean(p == t)


def test_segmentation_scores_match_numpy_with_absent_classes_and_ignore():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, (3, 10, 10))  # classes 4 and 5 never occur in the target
    target[rng.random(target.shape) < 0.15] = 255
    pred = np.where(rng.random(target.shape) < 0.6, target, rng.integers(0, 5, target.shape))
    pred[pred == 255] = 4  # class 4 only ever predicted (IoU 0); class 5 absent from both
    conf = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 6)
    scores = segmentation_scores(conf)
    miou, ious, acc = _numpy_scores(pred, target, 6)
    assert np.isnan(ious[5]) and ious[4] == 0
    np.testing.assert_allclose(scores["iou_per_class"].numpy(), ious, rtol=1e-12)
    assert scores["miou"].item() == pytest.approx(miou, rel=1e-6)
    assert scores["pixel_accuracy"].item() == pytest.approx(acc, rel=1e-6)


def _fixed_prediction_model(preds):
    """A reseg whose logits are one-hot of ``preds`` (consumed batch by batch)."""
    model = create_model("reseg", "debug").eval()
    queue = list(preds)
    model.logits = lambda image: F.one_hot(queue.pop(0), 11).permute(0, 3, 1, 2).float()
    return model


def test_evaluation_is_pooled_over_the_split_not_averaged_over_batches():
    """Two batches: a large one scored well and a tiny one scored badly. The reduced mIoU equals
    the numpy mIoU of all pixels together, and differs from the mean of per-batch mIoUs."""
    rng = np.random.default_rng(1)
    t1 = rng.integers(0, 3, (4, 16, 16))
    p1 = np.where(rng.random(t1.shape) < 0.9, t1, (t1 + 1) % 3)
    t2 = rng.integers(0, 3, (1, 4, 4))
    t2[0, 0] = 255
    p2 = np.where(rng.random(t2.shape) < 0.2, t2, 7)  # mostly a class the targets never have
    p2[t2 == 255] = 0
    model = _fixed_prediction_model([torch.from_numpy(p1), torch.from_numpy(p2)])
    total = {}
    for t in (t1, t2):
        stats = model.evaluation_statistics({"image": torch.zeros(len(t), 1, *t.shape[1:]),
                                             "mask": torch.from_numpy(t)})
        assert all(v.dtype == torch.float64 for v in stats.values())
        total = {k: total.get(k, 0) + v for k, v in stats.items()}
    result = model.reduce_statistics(total)
    both_p = np.concatenate([p1.reshape(-1), p2.reshape(-1)])
    both_t = np.concatenate([t1.reshape(-1), t2.reshape(-1)])
    miou, ious, acc = _numpy_scores(both_p, both_t, 11)
    assert result["miou"] == pytest.approx(miou, rel=1e-6)
    assert result["pixel_accuracy"] == pytest.approx(acc, rel=1e-6)
    np.testing.assert_allclose(result["iou_per_class"], ious, rtol=1e-9)
    assert total["count"].item() == 5
    per_batch = np.mean([mean_iou(torch.from_numpy(p), torch.from_numpy(t), 11).item()
                         for p, t in ((p1, t1), (p2, t2))])
    assert abs(per_batch - result["miou"]) > 0.1


# --- dataset check ------------------------------------------------------------------------------


class _Items(torch.utils.data.Dataset):
    def __init__(self, item):
        self.item = item

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.item


def test_check_dataset_names_the_problem():
    model = create_model("reseg", "debug")
    good = {"image": torch.rand(1, 32, 32), "mask": torch.zeros(32, 32, dtype=torch.long)}
    model.check_dataset(_Items(good), "ok")
    bad = dict(good, mask=torch.full((32, 32), 11))
    with pytest.raises(RnnImgError, match="label 11.*neither a class \\(0..10\\) nor 255"):
        model.check_dataset(_Items(bad), "mine")
    model.check_dataset(_Items(dict(good, mask=torch.full((32, 32), 255))), "ignored-only")
    with pytest.raises(RnnImgError, match="3-channel images"):
        model.check_dataset(_Items(dict(good, image=torch.rand(3, 32, 32))), "rgb")
    with pytest.raises(RnnImgError, match="no masks"):
        model.check_dataset(load_dataset("mnist-5k", "test"), "mnist-5k")
    small = create_model("reseg", "debug", num_classes=5)
    with pytest.raises(RnnImgError, match="mnist-scenes: mask label 10"):
        small.check_dataset(load_dataset("mnist-scenes", "val", val_scenes=2), "mnist-scenes")


# --- learning -----------------------------------------------------------------------------------


def test_reseg_overfits_a_few_scenes():
    """Four 32x32 scenes, 250 Adam steps: mIoU (pooled over the 4) well above the 'all background'
    solution's ~0.09; this is what caught the GRU saturation that BatchNorm fixed."""
    torch.manual_seed(0)
    model = create_model("reseg", "scenes", image_size=32)
    data = load_dataset("mnist-scenes", "val", val_scenes=4, **model.dataset_options())
    batch = default_collate([data[i] for i in range(4)])
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(250):
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    result = model.reduce_statistics(model.evaluation_statistics(batch))
    assert result["miou"] > 0.9, result


def test_save_load_with_gru_weights_sharing_one_buffer(tmp_path):
    """cuDNN flattens a GRU's weights into one buffer (PITFALLS.md); reproduced on the CPU, the
    model still saves and loads to the same outputs."""
    from rnnimg import load_pretrained

    torch.manual_seed(0)
    model = create_model("reseg", "debug").eval()
    for layer in model.renet:
        for gru in (layer.rows, layer.columns):
            params = list(gru.parameters())
            flat = torch.cat([p.detach().flatten() for p in params])
            offset = 0
            for p in params:
                p.data = flat[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
    image = torch.rand(2, 1, 32, 32)
    model.save_pretrained(tmp_path)
    assert torch.equal(load_pretrained(tmp_path).segment(image), model.segment(image))


def test_validation_miou_is_pooled_over_the_validation_split(tmp_path):
    """val/miou in metrics.csv is the mIoU of all validation predictions together (one confusion
    matrix), not the mean of per-batch mIoUs (val/miou_batch), which differs."""
    from torch.utils.data import DataLoader

    from rnnimg.models.checkpoint import load_pretrained
    from rnnimg.train import TrainSettings, train
    from rnnimg.train.data import build_datasets
    from rnnimg.viz import read_metrics_csv

    settings = TrainSettings(model="reseg", preset="debug", data="mnist-scenes", max_steps=3, batch_size=4,
                             accelerator="cpu", progress=False, val_batches=None, val_every_n_steps=3,
                             data_options={"train_scenes": 60, "val_scenes": 20}, out=str(tmp_path / "run"))
    run = train(settings)
    logged = read_metrics_csv(run / "metrics.csv")
    (step, pooled), = logged["val/miou"]  # validated once, after the last step: the saved weights
    assert step == 2
    model = load_pretrained(run).eval()
    _, val_set = build_datasets(settings.resolved(), model)
    preds, masks = [], []
    with torch.no_grad():
        for batch in DataLoader(val_set, batch_size=4):
            preds.append(model.segment(batch["image"]))
            masks.append(batch["mask"])
    assert sum(len(m) for m in masks) == len(val_set) >= 8  # several batches
    together = mean_iou(torch.cat(preds), torch.cat(masks), model.config.num_classes).item()
    assert pooled == pytest.approx(together, abs=1e-6)
    per_batch = np.mean([mean_iou(p, m, model.config.num_classes).item() for p, m in zip(preds, masks)])
    assert logged["val/miou_batch"][0][1] == pytest.approx(per_batch, abs=1e-6)
    assert abs(per_batch - together) > 1e-4  # so the test can tell the two apart
