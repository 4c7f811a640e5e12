"""Screenshots of `rnnimg serve` for the README, taken in headless chromium through Playwright.

    python scripts/web_screenshot.py                      # every shipped model
    python scripts/web_screenshot.py pretrained:pixelrnn-mnist --out docs/images

Writes OUT/web.png (the Sample tab), OUT/web-complete.png (the Complete tab) and, when such models
are served, OUT/web-predict.png and OUT/web-segment.png, each with the first result the page shows
when it opens. Needs
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
    written = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True,
                                        args=["--no-sandbox", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle", timeout=120_000)
            # every tab shows a first result when the page opens: wait for it, click nothing
            shots = [("Sample", "#sample-output img", "web.png"),
                     ("Complete", "#complete-output img", "web-complete.png"),
                     ("Predict", "#predict-output img", "web-predict.png"),
                     ("Segment", "#segment-output img", "web-segment.png")]
            for tab, result, name in shots:
                if not page.get_by_role("tab", name=tab).count():
                    continue
                page.get_by_role("tab", name=tab).click()
                page.locator(result).wait_for(state="visible", timeout=300_000)
                page.wait_for_timeout(1000)
                page.screenshot(path=str(out / name), full_page=True)
                written.append(out / name)
            browser.close()
    finally:
        app.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
