"""Models, one per file; importing this package registers every built-in model."""

from rnnimg.models import convlstm, pixelrnn, predrnn, rowrnn  # noqa: F401
from rnnimg.models import dncnn, translator  # noqa: F401
from rnnimg.models.base import LossOutput, RnnImgModel, load_pretrained
from rnnimg.models.generator import ImageGenerator
from rnnimg.models.predictor import FramePredictor
from rnnimg.models.registry import create_model, list_models, register_model

__all__ = ["FramePredictor", "ImageGenerator", "LossOutput", "RnnImgModel", "create_model", "list_models",
           "load_pretrained", "register_model"]
