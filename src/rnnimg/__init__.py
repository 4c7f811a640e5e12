"""rnnimg: image generation with recurrent neural networks.

Public API: :func:`create_model`, :func:`list_models`, :func:`load_pretrained`,
:func:`load_dataset`, :func:`list_datasets`, and the modules :mod:`rnnimg.nn`, :mod:`rnnimg.data`
and :mod:`rnnimg.metrics`.
"""

__version__ = "0.1.0"

from rnnimg import data, metrics, nn  # noqa: E402
from rnnimg.data import list_datasets, load_dataset  # noqa: E402
from rnnimg.errors import RnnImgError  # noqa: E402
from rnnimg.models import create_model, list_models, load_pretrained  # noqa: E402

__all__ = ["RnnImgError", "create_model", "data", "list_datasets", "list_models", "load_dataset",
           "load_pretrained", "metrics", "nn"]
