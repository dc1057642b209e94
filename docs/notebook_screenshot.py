"""Notebook 01 in JupyterLab with the network off, for the README: starts `jupyter lab`
on the notebooks (the kernel reading ``--cube``), opens it in headless Chromium with
every request beyond 127.0.0.1 refused, runs every cell and photographs the plots.

    python docs/notebook_screenshot.py [--cube data/cube.zarr] [--notebook 01_explore_cube]

Needs the notebooks and test extras (jupyterlab, playwright) and chromium. Prints the
requests it refused (none should come from a plot).
"""

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "ui"), str(ROOT / "tests")]
from conftest import chromium  # noqa: E402  (the browser tests' helpers)
from servers import free_port  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cube", default="data/cube.zarr")
    ap.add_argument("--notebook", default="01_explore_cube")
    ap.add_argument("--out", default=str(ROOT / "docs" / "notebook01-jupyterlab.png"))
    args = ap.parse_args()
    port = free_port()
    env = {**os.environ, "ENTROPICE_CUBE": str(Path(args.cube).resolve())}
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
         f"--ServerApp.root_dir={ROOT / 'notebooks'}",
         *(["--allow-root"] if os.geteuid() == 0 else [])],  # a container's root
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if lab.poll() is not None:
                raise SystemExit("jupyter lab exited: is the notebooks extra installed?")
            try:
                urllib.request.urlopen(f"{base}/api", timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        refused = shoot(f"{base}/lab/tree/{args.notebook}.ipynb", args.out)
    finally:
        lab.terminate()
        lab.wait(30)
    print(f"wrote {args.out}; requests refused: {refused or 'none'}")


def shoot(url, out) -> list[str]:
    """Open the notebook offline, run all its cells, photograph it; the refused URLs."""
    refused = []

    def route(r):
        if r.request.url.startswith("http://127.0.0.1"):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.route("**/*", route)
        page.goto(url)
        page.locator(".jp-Notebook").wait_for(timeout=120_000)
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
            timeout=120_000)
        page.wait_for_timeout(3000)  # the kernel's connection
        cells = page.locator(".jp-Notebook .jp-Cell")
        cells.first.click()
        for _ in range(cells.count()):  # every cell in turn, as a reader runs them
            page.keyboard.press("Shift+Enter")
            page.wait_for_timeout(300)
        page.wait_for_timeout(3000)
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
            timeout=600_000)
        plots = page.locator(".jp-OutputArea-output canvas")
        try:
            plots.first.wait_for(timeout=60_000)
        finally:
            page.screenshot(path=out)
        page.wait_for_timeout(3000)
        plots.first.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        page.screenshot(path=out)
        browser.close()
    return refused


if __name__ == "__main__":
    main()
