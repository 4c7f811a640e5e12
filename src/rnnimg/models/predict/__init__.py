"""The ``predict`` task's models: the base :class:`FramePredictor`, its shared config, and the predictors.

Importing this package registers ``convlstm``, ``predrnn``, ``convscan`` and ``svg``.
"""

from rnnimg.models.predict import convlstm, convscan, predrnn, svg  # noqa: F401
from rnnimg.models.predict.base import FramePredictor
from rnnimg.models.predict.config import FramePredictorConfig

__all__ = ["FramePredictor", "FramePredictorConfig"]
