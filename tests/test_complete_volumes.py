"""``rnnimg complete`` on voxel files (issue 20): a voxel generator completes a .npy/.npz/.binvox
grid through the task layer, keeps the known voxels exactly, writes the grids, a picture and
meshes; every bad input is one line, exit 2, and nothing is written."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg.cli import main
from rnnimg.data.masks import parse_volume_mask
from rnnimg.errors import InputError, RnnImgError
from rnnimg.geometry.mesh import read_obj
from rnnimg.geometry.voxio import binvox_bytes, load_voxels
from rnnimg.models import create_model

D = 6


def voxel_model():
    torch.manual_seed(0)
    model = create_model("voxscan", "debug", voxel_size=D, num_classes=2, class_names=("chair", "mug"))
    with torch.no_grad():
        model.head_out.bias.fill_(-0.5)  # some voxels filled, some empty
    return model.eval()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    voxel_model().save_pretrained(folder / "voxscan")
    create_model("pixelrnn", "debug").save_pretrained(folder / "pixelrnn")
    return folder


@pytest.fixture()
def shape(tmp_path):
    """A random 0/1 grid of the model's size, as .npy, .npz and .binvox."""
    grid = (np.random.default_rng(3).random((D, D, D)) < 0.4).astype(np.float32)
    np.save(tmp_path / "shape.npy", grid)
    np.savez(tmp_path / "shape.npz", voxels=grid)
    (tmp_path / "shape.binvox").write_bytes(binvox_bytes(grid > 0))
    return grid


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".binvox"])
def test_cli_completes_a_voxel_file_and_keeps_the_known_voxels_exactly(runs, tmp_path, shape, capsys, suffix):
    out = tmp_path / ("done.npz" if suffix == ".npz" else "done.npy")  # (n, D, D, D) either way
    picture, mesh = tmp_path / "grid.png", tmp_path / "m.obj"
    args = ["complete", str(runs / "voxscan"), str(tmp_path / f"shape{suffix}"), "-n", "3", "-o", str(out),
            "--picture", str(picture), "--mesh", str(mesh), "--label", "mug"]
    assert main(args) == 0, capsys.readouterr().err
    done = np.load(out)["voxels"] if suffix == ".npz" else np.load(out)
    assert done.shape == (3, D, D, D) and set(np.unique(done)) <= {0.0, 1.0}
    known = parse_volume_mask("upper-half", D).numpy()  # the default: the lower half is kept
    assert np.array_equal(done[:, known], np.broadcast_to(shape, done.shape)[:, known])
    assert not np.array_equal(done[0], done[1]) or not np.array_equal(done[1], done[2])  # draws differ
    with Image.open(picture) as img:  # two cameras x (the known voxels + 3 completions) of 64 px
        assert img.size == (4 * 66 + 2, 2 * 66 + 2)
    meshes = sorted(tmp_path.glob("m_*.obj"))
    assert [p.name for p in meshes] == ["m_000.obj", "m_001.obj", "m_002.obj"] and not mesh.exists()
    obj = read_obj(meshes[0])
    assert len(obj.faces) and obj.faces.max() < len(obj.vertices) and obj.faces.shape[1] == 3
    assert "3 completion(s)" in capsys.readouterr().out
    assert main(args) == 2  # nothing is overwritten without --overwrite
    assert "already exists" in capsys.readouterr().err


def test_one_completion_is_a_voxel_file_again_and_masks_name_the_hidden_part(runs, tmp_path, shape):
    mask = np.zeros((D, D, D), np.float32)
    mask[:, :, D // 2:] = 1  # the right half (x >= D / 2) hidden
    np.save(tmp_path / "mask.npy", mask)
    for spec in ("front-half", "box:1,2,0,3,3,6", str(tmp_path / "mask.npy")):
        out = tmp_path / f"one{len(spec)}.binvox"
        assert main(["complete", str(runs / "voxscan"), str(tmp_path / "shape.npy"), "-n", "1",
                     "-o", str(out), "--mask", spec]) == 0
        done = load_voxels(out, size=D)  # one grid (D, D, D): readable as a voxel file again
        known = parse_volume_mask(spec, D).numpy()
        assert np.array_equal(done[known], shape[known])
    assert np.array_equal(parse_volume_mask(str(tmp_path / "mask.npy"), D).numpy(),
                          parse_volume_mask("right-half", D).numpy())
    front = parse_volume_mask("front-half", D)
    assert not front[D // 2:].any() and front[:D // 2].all()  # the front is +z, index z >= D / 2


def test_the_task_layer_completes_voxel_grids(shape):
    from rnnimg.tasks import complete, get_task

    model = voxel_model()
    voxels = torch.from_numpy(shape).expand(2, -1, -1, -1)
    known = parse_volume_mask("lower-half", D).expand(2, -1, -1, -1)
    assert get_task("complete").infer is complete
    done = complete(model, voxels, known, label="chair", generator=torch.Generator().manual_seed(0))
    assert done.shape == voxels.shape and torch.equal(done[known], voxels[known])
    with pytest.raises(InputError, match="nothing to complete"):
        complete(model, voxels, torch.ones_like(known))
    with pytest.raises(InputError, match="bool mask"):
        complete(model, voxels, known.float())
    with pytest.raises(InputError, match=r"resample it to 6\^3"):
        complete(model, voxels[:, :4, :4, :4], known[:, :4, :4, :4])
    with pytest.raises(RnnImgError, match="unknown class 'sofa'"):
        complete(model, voxels, known, label="sofa")


def truncated_binvox(path, shape):
    data = binvox_bytes(shape > 0)
    path.write_bytes(data[:-2])  # a whole (value, count) pair short


@pytest.mark.parametrize("problem,message", [
    ("flat", "must be 3-D"),
    ("size", "the model takes 6x6x6"),
    ("header", "is not a .binvox file"),
    ("truncated", "body is truncated"),
    ("label", "unknown class 'sofa'"),
    ("mesh_suffix", "--mesh"),
    ("grid_suffix", "ends in .txt"),
    ("binvox_many", "holds one grid"),
    ("mask", "unknown mask 'middle'"),
    ("box", "inside the 6^3 grid"),
    ("image_to_voxel_model", "completes voxel grids"),
    ("voxels_to_image_model", "which completes images"),
    ("picture_for_image", "--picture is for voxel files"),
])
def test_bad_input_is_one_line_and_writes_nothing(runs, tmp_path, shape, capsys, problem, message):
    run, source = runs / "voxscan", tmp_path / "shape.npy"
    out = tmp_path / "out.npy"
    extra = []
    if problem == "flat":
        np.save(source, np.zeros((D, D), np.float32))
    elif problem == "size":
        np.save(source, np.zeros((D + 2,) * 3, np.float32))
    elif problem == "header":
        source = tmp_path / "bad.binvox"
        source.write_bytes(b"#voxels 2\ndim 6 6 6\ndata\n" + bytes([0, 216]))
    elif problem == "truncated":
        source = tmp_path / "cut.binvox"
        truncated_binvox(source, shape)
    elif problem == "label":
        extra = ["--label", "sofa"]
    elif problem == "mesh_suffix":
        extra = ["--mesh", str(tmp_path / "m.stl")]
    elif problem == "grid_suffix":
        out = tmp_path / "out.txt"
    elif problem == "binvox_many":
        out = tmp_path / "out.binvox"
    elif problem == "mask":
        extra = ["--mask", "middle"]
    elif problem == "box":
        extra = ["--mask", "box:0,0,0,7,1,1"]
    elif problem == "image_to_voxel_model":
        source = tmp_path / "digit.png"
        Image.fromarray(np.zeros((D, D), np.uint8)).save(source)
        out = tmp_path / "out.png"
    elif problem == "voxels_to_image_model":
        run = runs / "pixelrnn"
    elif problem == "picture_for_image":
        run, source, out = runs / "pixelrnn", tmp_path / "digit.png", tmp_path / "out.png"
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(source)
        extra = ["--picture", str(tmp_path / "grid.png")]
    before = set(tmp_path.iterdir())
    if source.suffix != ".png":  # a second output, so that "nothing written" means both
        extra += ["--picture", str(tmp_path / "pic.png")]
    code = main(["complete", str(run), str(source), "-n", "2", "-o", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert set(tmp_path.iterdir()) == before  # nothing written
