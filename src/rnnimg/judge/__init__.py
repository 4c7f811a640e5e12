"""Does the picture match the condition? A small digit classifier shipped with rnnimg, used to
score conditional generators: the share of samples whose digit (and, for captions, place) is the
one asked for.

- :mod:`rnnimg.judge.net`: the network, :class:`DigitJudge`, and :func:`load_digit_judge`, which
  reads the shipped weights (read-only package data,
  ``rnnimg/data/assets/digit_judge.safetensors``) or a file the user trained;
- :mod:`rnnimg.judge.score`: :func:`match_statistics`, the condition-match score;
- :mod:`rnnimg.judge.train`: :func:`train_digit_judge`, the training loop, and
  :func:`save_digit_judge`, which writes to a folder the user chooses, never into the package;
- :mod:`rnnimg.judge.cli`: ``python -m rnnimg.judge`` (test the shipped judge, or ``--train --out
  DIR``).
"""

from rnnimg.judge.net import WEIGHTS, DigitJudge, load_digit_judge
from rnnimg.judge.score import cell, match_statistics
from rnnimg.judge.train import mnist_5k_test_accuracy, save_digit_judge, train_digit_judge

__all__ = ["WEIGHTS", "DigitJudge", "cell", "load_digit_judge", "match_statistics",
           "mnist_5k_test_accuracy", "save_digit_judge", "train_digit_judge"]
