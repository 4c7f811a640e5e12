"""Models, one per file; importing this package registers every built-in model."""

from rnnimg.models import (  # noqa: F401
    convlstm,
    convscan,
    dncnn,
    draw,
    espcn,
    pixelrnn,
    pixelscan,
    predrnn,
    reconstruct,
    recursr,
    reseg,
    rowrnn,
    scanseg,
    svg,
    translator,
    unet,
    voxcnn,
    voxscan,
)
from rnnimg.models.base import LossOutput, RnnImgModel
from rnnimg.models.checkpoint import load_pretrained, read_run_config
from rnnimg.models.generator import ImageGenerator
from rnnimg.models.predictor import FramePredictor
from rnnimg.models.registry import create_model, list_models, register_model

__all__ = ["FramePredictor", "ImageGenerator", "LossOutput", "RnnImgModel", "create_model", "list_models",
           "load_pretrained", "read_run_config", "register_model"]
