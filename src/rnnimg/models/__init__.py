"""Models, one per file, grouped by task: ``generate/``, ``predict/``, ``segment/``, ``translate/``,
``reconstruct/``.

Each task folder holds its base class (``base.py``) and its models; importing this package registers every
built-in model. The task-independent parts sit here: the model contract (:mod:`.base`), checkpoint I/O
(:mod:`.checkpoint`) and the registry (:mod:`.registry`).
"""

from rnnimg.models import generate, predict, reconstruct, segment, translate  # noqa: F401  (registers every model)
from rnnimg.models.base import LossOutput, RnnImgModel
from rnnimg.models.checkpoint import LoadedRun, load_pretrained, load_run, read_run_config
from rnnimg.models.generate.base import ImageGenerator
from rnnimg.models.predict.base import FramePredictor
from rnnimg.models.registry import create_model, list_models, register_model
from rnnimg.models.segment.base import ImageSegmenter
from rnnimg.models.translate.base import ImageTranslator

__all__ = ["FramePredictor", "ImageGenerator", "ImageSegmenter", "ImageTranslator", "LoadedRun", "LossOutput",
           "RnnImgModel", "create_model", "list_models", "load_pretrained", "load_run", "read_run_config",
           "register_model"]
