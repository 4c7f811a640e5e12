"""``shapes3d``: fixed, balanced, named classes; views that are renders of the item's own voxels."""

import numpy as np
import pytest
import torch

from rnnimg import load_dataset
from rnnimg.data.shapes3d import SHAPE3D_CLASSES, make_shape
from rnnimg.errors import RnnImgError
from rnnimg.geometry.render import render_voxels


def test_items_have_the_reconstruct_batch_keys_and_named_balanced_classes():
    ds = load_dataset("shapes3d", "test", test_size=16, voxel_size=16, view_size=24, num_views=12)
    item = ds[3]
    assert item["views"].shape == (12, 1, 24, 24) and item["views"].dtype == torch.float32
    assert item["voxels"].shape == (16, 16, 16) and set(item["voxels"].unique().tolist()) <= {0.0, 1.0}
    assert item["azimuth"].shape == item["elevation"].shape == (12,)
    assert len(SHAPE3D_CLASSES) >= 8 and ds.class_names == SHAPE3D_CLASSES
    assert torch.bincount(ds.labels, minlength=8).tolist() == [2] * 8
    assert int(item["label"]) == 3
    assert len(set(item["azimuth"].tolist())) == 12


def test_views_are_renders_of_the_items_voxels_from_its_cameras():
    ds = load_dataset("shapes3d", "val", val_size=8, view_size=32, num_views=12)
    for i in (0, 5):
        item = ds[i]
        again = render_voxels(item["voxels"], item["azimuth"], item["elevation"], 32).shade[0]
        assert (item["views"][:, 0] - again).abs().max() <= 0.5 / 255 + 1e-6
        assert (item["views"] > 0).any()


def test_val_and_test_are_fixed_and_train_follows_the_seed():
    a = load_dataset("shapes3d", "test", test_size=8, voxel_size=16, view_size=16)
    b = load_dataset("shapes3d", "test", test_size=8, voxel_size=16, view_size=16, seed=7)
    assert all(torch.equal(a[i]["voxels"], b[i]["voxels"]) for i in range(8))
    val = load_dataset("shapes3d", "val", val_size=8, voxel_size=16, view_size=16)
    assert not torch.equal(val[0]["voxels"], a[0]["voxels"])
    t0 = load_dataset("shapes3d", "train", train_size=8, voxel_size=16, view_size=16)
    t1 = load_dataset("shapes3d", "train", train_size=8, voxel_size=16, view_size=16, seed=1)
    assert not torch.equal(t0[0]["voxels"], t1[0]["voxels"])
    fresh = load_dataset("shapes3d", "train", train_size=8, voxel_size=16, view_size=16)
    assert torch.equal(fresh[2]["views"], t0[2]["views"])  # a function of (seed, index)


@pytest.mark.parametrize("label", range(8))
def test_every_class_stands_in_the_grid_turned_at_random(label):
    shapes = [make_shape(label, np.random.default_rng([label, k]), 32) for k in range(4)]
    for s in shapes:
        assert 0.003 < s.mean() < 0.4, SHAPE3D_CLASSES[label]
        # nothing on the grid's sides (x or z borders), so any turn fits
        assert not s[0].any() and not s[-1].any() and not s[:, :, 0].any() and not s[:, :, -1].any()
        if SHAPE3D_CLASSES[label] != "plane":
            assert s[:, 1].any() and not s[:, 0].any()  # on the floor (y = -0.94: layer 1)
    # different proportions and turns: no two alike
    assert len({s.tobytes() for s in shapes}) == 4


def test_bad_options_are_one_line_errors():
    with pytest.raises(RnnImgError, match="voxel_size"):
        load_dataset("shapes3d", "test", voxel_size=4)
    with pytest.raises(RnnImgError, match="channels"):
        load_dataset("shapes3d", "test", channels=2)
    with pytest.raises(RnnImgError, match="takes no option"):
        load_dataset("shapes3d", "test", size=32)
