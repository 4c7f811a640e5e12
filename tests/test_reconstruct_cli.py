"""``rnnimg reconstruct``: views in, a mesh (and voxels, a turntable) out; bad input is one line."""

import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg import create_model
from rnnimg.cli import main
from rnnimg.geometry.mesh import read_obj
from rnnimg.geometry.voxio import load_voxels


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("r2n2", "debug")
    with torch.no_grad():  # a decoder bias that fills the middle: a mesh to write
        model.decoder.net[-1].bias.fill_(0.0)
    folder = tmp_path_factory.mktemp("run")
    model.save_pretrained(folder)
    return folder


def write_views(folder, sizes):
    paths = []
    for k, size in enumerate(sizes):
        path = folder / f"view{k}.png"
        Image.fromarray((np.random.default_rng(k).random((size, size)) * 255).astype(np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_reconstruct_writes_mesh_voxels_and_turntable(run_dir, tmp_path, capsys):
    views = write_views(tmp_path, [48, 48, 48])  # resized to the model's 64
    out = tmp_path / "shape.obj"
    code = main(["reconstruct", str(run_dir), *views, "-o", str(out), "--voxels", str(tmp_path / "s.npy"),
                 "--turntable", str(tmp_path / "spin.gif"), "--level", "0.3"])
    assert code == 0, capsys.readouterr().err
    mesh = read_obj(out)
    assert len(mesh.faces) and mesh.faces.max() < len(mesh.vertices)
    grid = load_voxels(tmp_path / "s.npy")
    assert grid.shape == (32, 32, 32)
    with Image.open(tmp_path / "spin.gif") as gif:
        assert gif.n_frames == 24
    assert "triangles" in capsys.readouterr().out
    # nothing is overwritten without --overwrite
    assert main(["reconstruct", str(run_dir), *views, "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("problem,message", [
    ("sizes", "different sizes"), ("suffix", "ends in .stl"), ("voxsuffix", "ends in .txt"),
    ("notimage", "not an image file")])
def test_bad_input_is_one_line(run_dir, tmp_path, capsys, problem, message):
    views = write_views(tmp_path, [64, 32] if problem == "sizes" else [64])
    args = ["reconstruct", str(run_dir), *views, "-o", str(tmp_path / "s.obj")]
    if problem == "suffix":
        args[-1] = str(tmp_path / "s.stl")
    if problem == "voxsuffix":
        args += ["--voxels", str(tmp_path / "v.txt")]
    if problem == "notimage":
        args[2] = str(tmp_path / "v.npy")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "s.obj").exists()


def test_views_beyond_max_views_are_taken_since_no_model_has_a_limit(run_dir, tmp_path, capsys):
    """Issue 20's "more views than the model takes, where it has a limit": r2n2 and viewpool take
    any number (max_views bounds training only), so 8 views of a max_views=5 model reconstruct."""
    views = write_views(tmp_path, [64] * 8)
    assert main(["reconstruct", str(run_dir), *views, "-o", str(tmp_path / "s.obj"), "--level", "0.3"]) == 0
    assert "from 8 view(s)" in capsys.readouterr().out
