"""The voxel renderer on shapes with known answers (issue 20): a sphere's silhouette against
pi r^2, a box seen from the top against its footprint, the depth order of two boxes, and every
pixel against a brute-force march along its ray. The mesh renderer: a box's 12 triangles render
exactly as its voxels, a marching-cubes sphere as pi r^2 inside its voxels' render, depth order."""

import math

import pytest
import torch
import torch.nn.functional as F

from rnnimg.geometry.render import camera_rays, render_mesh, render_voxels, turntable

N = 32


def centres(n=N):
    c = (torch.arange(n) + 0.5) / n * 2 - 1
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")  # voxels are [z, y, x]
    return x, y, z


def ball(radius, n=N):
    x, y, z = centres(n)
    return (x**2 + y**2 + z**2 <= radius**2).float()


def box(lo, hi, n=N):
    """Filled voxels whose centres lie in [lo, hi] (x, y, z)."""
    x, y, z = centres(n)
    inside = torch.ones_like(x, dtype=torch.bool)
    for coord, a, b in zip((x, y, z), lo, hi):
        inside &= (coord >= a) & (coord <= b)
    return inside.float()


@pytest.mark.parametrize("azimuth,elevation", [(0, 0), (30, 20), (77, -40), (200, 89)])
def test_sphere_silhouette_is_pi_r_squared_within_a_pixel_band(azimuth, elevation):
    r, size, extent = 0.6, 64, 1.25
    out = render_voxels(ball(r), [azimuth], [elevation], size, extent=extent)
    px = r / extent * size / 2  # the radius in pixels
    area = out.hit.sum().item()
    # the voxelized ball is blocky: its outline may move by up to about one pixel
    assert abs(area - math.pi * px**2) <= 2 * math.pi * px * 1.0
    # and its centre is the image's centre
    ii, jj = torch.nonzero(out.hit[0, 0], as_tuple=True)
    assert abs(ii.float().mean() - (size - 1) / 2) < 0.5 and abs(jj.float().mean() - (size - 1) / 2) < 0.5


def test_box_from_the_top_covers_its_footprint_exactly():
    # 8 x 4 x 12 voxels (x, y, z): from straight above, with one pixel per voxel (extent 1, 32 px),
    # the silhouette is the 8 x 12 footprint: image columns run along +x, rows along +z
    # (the top of the image is -z for a camera at azimuth 0 tipped up to elevation 90)
    grid = torch.zeros(N, N, N)
    grid[4:16, 10:14, 20:28] = 1  # z 4..15, y 10..13, x 20..27
    out = render_voxels(grid, [0.0], [90.0], N, extent=1.0)
    hit = out.hit[0, 0]
    assert hit.sum().item() == 8 * 12
    rows, cols = torch.nonzero(hit, as_tuple=True)
    assert (rows.min().item(), rows.max().item()) == (4, 15)
    assert (cols.min().item(), cols.max().item()) == (20, 27)
    # its top face is at y = 2 * 14 / 32 - 1, seen from the plane sqrt(3) + 1 above the origin
    top = 2 * 14 / N - 1
    assert torch.allclose(out.depth[0, 0][hit], torch.full((96,), math.sqrt(3) + 1 - top), atol=1e-5)
    # one face, lit the same everywhere
    assert out.shade[0, 0][hit].unique().numel() == 1


def test_a_nearer_box_hides_a_farther_one_and_depth_orders_them():
    near = box((-0.5, -0.5, 0.3), (0.5, 0.5, 0.6))  # nearer to a camera at azimuth 0 (on +z)
    far = box((-0.2, -0.2, -0.6), (0.8, 0.2, -0.3))  # sticks out on the right
    both = torch.maximum(near, far)
    front = render_voxels(both, [0.0], [0.0], 64)
    d_near = render_voxels(near, [0.0], [0.0], 64).depth[0, 0]
    d_far = render_voxels(far, [0.0], [0.0], 64).depth[0, 0]
    overlap = torch.isfinite(d_near) & torch.isfinite(d_far)
    only_far = ~torch.isfinite(d_near) & torch.isfinite(d_far)
    assert overlap.sum() > 50 and only_far.sum() > 20
    assert (d_near[overlap] < d_far[overlap]).all()
    assert torch.equal(front.depth[0, 0][overlap], d_near[overlap])  # the near box wins
    assert torch.equal(front.depth[0, 0][only_far], d_far[only_far])
    # from behind (azimuth 180) the order flips
    back = render_voxels(both, [180.0], [0.0], 64).depth[0, 0]
    d_far_back = render_voxels(far, [180.0], [0.0], 64).depth[0, 0]
    seen = torch.isfinite(d_far_back)
    assert torch.equal(back[seen], d_far_back[seen])


@pytest.mark.parametrize("perspective", [False, True])
def test_every_pixel_equals_a_brute_force_march_along_its_ray(perspective):
    grid = ball(0.55)
    grid[:, :5] = 1  # a floor slab reaching the grid's edges
    grid[20:26, 5:25, 2:6] = 1  # a post
    az, el = 30.0, 20.0
    out = render_voxels(grid, [az], [el], 48, perspective=perspective)
    origin, direction = camera_rays(torch.tensor([az]), torch.tensor([el]), 48, perspective=perspective)
    t = torch.linspace(0, 6.5, 13000, dtype=torch.float64)  # steps of 0.0005
    points = (origin.unsqueeze(-2) + direction.unsqueeze(-2) * t.view(-1, 1)).float()
    occ = F.grid_sample(grid[None, None], points.reshape(1, 48, 48, -1, 3), mode="nearest",
                        padding_mode="zeros", align_corners=False)[0, 0]  # (48, 48, T)
    hit = (occ > 0.5).any(-1)
    depth = t[(occ > 0.5).float().argmax(-1)]
    both = hit & out.hit[0, 0]
    agree = both & ((depth - out.depth[0, 0].double()).abs() < 2e-3)
    agree |= ~hit & ~out.hit[0, 0]
    # a ray that grazes a voxel's edge touches it exactly, where the march's step decides
    assert (~agree).sum() <= 2
    assert hit.sum() > 500


def test_shading_comes_from_face_normals_and_background_elsewhere():
    grid = box((-0.5, -0.5, -0.5), (0.5, 0.5, 0.5))
    out = render_voxels(grid, [45.0], [30.0], 64, background=0.25)
    values = out.shade[0, 0][out.hit[0, 0]].unique()
    assert values.numel() == 3  # three visible faces of a cube, each flat
    assert (out.shade[0, 0][~out.hit[0, 0]] == 0.25).all()
    assert torch.isinf(out.depth[0, 0][~out.hit[0, 0]]).all()


def test_turntable_turns_the_shape():
    grid = box((-0.8, -0.2, -0.1), (0.8, 0.2, 0.1))  # long along x
    frames = turntable(grid, frames=4, elevation=0.0, size=32)
    assert frames.shape == (4, 1, 32, 32)
    width = [int(f[0].gt(0).any(0).sum()) for f in frames]  # columns covered
    assert width[0] > 2 * width[1] and width[2] > 2 * width[3]  # side-on, end-on, side-on, end-on
    assert torch.equal(frames[0].flip(-1).gt(0), frames[2].gt(0))  # half a turn mirrors it


def test_batch_equals_one_grid_at_a_time_and_bool_grids_work():
    grids = torch.stack([ball(0.5), box((-0.3, -0.9, -0.3), (0.3, 0.2, 0.3))])
    together = render_voxels(grids, [0, 90, 200], [10, 40, -20], 32, chunk=2)
    for k in range(2):
        alone = render_voxels(grids[k] > 0.5, [0, 90, 200], [10, 40, -20], 32)
        assert torch.equal(together.shade[k], alone.shade[0])
        assert torch.equal(together.depth[k], alone.depth[0])
    empty = render_voxels(torch.zeros(8, 8, 8), [0], [0], 16)
    assert not empty.hit.any()


def test_geometry_imports_only_torch_numpy_skimage_and_the_ground_floor():
    """docs/architecture.md: geometry/ sits below data/, tasks and the CLI, which all use it."""
    import ast
    from pathlib import Path

    import rnnimg.geometry

    allowed_rnnimg = {"rnnimg.errors", "rnnimg.fileio", "rnnimg.geometry"}
    for path in Path(rnnimg.geometry.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "rnnimg":
                    assert any(name == a or name.startswith(a + ".") for a in allowed_rnnimg), (path, name)
                else:
                    assert top in {"torch", "numpy", "skimage", "__future__", "math", "os", "io",
                                   "pathlib", "typing"}, (path.name, name)


# --- meshes: the same cameras, light and shade --------------------------------------------------
def box_mesh(lo, hi):
    """The 12 triangles of the box [lo, hi] (x, y, z), counter-clockwise seen from outside."""
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    vertices = torch.tensor([[x, y, z] for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)],
                            dtype=torch.float64)  # index = 4 k_z + 2 k_y + k_x
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    faces = torch.tensor([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    return vertices, faces


@pytest.mark.parametrize("perspective", [False, True])
@pytest.mark.parametrize("azimuth,elevation", [(0, 90), (30, 20), (200, -35)])
def test_a_box_mesh_renders_exactly_as_its_voxels(azimuth, elevation, perspective):
    """Voxels 10..21 (x), 6..13 (y), 16..27 (z) of 32 are the solid box between their outer faces:
    its 12 triangles give the same silhouette, depth and shade from any camera."""
    grid = torch.zeros(N, N, N)
    grid[16:28, 6:14, 10:22] = 1
    lo = (2 * 10 / N - 1, 2 * 6 / N - 1, 2 * 16 / N - 1)
    hi = (2 * 22 / N - 1, 2 * 14 / N - 1, 2 * 28 / N - 1)
    kw = dict(perspective=perspective, background=0.1)
    vox = render_voxels(grid, [azimuth], [elevation], 48, **kw)
    mesh = render_mesh(box_mesh(lo, hi), [azimuth], [elevation], 48, **kw)
    assert mesh.hit.shape == vox.hit.shape == (1, 1, 48, 48)
    both = mesh.hit & vox.hit
    assert both.sum() > 100 and (mesh.hit ^ vox.hit).sum() <= 2  # a ray along an edge, at most
    assert (mesh.depth[both] - vox.depth[both]).abs().max() < 1e-5
    assert (mesh.shade[both] - vox.shade[both]).abs().max() < 1e-5
    assert (mesh.shade[~mesh.hit] == 0.1).all() and torch.isinf(mesh.depth[~mesh.hit]).all()
    # faces are two-sided: the same box wound the other way (normals inwards) renders the same
    vertices, faces = box_mesh(lo, hi)
    inward = render_mesh((vertices, faces[:, [0, 2, 1]]), [azimuth], [elevation], 48, **kw)
    assert torch.equal(inward.shade, mesh.shade) and torch.equal(inward.depth, mesh.depth)


@pytest.mark.parametrize("perspective", [False, True])
def test_a_mesh_sphere_is_pi_r_squared_and_lies_within_its_voxels_render(perspective):
    """The marching-cubes surface of a voxelized ball: its silhouette is pi r^2 within a pixel
    band, and lies inside the blocky voxels' (the surface cuts their corners), no more than a
    voxel's width away; where both are hit the depths differ by under a voxel."""
    from rnnimg.geometry.mesh import voxels_to_mesh

    r, size, extent = 0.6, 64, 1.25
    grid = ball(r)
    mesh = render_mesh(voxels_to_mesh(grid), [30.0], [20.0], size, extent=extent, perspective=perspective)
    vox = render_voxels(grid, [30.0], [20.0], size, extent=extent, perspective=perspective)
    px = r / extent * size / 2
    if not perspective:
        assert abs(mesh.hit.sum().item() - math.pi * px**2) <= 2 * math.pi * px * 1.0
    assert not (mesh.hit & ~vox.hit).any()
    band = (vox.hit & ~mesh.hit).sum().item()  # a ring about a pixel wide (a voxel is 1.6 pixels)
    assert 0 < band <= 2 * math.pi * px * 1.0
    both = mesh.hit & vox.hit
    diff = mesh.depth[both] - vox.depth[both]
    assert diff.abs().median() < 2 / N and diff.min() > -2 / N


def test_mesh_depth_orders_two_boxes_and_a_turntable_turns_a_mesh():
    near, far = box_mesh((-0.5, -0.5, 0.3), (0.5, 0.5, 0.6)), box_mesh((-0.2, -0.2, -0.6), (0.8, 0.2, -0.3))
    both = (torch.cat([near[0], far[0]]), torch.cat([near[1], far[1] + len(near[0])]))
    front = render_mesh(both, [0.0], [0.0], 64).depth[0, 0]
    d_near, d_far = (render_mesh(m, [0.0], [0.0], 64).depth[0, 0] for m in (near, far))
    overlap = torch.isfinite(d_near) & torch.isfinite(d_far)
    assert overlap.sum() > 50 and (d_near[overlap] < d_far[overlap]).all()
    assert torch.equal(front[overlap], d_near[overlap])
    assert torch.allclose(d_near[overlap], torch.full_like(d_near[overlap], math.sqrt(3) + 1 - 0.6))
    frames = turntable(box_mesh((-0.8, -0.2, -0.1), (0.8, 0.2, 0.1)), frames=4, elevation=0.0, size=32)
    assert frames.shape == (4, 1, 32, 32)
    widths = [(f[0] > 0).any(0).sum().item() for f in frames]
    assert widths[0] > 2 * widths[1] and widths[2] > 2 * widths[3]  # long, end-on, long, end-on


def test_bad_meshes_are_refused():
    vertices, faces = box_mesh((0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match="face indices"):
        render_mesh((vertices, faces + 1), [0.0], [0.0], 8)
    with pytest.raises(ValueError, match="triangles"):
        render_mesh((vertices, faces[:, :2]), [0.0], [0.0], 8)
