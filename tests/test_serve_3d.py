"""The web page with 3D models (issue 20), tested without Gradio or a browser: a reconstruct model
gets the Reconstruct 3D tab, whose pictures render the input views and the predicted and true
shapes; a voxel generator in the Sample tab draws rendered shapes, not images."""

import os

import numpy as np
import pytest
from PIL import Image

from rnnimg.serve import core
from test_serve import save

SMALL_3D = {"test_size": 4, "train_size": 4, "val_size": 2}  # the sizes come from the model


@pytest.fixture(scope="module")
def served3d(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs3d")
    return core.load_served([save(tmp, "r2n2", data="shapes3d", data_options=SMALL_3D),
                             save(tmp, "voxscan", data="shapes3d", data_options=SMALL_3D)])


def test_3d_models_get_their_tabs(served3d):
    tasks = {t for s in served3d for t in s.tasks}
    assert {"reconstruct", "generate", "complete"} <= tasks


def test_reconstruct_tab_pictures_show_views_prediction_and_truth(served3d, tmp_path):
    s = next(s for s in served3d if s.model.name == "r2n2")
    paths = core.task_pictures(s, tmp_path, "reconstruct", index=1)
    names = {os.path.basename(p) for p in paths}
    assert names == {"reconstruction.png", "reconstruction.gif"}
    grid = np.asarray(Image.open(next(p for p in paths if p.endswith(".png"))))
    assert grid.ndim == 3 and grid.std() > 0  # something drawn, not a blank panel
    assert all(p.startswith(str(tmp_path)) for p in paths)


def test_sample_tab_draws_rendered_shapes_for_a_voxel_generator(served3d, tmp_path):
    s = next(s for s in served3d if s.model.name == "voxscan")
    paths = core.task_pictures(s, tmp_path, "generate", index=0)
    assert {os.path.basename(p) for p in paths} >= {"samples.png", "completions.png"}


def test_the_sample_tab_draws_a_voxel_generator_without_images(served3d):
    s = next(s for s in served3d if s.model.name == "voxscan")
    grid = core.sample(s, 4, None, 0, 1.0, None)
    assert np.asarray(grid).std() > 0
