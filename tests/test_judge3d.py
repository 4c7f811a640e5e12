"""The shipped voxel judge: it reads real shapes3d test shapes at 16^3 and 32^3, resamples grids of
other sizes, and counts matches per class; weights load from the package or from a folder."""

from __future__ import annotations

import pytest
import torch

from rnnimg.judge3d import (
    WEIGHTS,
    ShapeJudge,
    load_shape_judge,
    match_counts,
    resample,
    shape_match_statistics,
    shapes,
)


@pytest.mark.parametrize("size", [16, 32])
def test_shipped_judge_reads_real_test_shapes(size):
    x, y = shapes("test", size, 48)  # 6 of each class
    accuracy = float((load_shape_judge().classify(x) == y).double().mean())
    assert accuracy >= 0.85, accuracy


def test_resample_takes_block_means_of_multiples_and_nearest_voxels_otherwise():
    x = (torch.rand(2, 32, 32, 32, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    down = resample(x)
    assert down.shape == (2, 16, 16, 16)
    assert torch.allclose(down[1, 3, 4, 5], x[1, 6:8, 8:10, 10:12].mean())
    assert torch.equal(resample(down), down)
    odd = resample(x[:, :24, :24, :24])
    assert odd.shape == (2, 16, 16, 16) and set(odd.unique().tolist()) <= {0.0, 1.0}


def test_match_counts_are_per_class_sums():
    out = match_counts(torch.tensor([0, 1, 1, 7]), torch.tensor([0, 1, 2, 7]))
    assert out["match_per_class"].tolist() == [1, 1, 0, 0, 0, 0, 0, 1]
    assert out["judged_per_class"].tolist() == [1, 1, 1, 0, 0, 0, 0, 1]


def test_weights_load_from_a_folder_and_samples_are_scored(tmp_path):
    from safetensors.torch import save_file

    from rnnimg.models import create_model

    torch.manual_seed(0)
    judge = ShapeJudge()
    save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, str(tmp_path / WEIGHTS))
    loaded = load_shape_judge(tmp_path)
    x = torch.rand(3, 16, 16, 16)
    assert torch.equal(loaded(x), judge(x))
    model = create_model("voxscan", "debug", voxel_size=8, num_classes=8).eval()
    stats = shape_match_statistics(model, torch.tensor([0, 3, 3]), loaded, torch.Generator().manual_seed(0))
    assert stats["judged_per_class"].tolist() == [1, 0, 0, 2, 0, 0, 0, 0]
    assert 0 <= stats["match_per_class"].sum() <= 3
