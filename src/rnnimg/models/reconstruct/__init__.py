"""The ``reconstruct`` task: shapes (voxel grids) from views. ``r2n2`` (3D-R2N2) and its
non-recurrent baseline ``viewpool`` (Pix2Vox-style fusion); importing registers both."""

import rnnimg.models.reconstruct.r2n2  # noqa: F401  (registers r2n2)
import rnnimg.models.reconstruct.viewpool  # noqa: F401  (registers viewpool)
from rnnimg.models.reconstruct.base import ShapeReconstructor

__all__ = ["ShapeReconstructor"]
