"""3D without models: rendering voxel grids and meshes (views, turntables), marching cubes to
meshes, and voxel and mesh file I/O (.npy/.npz, .binvox, .obj, .ply).

It imports only torch, numpy, scikit-image (meshes) and rnnimg's ground floor (``errors``,
``fileio``), so the data, the task layer and the CLI can all use it (docs/architecture.md).
"""

from rnnimg.geometry.render import Rendering, render_mesh, render_voxels, turntable

__all__ = ["Rendering", "render_mesh", "render_voxels", "turntable"]
