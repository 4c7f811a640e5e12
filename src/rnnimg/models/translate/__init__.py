"""The ``translate`` task's models: the base :class:`ImageTranslator`, the super-resolution base, and the
translators.

Importing this package registers ``translator`` (the ConvGRU refiner, :mod:`.refiner`), its
non-recurrent baseline ``dncnn``, and the super-resolvers ``recursr`` and ``espcn``.
"""

from rnnimg.models.translate import dncnn, espcn, recursr, refiner  # noqa: F401
from rnnimg.models.translate.base import ImageTranslator
from rnnimg.models.translate.superres import SuperResolver

__all__ = ["ImageTranslator", "SuperResolver"]
