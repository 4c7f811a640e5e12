"""The ``segment`` task's models: the base :class:`ImageSegmenter` and the segmenters.

Importing this package registers ``reseg``, ``scanseg`` and the non-recurrent baseline ``unet``.
"""

from rnnimg.models.segment import reseg, scanseg, unet  # noqa: F401
from rnnimg.models.segment.base import ImageSegmenter

__all__ = ["ImageSegmenter"]
