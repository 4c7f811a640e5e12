"""The web page's work (rnnimg.serve.core), tested without Gradio or a browser: what each tab returns,
what it refuses with a readable message, and that nothing is written outside the page's temp folder.
The page itself is tested in a real browser in test_serve_browser.py."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg import create_model
from rnnimg.errors import RnnImgError
from rnnimg.serve import core


def save(tmp_path, name, preset="debug", data="mnist-5k", data_options=None, **overrides):
    torch.manual_seed(0)
    model = create_model(name, preset, **overrides)
    folder = tmp_path / f"{name}-run"
    model.save_pretrained(folder, extra={"data": {"name": data, "options": {
        **model.dataset_options(), **(data_options or {})}}})
    return str(folder)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    specs = [save(tmp, "pixelrnn"), save(tmp, "rowrnn"),
             save(tmp, "convlstm", data="moving-mnist", data_options={"test_clips": 4},
                  frame_size=16, context=3, horizon=2)]
    return core.load_served(specs)


def by_name(served, name):
    return next(s for s in served if s.model.name == name)


def test_tabs_follow_the_tasks_of_the_served_models(served):
    assert core.tasks_of(served) == ["generate", "complete", "predict"]
    assert [s.model.name for s in core.for_task(served, "generate")] == ["pixelrnn", "rowrnn"]
    assert [s.model.name for s in core.for_task(served, "complete")] == ["pixelrnn"]
    with pytest.raises(RnnImgError, match="choose one of the models for complete"):
        core.pick(served, served[1].label, "complete")


def test_sample_is_a_grid_reproducible_by_seed(served):
    s = by_name(served, "pixelrnn")
    a = core.sample(s, 4, "any", 7, 1.0, scale=1)
    assert a.dtype == np.uint8 and a.shape == (2 + 30 * 1, 2 + 30 * 4, 3)  # 1 row of 4 28x28 + padding
    assert np.array_equal(a, core.sample(s, 4, "any", 7, 1.0, scale=1))
    assert not np.array_equal(a, core.sample(s, 4, "any", 8, 1.0, scale=1))
    big = core.sample(s, 4, "any", 7, 1.0, scale=3)  # the page shows pixels as 3x3 blocks
    assert np.array_equal(big[::3, ::3], a) and big.shape == (3 * 32, 3 * 122, 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), "number of samples"), (dict(n=1000), "number of samples"),
    (dict(temperature=0), "temperature"), (dict(seed="abc"), "seed must be a whole number"),
    (dict(label=3), "not class-conditional"), (dict(text="a three"), "does not take a sentence"),
])
def test_sample_refuses_bad_controls_with_a_readable_message(served, kwargs, message):
    with pytest.raises(RnnImgError, match=message):
        core.sample(by_name(served, "rowrnn"), **{"n": 2, **kwargs})


def cells(grid: np.ndarray, n: int, size: int = 28, pad: int = 2) -> list[np.ndarray]:
    """The n pictures of a one-row grid (grey channel)."""
    return [grid[pad:pad + size, pad + k * (size + pad):pad + k * (size + pad) + size, 0] for k in range(n)]


@pytest.mark.parametrize("region", core.REGIONS)
def test_complete_keeps_the_known_pixels_and_fills_the_hidden_region(served, region):
    s = by_name(served, "pixelrnn")
    image = core.test_item(s, 3)["image"].unsqueeze(0).float()
    given, grid = core.complete(s, image, region, n=3, seed=1, scale=1)
    known = core.region_mask(region, 28, 28)[0].numpy()
    assert 0 < known.mean() < 1
    assert given.shape == (56, 56, 3)  # the input is shown twice as large as the grid's cells
    source = given[::2, ::2, 0]
    assert set(np.unique(source)) <= {0, 255}  # quantized as the (binarized) model sees it
    occluded, *completions = cells(grid, 4)
    assert np.all(occluded[~known] == 128)  # the hidden part is shown grey
    for c in completions:
        assert np.array_equal(c[known], source[known])  # known pixels come back unchanged
        assert set(np.unique(c[~known])) <= {0, 255}  # and the hidden ones are drawn


def test_drawings_and_uploads_become_model_inputs(tmp_path):
    shape = (1, 28, 28)
    # a white stroke on a transparent canvas, as the sketchpad sends it
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[100:180, 130:150] = 255
    x = core.image_from_array(canvas, shape)
    assert x.shape == (1, 1, 28, 28) and x[0, 0, 14, 14] > 0.5 and x[0, 0, 2, 2] == 0
    # dark ink on a white page is inverted to the models' light-on-black
    page = np.full((56, 56, 3), 255, np.uint8)
    page[20:36, 26:30] = 0
    y = core.image_from_file(_png(tmp_path / "page.png", page), shape)
    assert y[0, 0, 14, 14] > 0.5 and y[0, 0, 1, 1] < 0.01
    with pytest.raises(RnnImgError, match="not an image"):
        core.image_from_array(np.zeros((3, 4, 5, 6)), shape)
    bad = tmp_path / "digit.png"
    bad.write_bytes(b"this is no png")
    with pytest.raises(RnnImgError, match="digit.png: not a readable image"):
        core.image_from_file(bad, shape)
    with pytest.raises(RnnImgError, match="unknown region"):
        core.region_mask("everything", 28, 28)


def _png(path, array):
    Image.fromarray(array).save(path)
    return path


def test_predict_writes_its_gif_in_the_workdir_only(served, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    work = core.make_workdir()
    try:
        s = by_name(served, "convlstm")
        clip = core.test_item(s, 1)["frames"]
        assert clip.shape == (5, 1, 16, 16)
        gif, strip = core.predict(s, clip, work, horizon=4)
        assert gif.startswith(str(work)) and gif.endswith(".gif")
        with Image.open(gif) as im:
            assert im.n_frames == 3 + 4
        assert strip.dtype == np.uint8 and strip.std() > 0
        with pytest.raises(RnnImgError, match="the model needs at least 3"):
            core.predict(s, clip[:2], work)
        with pytest.raises(RnnImgError, match="horizon"):
            core.predict(s, clip, work, horizon=500)
        np.save(tmp_path / "short.npy", np.zeros((2, 16, 16), np.float32))
        with pytest.raises(RnnImgError):
            core.clip_from_file(tmp_path / "short.npy", s)
        assert sorted(os.listdir(tmp_path)) == ["short.npy"]  # nothing else written here
    finally:
        import shutil

        shutil.rmtree(work)


def test_a_caption_model_gets_a_sentence_it_knows_and_asks_for_one(tmp_path):
    from rnnimg.data.mnist_captions import mnist_captions, tokenize

    s = core.load_served([save(tmp_path, "draw", preset="captions", data="mnist-captions", steps=2,
                               enc_hidden=8, dec_hidden=8, z_size=2)])[0]
    sentence = core.example_sentence(s)
    assert sentence and core.takes_text(s)
    vocabulary = tuple(s.model.config.vocabulary)
    first = mnist_captions("test")[0]["text"]
    assert torch.equal(tokenize(sentence, vocabulary, s.model.config.max_words), first)
    assert core.sample(s, 2, text=sentence, scale=1).shape == (64, 2 + 62 * 2, 3)
    with pytest.raises(RnnImgError, match="type one, e.g. '" + sentence):
        core.sample(s, 2, text="  ")


def test_other_tasks_show_the_task_layer_pictures(served, tmp_path):
    s = by_name(served, "pixelrnn")
    paths = core.task_pictures(s, tmp_path, "complete", index=2)
    assert {os.path.basename(p) for p in paths} == {"samples.png", "completions.png"}
    assert all(p.startswith(str(tmp_path)) for p in paths)
    with pytest.raises(RnnImgError, match="test item 99999 does not exist"):
        core.task_pictures(s, tmp_path, "complete", index=99999)


def test_serve_without_gradio_prints_the_install_hint_and_exits_2(tmp_path):
    code = ("import sys; sys.modules['gradio'] = None\n"
            "from rnnimg.cli import main; sys.exit(main(['serve']))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "rnnimg: error: the web page needs Gradio: pip install 'rnnimg[web]'"
    assert os.listdir(tmp_path) == []


class FakeSegmenter(torch.nn.Module):
    """Stands in for a model of a task the page has no tab builder for."""

    name = "fake-segmenter"
    config = None

    @staticmethod
    def tasks():
        return ("segment",)

    def example_batch(self, batch_size=1, generator=None):
        return {"image": torch.rand(batch_size, 3, 8, 8, generator=generator),
                "mask": torch.zeros(batch_size, 8, 8, dtype=torch.long)}


def test_the_page_has_one_tab_per_served_task_new_tasks_included(served, tmp_path):
    gr = pytest.importorskip("gradio", reason="the web extra is not installed: pip install 'rnnimg[web]'")
    from rnnimg.serve.app import build_app

    models = [core.ServedModel("my-segmenter", FakeSegmenter()), *served[::-1]]
    app = build_app(models, tmp_path)
    tabs = [(b.label, b.id) for b in app.blocks.values() if isinstance(b, gr.Tab)]
    assert tabs == [("Sample", "generate"), ("Complete", "complete"), ("Predict", "predict"),
                    ("Segment", "segment")]
    assert core.input_shape(FakeSegmenter(), "segment") == (3, 8, 8)
    assert os.listdir(tmp_path) == []  # building the page writes nothing


@pytest.fixture(scope="module")
def image_to_image(tmp_path_factory):
    """A segmenter and a translator, as the page serves them."""
    tmp = tmp_path_factory.mktemp("image-to-image")
    return core.load_served([save(tmp, "reseg", data="mnist-scenes"),
                             save(tmp, "translator", data_options={"corrupt": "denoise", "sigma": 25})])


def read_cells(path, n: int, size: int, scale: int = 3, pad: int = 2) -> list[np.ndarray]:
    """The n pictures of the first row of a grid or strip written with ``scale`` (RGB, uint8)."""
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB"))[::scale, ::scale]
    assert pixels.shape[1] == pad + n * (size + pad)  # exactly n pictures in the row
    return [pixels[pad:pad + size, pad + k * (size + pad):pad + k * (size + pad) + size] for k in range(n)]


def as_uint8(picture: torch.Tensor) -> np.ndarray:
    rgb = picture.expand(3, -1, -1) if picture.shape[0] == 1 else picture
    return rgb.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def test_uploads_in_the_segment_and_translate_tabs_run_the_model_on_them(image_to_image, tmp_path,
                                                                         monkeypatch):
    """Through Gradio (the page's own events, with its pre- and post-processing): an upload needs no
    mask or target, and what comes back is the model's output on the uploaded pixels."""
    pytest.importorskip("gradio", reason="the web extra is not installed: pip install 'rnnimg[web]'")
    from rnnimg.serve.app import build_app
    from rnnimg.tasks import mask_overlay

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    app = build_app(image_to_image, tmp_path / "work")
    segmenter, translator = image_to_image
    for served, task in ((segmenter, "segment"), (translator, "translate")):
        channels, size, _ = core.input_shape(served.model, task)
        # a light picture at the model's size: taken as it is (no inverting, no resizing)
        pixels = (np.random.default_rng(0).random((size, size, channels)) * 127 + 128).astype(np.uint8)
        upload = _png(tmp_path / f"{task}.png", pixels[..., 0] if channels == 1 else pixels)
        x = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255).unsqueeze(0)  # (1, C, H, W)
        (shown,) = app(served.label, "upload", 0, str(upload), 0, api_name=task)
        if task == "segment":
            given, output = read_cells(shown["image"], 2, size)  # no true mask beside them
            expected = mask_overlay(x[0], served.model.segment(x)[0])
        else:  # the input, then every refinement step (the last is the output), no target
            given, *_, output = read_cells(shown["image"], 1 + served.model.config.steps, size)
            expected = served.model.translate(x)[0]
        assert np.array_equal(given, as_uint8(x[0]))
        assert np.abs(output.astype(int) - as_uint8(expected).astype(int)).max() <= 1
    with pytest.raises(Exception, match="upload an image first"):
        app(translator.label, "upload", 0, None, 0, api_name="translate")


def test_every_tab_shows_a_first_result_when_the_page_opens(served, image_to_image, tmp_path, monkeypatch):
    """Each tab runs its button's work once on open, with its controls' first values."""
    gr = pytest.importorskip("gradio", reason="the web extra is not installed: pip install 'rnnimg[web]'")
    from rnnimg.serve.app import build_app

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    app = build_app([*served, *image_to_image], tmp_path / "work")
    tabs = [b.id for b in app.blocks.values() if isinstance(b, gr.Tab)]
    assert tabs == ["generate", "complete", "predict", "segment", "translate"]
    on_open = {f.api_name: f for f in app.fns.values() if any(t[1] == "load" for t in f.targets)}
    assert sorted(on_open) == sorted(f"{t}_on_open" for t in tabs)
    for task in tabs:
        fn = on_open[f"{task}_on_open"]
        result = app(*[block.value for block in fn.inputs], api_name=f"{task}_on_open")
        assert result and (not isinstance(result, list) or all(result)), f"the {task} tab opens empty"


def test_serve_stopped_with_sigterm_removes_its_temp_folder(served, tmp_path):
    """systemd, Docker and job schedulers stop a server with SIGTERM: the folder of generated
    pictures goes, as on Ctrl-C, and the server exits cleanly."""
    import signal
    import socket
    import time

    pytest.importorskip("gradio", reason="the web extra is not installed: pip install 'rnnimg[web]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(temp)}
    server = subprocess.Popen([sys.executable, "-m", "rnnimg", "serve", by_name(served, "rowrnn").label,
                               "--port", str(port)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and server.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        assert server.poll() is None, server.stdout.read()
        assert [p.name[:13] for p in temp.iterdir()] == ["rnnimg-serve-"]  # the page's folder
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=120)
    finally:
        server.kill()
    # 0 when the signal finds the page serving, 130 ("interrupted") when it comes while Gradio is
    # still starting: either way one clean stop, no traceback, nothing left behind
    assert server.returncode in (0, 130) and "Traceback" not in output, output
    assert list(temp.iterdir()) == []


def test_issue_18s_scan_models_work_on_the_page(tmp_path):
    """Issue 18, "Done when": each new model appears on the web page. The page picks its tabs by
    task, so convscan gets the Predict tab and scanseg the Segment tab; their work runs here."""
    runs = tmp_path / "runs"
    served = core.load_served([
        save(runs, "convscan", data="moving-mnist", data_options={"test_clips": 4}, frame_size=16,
             context=3, horizon=2),
        save(runs, "scanseg", data="mnist-scenes")])
    assert core.tasks_of(served) == ["predict", "segment"]
    work = tmp_path / "work"
    work.mkdir()
    scan = by_name(served, "convscan")
    gif, strip = core.predict(scan, core.test_item(scan, 0)["frames"], work, horizon=6)
    with Image.open(gif) as im:
        assert im.n_frames == 3 + 6  # the context, then a closed-loop horizon past the training one
    assert strip.dtype == np.uint8 and strip.std() > 0
    paths = core.task_pictures(by_name(served, "scanseg"), work, "segment", index=1)
    assert paths and all(p.startswith(str(work)) and os.path.getsize(p) > 0 for p in paths)
