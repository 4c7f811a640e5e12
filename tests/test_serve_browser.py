"""`rnnimg serve` in a real headless browser: Debian's chromium driven by Playwright.

The page is served with four small models (two generators, a segmenter, a translator); the test
opens it, checks that every tab shows a first result without a click, samples, completes a test
digit, uploads an image in every tab that takes one (Complete, Segment, Translate) and checks the
result appears, and that a bad upload shows a readable message in the page. A second page serves a
super-resolution model: its Translate tab shows the input, the upscale and bicubic at twice the
input's size, for a test photo on open and for an upload. A third serves a reconstruction model:
its Reconstruct 3D tab draws the mesh in Gradio's Model3D canvas on open. A fourth serves a
pixelscan given a small image: the Sample tab's small-image upload (slow too). Skipped, with the
reason, without Gradio, Playwright (the pip package) or a chromium executable
(``apt-get install chromium``; or set RNNIMG_CHROMIUM).
"""

import io
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg import create_model

pytestmark = pytest.mark.browser
gradio = pytest.importorskip("gradio", reason="the web extra is not installed: pip install 'rnnimg[web]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")
CHROMIUM = os.environ.get("RNNIMG_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    pytest.skip("no chromium executable: apt-get install chromium (or set RNNIMG_CHROMIUM)",
                allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    from rnnimg.serve import serve

    tmp = tmp_path_factory.mktemp("runs")
    specs = []
    for name, data, options in (("pixelrnn", "mnist-5k", {}), ("rowrnn", "mnist-5k", {}),
                                ("reseg", "mnist-scenes", {}),
                                ("translator", "mnist-5k", {"corrupt": "denoise", "sigma": 25})):
        torch.manual_seed(0)
        model = create_model(name, "debug")
        model.save_pretrained(tmp / name, extra={"data": {"name": data, "options": {
            **model.dataset_options(), **options}}})
        specs.append(str(tmp / name))
    port = free_port()
    app, workdir = serve(specs, port=port, block=False)
    yield f"http://127.0.0.1:{port}/", workdir
    app.close()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


def picture(locator) -> np.ndarray:
    """The pixels of an <img> as the browser shows it (an element screenshot), grey."""
    locator.wait_for(state="visible", timeout=120_000)
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("L"), dtype=np.float32)


def not_blank(pixels: np.ndarray) -> bool:
    return pixels.size > 0 and pixels.std() > 10 and (pixels > 200).mean() > 0.01


def digit_png(path, light_page: bool = False):
    """A 56x56 picture of a bar, light on black (or dark on a light page)."""
    pixels = np.zeros((56, 56), np.uint8)
    pixels[10:46, 24:32] = 255
    Image.fromarray(255 - pixels if light_page else pixels).save(path)
    return str(path)


def upload(page, component: str, path: str, tries: int = 4) -> None:
    """Give the file input of ``component`` a file, and wait until the page shows its stem (in the
    component's rendered text; Gradio may render the stem and the suffix in separate elements). A
    file given just as the component appears is sometimes dropped (about one run in five on the
    busy 2-core machine): while the input is still there, it is given again. Whether the server
    got the file is checked by :func:`run_until_changed`, which runs the tab on it."""
    page.locator(component).wait_for(state="visible", timeout=60_000)
    page.wait_for_timeout(2000)  # let the component settle after being shown
    shown = f"document.querySelector({component!r}).innerText.includes({Path(path).stem!r})"
    for _ in range(tries):
        field = page.locator(f"{component} input[type=file]")
        if field.count():
            field.set_input_files(path)
        try:
            page.wait_for_function(shown, timeout=30_000)
            return
        except sync_api.TimeoutError:
            continue


def run_until_changed(page, button: str, output: str, before: str | None, tries: int = 4) -> None:
    """Click ``button`` until ``output``'s picture changes from ``before``. A click that reaches the
    server before the upload has (the page then says "upload ... first") is repeated."""
    changed = f"document.querySelector({output!r}).src != {before!r}"
    for attempt in range(tries):
        page.locator(button).click()
        try:
            page.wait_for_function(changed, timeout=120_000 if attempt == tries - 1 else 30_000)
            return
        except sync_api.TimeoutError:
            if attempt == tries - 1:
                raise
            page.wait_for_timeout(2000)


def test_every_tab_shows_a_result_on_open_and_takes_uploads(page_url, browser, tmp_path):
    url, workdir = page_url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url, wait_until="networkidle", timeout=120_000)
    tabs = ["Sample", "Complete", "Segment", "Translate"]
    for name in tabs:
        assert page.get_by_role("tab", name=name).is_visible()
    assert page.get_by_role("tab", name="Predict").count() == 0  # no predictor served, no tab

    # a first result in every tab, without a click
    assert not_blank(picture(page.locator("#sample-output img"))), "the sample grid is blank"
    page.get_by_role("tab", name="Complete").click()
    assert not_blank(picture(page.locator("#complete-output img")))
    for task in ("segment", "translate"):
        page.get_by_role("tab", name=task.capitalize()).click()
        assert picture(page.locator(f"#{task}-output img").first).std() > 5

    page.get_by_role("tab", name="Sample").click()
    before = page.locator("#sample-output img").get_attribute("src")
    page.locator("#sample-seed input").fill("1")  # the same seed would give the same picture
    page.locator("#sample-button").click()
    page.wait_for_function(f"document.querySelector('#sample-output img').src != {before!r}",
                           timeout=120_000)
    assert not_blank(picture(page.locator("#sample-output img")))

    # an upload in every tab that takes an image: its result replaces the first one
    uploads = {"complete": digit_png(tmp_path / "digit.png"),
               "segment": digit_png(tmp_path / "scene.png", light_page=True),
               "translate": digit_png(tmp_path / "noisy.png")}
    for task, path in uploads.items():
        page.get_by_role("tab", name=task.capitalize()).click()
        output = f"#{task}-output img"
        before = page.locator(output).first.get_attribute("src")
        page.locator(f"#{task}-source").get_by_role("radio", name="upload").check()
        upload(page, f"#{task}-upload", path)
        run_until_changed(page, f"#{task}-button", output, before)
        assert picture(page.locator(output).first).std() > 5, f"the {task} result is blank"
    page.get_by_role("tab", name="Complete").click()
    given = picture(page.locator("#complete-input img"))  # the uploaded bar, as the model sees it
    assert given[:, given.shape[1] // 2].mean() > given[:, 5].mean() + 100

    # a bad upload: a readable message in the page, not a stack trace
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a picture at all")
    page.locator("#complete-upload").get_by_role("button", name="Clear").first.click()
    upload(page, "#complete-upload", str(bad))
    page.locator("#complete-button").click()
    message = page.get_by_text("not a readable image")
    message.first.wait_for(timeout=60_000)
    assert "Traceback" not in page.content()
    page.close()


def test_the_page_writes_only_in_its_temp_folder(page_url):
    url, workdir = page_url
    assert os.environ["GRADIO_TEMP_DIR"].startswith(str(workdir))


@pytest.fixture(scope="module")
def upscale_url(tmp_path_factory):
    """The page serving one super-resolution model (recursr, debug: x2, grey; photos data)."""
    from rnnimg.serve import serve

    tmp = tmp_path_factory.mktemp("sr")
    torch.manual_seed(0)
    options = {"image_size": 16, "channels": 1, "corrupt": "downscale", "scale": 2}
    create_model("recursr", "debug").save_pretrained(tmp / "sr", extra={"data": {"name": "photos",
                                                                                 "options": options}})
    port = free_port()
    app, workdir = serve([str(tmp / "sr")], port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()
    shutil.rmtree(workdir, ignore_errors=True)


def natural_size(page, selector: str) -> tuple[int, int]:
    """(width, height) of the image an <img> holds, whatever size the page draws it at."""
    page.locator(selector).wait_for(state="visible", timeout=120_000)
    page.wait_for_function(f"document.querySelector({selector!r}).naturalWidth > 0", timeout=60_000)
    return tuple(page.locator(selector).evaluate("img => [img.naturalWidth, img.naturalHeight]"))


def test_the_translate_tab_upscales_beside_bicubic(upscale_url, browser, tmp_path):
    """A super-resolver's tab: on open, a test photo downscaled and upscaled beside bicubic with
    the sizes and scores; then an upload at its own size, upscaled x2."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(upscale_url, wait_until="networkidle", timeout=120_000)
    page.get_by_role("tab", name="Translate").click()
    for panel in ("input", "output", "bicubic", "original"):  # astronaut: 256x256 in, 512x512 out
        assert natural_size(page, f"#upscale-{panel} img") == (512, 512), panel
    caption = page.locator("#upscale-caption").inner_text()
    assert "256x256 in, 512x512 out" in caption and "PSNR-Y" in caption
    assert not page.locator("#translate-output").is_visible()  # the pictures gallery is hidden

    path = tmp_path / "small.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (23, 37), dtype=np.uint8)).save(path)
    before = page.locator("#upscale-output img").get_attribute("src")
    page.locator("#translate-source").get_by_role("radio", name="upload").check()
    upload(page, "#translate-upload", str(path))
    run_until_changed(page, "#translate-button", "#upscale-output img", before)
    assert natural_size(page, "#upscale-output img") == (74, 46)
    assert natural_size(page, "#upscale-bicubic img") == (74, 46)
    assert "37x23 in, 74x46 out" in page.locator("#upscale-caption").inner_text()
    assert not page.locator("#upscale-original").is_visible()  # nothing to compare an upload with
    assert "Traceback" not in page.content()
    page.close()


@pytest.fixture(scope="module")
def reconstruct_url(tmp_path_factory):
    """The page serving one small reconstruction model (r2n2, debug; a few shapes3d objects)."""
    from rnnimg.serve import serve

    tmp = tmp_path_factory.mktemp("r2n2")
    torch.manual_seed(0)
    model = create_model("r2n2", "debug", prior_occupancy=0.5)  # untrained: ~0.5 everywhere, a cube at 0.4
    model.save_pretrained(tmp / "r2n2", extra={"data": {"name": "shapes3d", "options": {
        **model.dataset_options(), "test_size": 4, "train_size": 4, "val_size": 2}}})
    port = free_port()
    app, workdir = serve([str(tmp / "r2n2")], port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()
    shutil.rmtree(workdir, ignore_errors=True)


def test_the_reconstruct_tab_shows_the_mesh_in_a_3d_viewer_on_open(reconstruct_url, browser):
    """On open: the mesh drawn in Model3D's canvas, the turntable GIF beside it, the summary."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(reconstruct_url, wait_until="networkidle", timeout=120_000)
    page.get_by_role("tab", name="Reconstruct 3D").click()
    canvas = page.locator("#reconstruct-mesh canvas").first
    canvas.wait_for(state="visible", timeout=120_000)
    box = canvas.bounding_box()
    assert box and box["width"] > 50 and box["height"] > 50
    for _ in range(30):  # the viewer loads the .obj, then draws it: the canvas stops being uniform
        drawn = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("L"), dtype=np.float32)
        drawn = drawn[40:]  # below the label and the buttons drawn over the canvas
        if drawn.std() > 20:
            break
        page.wait_for_timeout(1000)
    assert drawn.std() > 20, "the 3D viewer shows no mesh"
    assert not_blank(picture(page.locator("#reconstruct-spin img")))
    page.wait_for_function("document.querySelector('#reconstruct-message').innerText.includes('triangles')",
                           timeout=60_000)
    assert "Traceback" not in page.content()
    page.close()


@pytest.fixture(scope="module")
def lowres_url(tmp_path_factory):
    """The page serving a pixelscan given a small image (x2: 4x4 -> 8x8 colour, shapes) first and
    a plain rowrnn second, and small images: one the model takes, a grey one."""
    from rnnimg.data import load_dataset
    from rnnimg.serve import serve

    tmp = tmp_path_factory.mktemp("lowres")
    torch.manual_seed(0)
    cond = create_model("pixelscan", "debug", image_size=8, channels=3, output="categorical", levels=256,
                        low_res_scale=2)
    cond.save_pretrained(tmp / "cond", extra={"data": {"name": "shapes", "options": {
        **cond.dataset_options(), "image_size": 8, "test_size": 4}}})
    create_model("rowrnn", "debug").save_pretrained(tmp / "plain", extra={"data": {"name": "mnist-5k"}})
    low = load_dataset("shapes", "test", image_size=8, low_res=2, test_size=4)[1]["low_res"]
    pixels = (low.permute(1, 2, 0) * 255).round().byte().numpy()
    Image.fromarray(pixels).save(tmp / "small.png")
    Image.fromarray(pixels[:, :, 0]).save(tmp / "grey.png")
    port = free_port()
    app, workdir = serve([str(tmp / "cond"), str(tmp / "plain")], port=port, block=False)
    yield f"http://127.0.0.1:{port}/", tmp
    app.close()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.slow
def test_the_sample_tab_takes_the_small_image_of_a_low_res_model(lowres_url, browser):
    """The small-image upload is there for the conditional model (which opens with a grid drawn
    from its first test item's small image), gone for the plain one; an uploaded small image gives
    exactly the page's grid for it (the upscale first, then the samples); a grey one is refused
    with the task layer's line, naming the control."""
    from rnnimg.serve import core

    url, folder = lowres_url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url, wait_until="networkidle", timeout=120_000)
    assert page.locator("#sample-low-res").is_visible()
    assert "4x4 colour" in page.locator("#sample-low-res").inner_text()
    # on open: 16 samples and the upscale, 8 a row, 8x8 pictures with 2-pixel padding, shown 3x
    assert natural_size(page, "#sample-output img") == ((2 + 8 * 10) * 3, (2 + 3 * 10) * 3)

    before = page.locator("#sample-output img").get_attribute("src")
    upload(page, "#sample-low-res", str(folder / "small.png"))
    run_until_changed(page, "#sample-button", "#sample-output img", before)
    src = page.locator("#sample-output img").get_attribute("src")
    shown = np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB"))
    cond = core.load_served([str(folder / "cond")])[0]
    expected = core.sample(cond, 16, seed=0, low_res=core.low_res_for(cond, str(folder / "small.png")))
    assert np.array_equal(shown, expected)  # a lossless PNG of the task layer's grid

    page.locator("#sample-low-res").get_by_role("button", name="Clear").first.click()
    upload(page, "#sample-low-res", str(folder / "grey.png"))
    page.locator("#sample-button").click()
    page.get_by_text("the small image is a grey image").first.wait_for(timeout=60_000)

    page.locator("#sample-model input").click()
    page.get_by_role("option", name=str(folder / "plain")).click()
    page.wait_for_function("!document.querySelector('#sample-low-res') || "
                           "document.querySelector('#sample-low-res').offsetParent === null", timeout=60_000)
    assert "Traceback" not in page.content()
    page.close()
