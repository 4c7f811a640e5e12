"""The ``generate`` task's models: the base :class:`ImageGenerator`, the raster base, the voxel base
:class:`VolumeGenerator`, and the generators.

Importing this package registers ``rowrnn``, ``pixelrnn``, ``pixelscan``, ``multiscale`` and ``draw``
(images), and ``voxscan`` and its baseline ``voxcnn`` (voxel grids).
"""

from rnnimg.models.generate import draw, multiscale, pixelrnn, pixelscan, rowrnn, voxcnn, voxscan  # noqa: F401
from rnnimg.models.generate.base import ImageGenerator
from rnnimg.models.generate.raster import RasterGenerator
from rnnimg.models.generate.volume import VolumeGenerator

__all__ = ["ImageGenerator", "RasterGenerator", "VolumeGenerator"]
