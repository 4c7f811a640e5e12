"""The training layer: one LightningModule that wraps any registered model (``lit.py``), the
data order that makes resume exact (``data.py``), the run folder and its lock (``rundir.py``),
``train()`` (``run.py``), ``evaluate()`` (``evaluate.py``) and the settings (``settings.py``).
It never names a specific model: models answer through hooks."""

from rnnimg.train.data import EpochSampler, SeededItems, build_datasets
from rnnimg.train.evaluate import evaluate
from rnnimg.train.lit import LitModel
from rnnimg.train.run import RunComplete, TrainingInterrupted, train, write_curves
from rnnimg.train.settings import TrainSettings, load_config_file

__all__ = ["EpochSampler", "LitModel", "RunComplete", "SeededItems", "TrainSettings",
           "TrainingInterrupted", "build_datasets", "evaluate", "load_config_file", "train", "write_curves"]
