"""The ``generate`` task's models: the base :class:`ImageGenerator`, the raster base, and the generators.

Importing this package registers ``rowrnn``, ``pixelrnn``, ``pixelscan``, ``multiscale`` and ``draw``.
"""

from rnnimg.models.generate import draw, multiscale, pixelrnn, pixelscan, rowrnn  # noqa: F401
from rnnimg.models.generate.base import ImageGenerator
from rnnimg.models.generate.raster import RasterGenerator

__all__ = ["ImageGenerator", "RasterGenerator"]
