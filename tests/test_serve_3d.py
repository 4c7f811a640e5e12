"""The web page with 3D models (issue 20), tested without Gradio or a browser: a reconstruct model
gets the Reconstruct 3D tab, whose pictures render the input views and the predicted and true
shapes; a voxel generator in the Sample tab draws rendered shapes, not images."""

import os

import numpy as np
import pytest
from PIL import Image

from rnnimg.serve import core, shapes
from test_serve import save

SMALL_3D = {"test_size": 4, "train_size": 4, "val_size": 2}  # the sizes come from the model


@pytest.fixture(scope="module")
def served3d(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs3d")
    # prior_occupancy 0.5: the untrained r2n2 predicts ~0.5 everywhere, so a level below meshes a cube
    return core.load_served([save(tmp, "r2n2", data="shapes3d", data_options=SMALL_3D, prior_occupancy=0.5),
                             save(tmp, "voxscan", data="shapes3d", data_options=SMALL_3D)])


def test_3d_models_get_their_tabs(served3d):
    tasks = {t for s in served3d for t in s.tasks}
    assert {"reconstruct", "generate"} <= tasks
    assert "complete" not in tasks  # the Complete tab takes images (see the voxel generator test below)


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


def test_reconstruct_writes_a_mesh_turntable_and_views_under_workdir(served3d, tmp_path):
    from rnnimg.geometry.mesh import read_obj

    s = next(s for s in served3d if s.model.name == "r2n2")
    obj, spin, strip, summary = shapes.reconstruct(s, tmp_path, index=1, level=0.1)
    assert all(p.startswith(str(tmp_path)) for p in (obj, spin, strip))
    mesh = read_obj(obj)
    assert len(mesh.faces) > 0 and mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)
    assert np.abs(mesh.vertices).max() < 1.1  # grid coordinates in [-1, 1] (the pad adds up to a voxel)
    assert Image.open(spin).n_frames > 1
    views = np.asarray(Image.open(strip))
    assert views.std() > 0 and views.shape[1] > views.shape[0]  # the views side by side
    assert f"{len(mesh.faces)} triangles" in summary and "test item 1" in summary


def test_reconstruct_from_uploads_and_its_readable_errors(served3d, tmp_path):
    s = next(s for s in served3d if s.model.name == "r2n2")
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(a)
    Image.fromarray(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)).save(b)
    work = tmp_path / "work"
    with pytest.raises(core.RnnImgError, match="different sizes") as err:
        shapes.reconstruct(s, work, uploads=[str(a), str(b)])
    assert "\n" not in str(err.value)
    with pytest.raises(core.RnnImgError, match="no voxel reaches the level"):
        shapes.reconstruct(s, work, uploads=[str(a)], level=0.999)
    with pytest.raises(core.RnnImgError, match="between 0 and 1"):
        shapes.reconstruct(s, work, index=0, level=1.5)
    obj, _, strip, summary = shapes.reconstruct(s, work, uploads=[str(a), str(a)], level=0.05)
    assert obj.startswith(str(work)) and "2 uploaded view(s)" in summary


def test_the_reconstruct_tab_shows_a_mesh_on_open_and_errors_as_page_messages(served3d, tmp_path,
                                                                                  monkeypatch):
    gr = pytest.importorskip("gradio", reason="the web extra is not installed: pip install 'rnnimg[web]'")
    from rnnimg.serve.app import build_app

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    app = build_app(served3d, tmp_path / "work")
    assert any(isinstance(b, gr.Model3D) for b in app.blocks.values())
    fn = next(f for f in app.fns.values() if f.api_name == "reconstruct_on_open")
    result = app(*[block.value for block in fn.inputs], api_name="reconstruct_on_open")
    obj, spin, views, message = result
    assert obj.endswith(".obj") and spin.endswith(".gif") and views.endswith(".png")
    assert "triangles" in message and "test item 0" in message
    s = next(s for s in served3d if s.model.name == "r2n2")
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (40, 40), (200, 10, 10)).save(a)
    Image.new("RGB", (30, 50), (10, 200, 10)).save(b)
    with pytest.raises(Exception, match="the views have different sizes") as err:
        app(s.label, 0, [str(a), str(b)], 0.4, api_name="reconstruct")
    assert str(tmp_path) not in str(err.value)  # the page shows file names, not the server's folders


def test_a_voxel_generator_samples_on_the_page_but_has_no_image_complete_tab(tmp_path):
    """The Complete tab takes images; a voxel generator (voxscan) is offered in Sample only, and
    with it alone the page has no Complete tab."""
    from rnnimg import create_model

    create_model("voxscan", "debug", voxel_size=6).save_pretrained(tmp_path / "vox")
    served = core.load_served([str(tmp_path / "vox")])
    assert [t.name for t in core.page_tasks(served)] == ["generate"]
    assert core.for_task(served, "complete") == []
    assert core.sample(core.pick(served, None, "generate"), 2).ndim == 3
