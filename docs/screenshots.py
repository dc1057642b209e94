"""Screenshots of every tab of the dashboard for the README: serves ``app/`` on a cube
(default: the demo's, ``data/cube.zarr``) and photographs each tab in headless Chromium.

    python docs/screenshots.py [--cube data/cube.zarr] [--query "grid=h3&level=5"]
                               [--tabs Map,Evaluation]

Needs the test extras (playwright) and chromium, as the browser tests do.
"""

import argparse
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "ui"), str(ROOT / "tests")]
from conftest import chromium  # noqa: E402  (the browser tests' helpers)
from servers import free_port  # noqa: E402

TABS = {"Map": "dashboard.png", "Compare": "dashboard-compare.png",
        "Boxes": "dashboard-boxes.png",
        "Feature space": "dashboard-space.png",
        "Feature relevance": "dashboard-relevance.png",
        "Evaluation": "dashboard-evaluation.png", "Data": "dashboard-data.png"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cube", default="data/cube.zarr")
    ap.add_argument("--query", default="grid=h3&level=5")
    ap.add_argument("--box", type=int, default=None, help="a box to highlight")
    ap.add_argument("--tabs", default=",".join(TABS),
                    help="the tabs to photograph, comma-separated (default: all)")
    args = ap.parse_args()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", str(ROOT / "app"),
                             "--port", str(port), "--address", "127.0.0.1", "--args",
                             "--cube", args.cube], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/app?{args.query}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=30)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(),
                                         args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            box = f"&box={args.box}" if args.box is not None else ""
            page.goto(url + box)
            expect(page.locator(".map-status p")).to_contain_text("level", timeout=120_000)
            for tab in args.tabs.split(","):
                name = TABS[tab]
                # the evaluation runs long (the page scrolls inside): a taller window
                page.set_viewport_size({"width": 1440,
                                        "height": 3600 if tab == "Evaluation" else 900})
                page.locator(".bk-tab", has_text=tab).first.click()
                if tab == "Evaluation":
                    page.locator(".metrics-table").first.wait_for(timeout=120_000)
                page.wait_for_timeout(4000)
                page.screenshot(path=ROOT / "docs" / name)
                print("docs/" + name)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
