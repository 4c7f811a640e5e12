"""Voxel files and meshes: .binvox against a hand-made file with a known asymmetric shape, the
one-line errors, and the marching-cubes round trip (issue 20)."""

import numpy as np
import pytest

from rnnimg.errors import RnnImgError
from rnnimg.geometry.mesh import Mesh, check_mesh_path, mesh_to_voxels, read_obj, voxels_to_mesh, write_mesh
from rnnimg.geometry.voxio import binvox_bytes, load_voxels, read_binvox, save_voxels


def hand_made_binvox() -> bytes:
    """dim 2 2 2 with one filled voxel at binvox (x=1, y=0, z=0) and one at (x=0, y=1, z=1).

    The body lists y fastest, then z, then x: index = x * 4 + z * 2 + y."""
    flat = [0] * 8
    flat[1 * 4 + 0 * 2 + 0] = 1  # x=1, y=0, z=0
    flat[0 * 4 + 1 * 2 + 1] = 1  # x=0, y=1, z=1
    body = bytearray()
    for value in flat:  # runs of one, the longest-winded legal encoding
        body += bytes((value, 1))
    return b"#binvox 1\ndim 2 2 2\ntranslate 0 0 0\nscale 1\ndata\n" + bytes(body)


def test_binvox_axes_are_read_as_x_z_y_and_turned_to_z_y_x(tmp_path):
    path = tmp_path / "two.binvox"
    path.write_bytes(hand_made_binvox())
    grid, meta = read_binvox(path)
    assert grid.shape == (2, 2, 2) and grid.sum() == 2
    assert grid[0, 0, 1] and grid[1, 1, 0]  # [z, y, x]
    assert meta == {"translate": [0.0, 0.0, 0.0], "scale": 1.0}


def test_binvox_writer_and_reader_round_trip_a_grid_with_long_runs(tmp_path):
    rng = np.random.default_rng(0)
    grid = np.zeros((20, 20, 20), dtype=bool)
    grid[3:17, 2:9, 5:19] = True  # runs longer than 255 once flattened
    grid |= rng.random(grid.shape) < 0.05
    path = tmp_path / "g.binvox"
    path.write_bytes(binvox_bytes(grid, translate=(1, 2, 3), scale=0.5))
    back, meta = read_binvox(path)
    assert np.array_equal(back, grid) and meta["scale"] == 0.5
    assert np.array_equal(load_voxels(path, size=20), grid.astype(np.float32))


def test_bad_voxel_files_are_one_line_errors(tmp_path):
    good = hand_made_binvox()
    cases = {
        "header.binvox": (b"#vox 1" + good[9:], "first line is not '#binvox 1'"),
        "short.binvox": (good[:-4], "truncated"),
        "odd.binvox": (good[:-1], "truncated"),
        "nodata.binvox": (b"#binvox 1\ndim 2 2 2\n", "no 'dim' or no 'data'"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(RnnImgError, match=message) as err:
            load_voxels(tmp_path / name)
        assert "\n" not in str(err.value)
    np.save(tmp_path / "flat.npy", np.zeros((4, 4)))
    with pytest.raises(RnnImgError, match="must be 3-D"):
        load_voxels(tmp_path / "flat.npy")
    np.save(tmp_path / "small.npy", np.zeros((16, 16, 16)))
    with pytest.raises(RnnImgError, match="the model takes 32x32x32"):
        load_voxels(tmp_path / "small.npy", size=32)
    np.save(tmp_path / "big.npy", np.full((4, 4, 4), 3.0))
    with pytest.raises(RnnImgError, match=r"in \[0, 1\]"):
        load_voxels(tmp_path / "big.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros((4, 4, 4)), b=np.zeros((4, 4, 4)))
    with pytest.raises(RnnImgError, match="name the grid 'voxels'"):
        load_voxels(tmp_path / "two.npz")
    with pytest.raises(RnnImgError, match="not '.txt'"):
        load_voxels(tmp_path / "shape.txt")
    with pytest.raises(RnnImgError, match="not '.stl'"):
        check_mesh_path("shape.stl")


def ball(size, radius):
    c = (np.arange(size) + 0.5) / size * 2 - 1
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    return x**2 + y**2 + z**2 <= radius**2


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_marching_cubes_round_trip_keeps_iou_above_0_95_and_obj_parses(tmp_path):
    grid = ball(32, 0.7)
    grid[:, :, 28:] = False  # a flat cut: not only round surfaces
    mesh = voxels_to_mesh(grid.astype(np.float32))
    back = mesh_to_voxels(mesh, 32)
    assert iou(grid, back) > 0.95
    path = write_mesh(tmp_path / "ball.obj", mesh)
    lines = path.read_text().splitlines()
    faces = [ln.split() for ln in lines if ln.startswith("f ")]
    assert faces and all(len(f) == 4 for f in faces)  # every face a triangle
    parsed = read_obj(path)
    assert parsed.faces.min() >= 0 and parsed.faces.max() < len(parsed.vertices)
    assert np.abs(parsed.vertices - mesh.vertices).max() < 1e-5
    # a closed surface: every edge is shared by exactly two faces
    edges = np.sort(np.concatenate([parsed.faces[:, [0, 1]], parsed.faces[:, [1, 2]],
                                    parsed.faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()
    # outward normals: the signed volume is positive and near the solid's
    v = parsed.vertices[parsed.faces].astype(np.float64)
    volume = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6
    assert volume == pytest.approx(grid.sum() * (2 / 32) ** 3, rel=0.05)


def test_a_shape_touching_the_border_closes_and_empty_grids_give_empty_meshes(tmp_path):
    full = np.ones((8, 8, 8), dtype=np.float32)
    mesh = voxels_to_mesh(full)
    assert len(mesh.faces) > 0 and np.abs(mesh.vertices).max() <= 1.0 + 1e-6
    assert mesh_to_voxels(mesh, 8).all()
    empty = voxels_to_mesh(np.zeros((8, 8, 8), np.float32))
    assert empty.vertices.shape == (0, 3) and empty.faces.shape == (0, 3)
    write_mesh(tmp_path / "empty.ply", empty)
    assert "element face 0" in (tmp_path / "empty.ply").read_text()


def test_ply_header_counts_match(tmp_path):
    mesh = voxels_to_mesh(ball(16, 0.6).astype(np.float32))
    text = write_mesh(tmp_path / "b.ply", mesh).read_text().splitlines()
    end = text.index("end_header")
    assert f"element vertex {len(mesh.vertices)}" in text[:end]
    assert len(text) - end - 1 == len(mesh.vertices) + len(mesh.faces)


def test_save_voxels_writes_npy_and_binvox(tmp_path):
    grid = ball(16, 0.5).astype(np.float32)
    assert np.array_equal(load_voxels(save_voxels(tmp_path / "a.npy", grid)), grid)
    assert np.array_equal(load_voxels(save_voxels(tmp_path / "a.binvox", grid)), grid)
    assert isinstance(Mesh(np.zeros((0, 3)), np.zeros((0, 3))), tuple)


def test_voxels_path_renders_views_or_reads_the_folder_beside_each_shape(tmp_path):
    import torch
    from PIL import Image

    from rnnimg import load_dataset

    grid = ball(16, 0.6)
    np.save(tmp_path / "a.npy", grid.astype(np.float32))
    (tmp_path / "b.binvox").write_bytes(binvox_bytes(ball(16, 0.4)))
    (tmp_path / "b").mkdir()
    for k in range(3):  # views of b: 3 images of 20x20, resized to view_size
        Image.fromarray(np.full((20, 20), 60 * k, np.uint8)).save(tmp_path / "b" / f"v{k}.png")
    data = load_dataset(f"voxels:{tmp_path}", "train", view_size=16, num_views=3)
    assert len(data) == 2
    a, b = data[0], data[1]
    assert torch.equal(a["voxels"], torch.from_numpy(grid.astype(np.float32)))
    assert a["views"].shape == b["views"].shape == (3, 1, 16, 16)
    assert (a["views"] > 0).any() and not torch.isnan(a["azimuth"]).any()  # rendered
    assert torch.allclose(b["views"][2], torch.full((1, 16, 16), 120 / 255), atol=1e-3)  # read
    assert torch.isnan(b["azimuth"]).all()  # unknown cameras
    with pytest.raises(RnnImgError, match="too few for a test split"):
        load_dataset(f"voxels:{tmp_path}", "test")
    with pytest.raises(RnnImgError, match="no such file"):
        load_dataset(f"voxels:{tmp_path / 'nope'}", "train")
    np.save(tmp_path / "c.npy", np.zeros((8, 8, 8), np.float32))
    with pytest.raises(RnnImgError, match="the model takes 16x16x16"):
        load_dataset(f"voxels:{tmp_path / 'c.npy'}", "train", voxel_size=16)[0]
