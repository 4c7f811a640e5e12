import os
import warnings

import numpy as np
import pytest
import torch

os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
torch.set_num_threads(1)  # two test workers on two cores; the sampler tests run thousands of tiny ops


@pytest.fixture(autouse=True)
def _quiet():
    from rnnimg.cli.common import quiet_libraries

    quiet_libraries()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    yield


@pytest.fixture
def image_folder(tmp_path):
    """20 random grey 28x28 PNGs in two class subfolders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(20):
        sub = tmp_path / "imgs" / ("cats" if i % 2 else "dogs")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(sub / f"{i:02d}.png")
    return tmp_path / "imgs"

