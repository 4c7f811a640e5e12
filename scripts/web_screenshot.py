"""Screenshots of `rnnimg serve` for the README, taken in headless chromium through Playwright.

    python scripts/web_screenshot.py                      # every shipped model
    python scripts/web_screenshot.py pretrained:pixelrnn-mnist --out docs/images

Writes OUT/web.png (the Sample tab after sampling), OUT/web-complete.png (the Complete tab after
completing a test digit) and, when a predictor is served, OUT/web-predict.png. Needs
`pip install 'rnnimg[web]' playwright` and Debian's chromium.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", help="run folders or pretrained:NAME (default: all shipped)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    import torch
    from playwright.sync_api import sync_playwright

    from rnnimg.serve import serve

    torch.set_num_threads(1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app, workdir = serve(args.runs or None, port=port, block=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True,
                                        args=["--no-sandbox", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle", timeout=120_000)
            page.get_by_role("tab", name="Sample").click()
            page.click("#sample-button")
            page.locator("#sample-output img").wait_for(state="visible", timeout=300_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(out / "web.png"), full_page=True)
            page.get_by_role("tab", name="Complete").click()
            page.click("#complete-button")
            page.locator("#complete-output img").wait_for(state="visible", timeout=300_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(out / "web-complete.png"), full_page=True)
            if page.get_by_role("tab", name="Predict").count():
                page.get_by_role("tab", name="Predict").click()
                page.click("#predict-button")
                page.locator("#predict-output img").wait_for(state="visible", timeout=300_000)
                page.wait_for_timeout(1000)
                page.screenshot(path=str(out / "web-predict.png"), full_page=True)
            browser.close()
    finally:
        app.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {out / 'web.png'} and {out / 'web-complete.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
