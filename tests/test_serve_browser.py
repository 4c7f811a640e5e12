"""`rnnimg serve` in a real headless browser: Debian's chromium driven by Playwright.

The page is served with two small models; the test opens it, samples, completes a test digit and a
drawing-sized upload, and checks that the pictures appear and are not blank, and that a bad upload
shows a readable message in the page. Skipped, with the reason, without Gradio, Playwright (the pip
package) or a chromium executable (``apt-get install chromium``; or set RNNIMG_CHROMIUM).
"""

import io
import os
import shutil
import socket

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
    for name in ("pixelrnn", "rowrnn"):
        torch.manual_seed(0)
        model = create_model(name, "debug")
        model.save_pretrained(tmp / name, extra={"data": {"name": "mnist-5k",
                                                          "options": model.dataset_options()}})
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


def test_sample_and_complete_in_a_browser(page_url, browser, tmp_path):
    url, workdir = page_url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url, wait_until="networkidle", timeout=120_000)
    assert page.get_by_role("tab", name="Sample").is_visible()
    assert page.get_by_role("tab", name="Complete").is_visible()
    assert page.get_by_role("tab", name="Predict").count() == 0  # no predictor served, no tab

    page.click("#sample-button")
    samples = picture(page.locator("#sample-output img"))
    assert not_blank(samples), "the sample grid is blank"

    page.get_by_role("tab", name="Complete").click()
    page.click("#complete-button")
    completions = picture(page.locator("#complete-output img"))
    given = picture(page.locator("#complete-input img"))
    assert not_blank(completions) and not_blank(given)

    # a bad upload: a readable message in the page, not a stack trace
    bad = tmp_path / "digit.png"
    bad.write_bytes(b"not a picture at all")
    page.get_by_role("radio", name="upload").check()
    page.locator("#complete-upload input[type=file]").set_input_files(str(bad))
    page.click("#complete-button")
    message = page.get_by_text("not a readable image")
    message.first.wait_for(timeout=60_000)
    assert "Traceback" not in page.content()
    page.close()


def test_the_page_writes_only_in_its_temp_folder(page_url):
    url, workdir = page_url
    assert os.environ["GRADIO_TEMP_DIR"].startswith(str(workdir))
