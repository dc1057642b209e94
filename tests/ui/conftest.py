"""Browser tests: `panel serve app/` on a small cube, driven by Debian's headless
chromium through pytest-playwright. Screenshots go to test-artifacts/."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import small_cube
from servers import free_port, stop

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ENTROPICE_ARTIFACTS", ROOT / "test-artifacts"))


def chromium() -> str:
    path = os.environ.get("ENTROPICE_CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")
    if not path:
        raise RuntimeError("the browser tests need chromium: `apt-get install chromium` "
                           "(or set ENTROPICE_CHROMIUM to a Chromium binary).")
    return path


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": chromium(), "headless": True,
            "args": ["--no-sandbox", "--disable-gpu"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1300, "height": 1000}}


def serve(cube_path, log_path):
    """Start `panel serve app/` on a free port; return (process, url)."""
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", str(ROOT / "app"), "--port", str(port),
         "--address", "127.0.0.1", "--args", "--cube", str(cube_path)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/app"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"panel serve exited: {Path(log_path).read_text()}")
        try:
            urllib.request.urlopen(url, timeout=30)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"panel serve did not answer: {Path(log_path).read_text()}")


@pytest.fixture(scope="session")
def cube(tmp_path_factory):
    path = tmp_path_factory.mktemp("ui") / "cube.zarr"
    return path, small_cube.build(path)


@pytest.fixture(scope="session")
def app_url(cube, tmp_path_factory):
    proc, url = serve(cube[0], tmp_path_factory.mktemp("log") / "server.log")
    yield url
    stop(proc)


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def errors(page):
    """The page's console errors and uncaught exceptions, as they come."""
    found = []
    page.on("console", lambda m: found.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(str(e)))
    return found


def status(page):
    """The map's status line."""
    return page.locator(".map-status p")


def brush(page):
    """Drag a rectangle over the middle of the feature space's plot."""
    plot = page.locator(".space-plot .bk-events").first.bounding_box()
    x, y, w, h = plot["x"], plot["y"], plot["width"], plot["height"]
    page.mouse.move(x + 0.2 * w, y + 0.2 * h)
    page.mouse.down()
    page.mouse.move(x + 0.5 * w, y + 0.5 * h, steps=8)
    page.mouse.move(x + 0.8 * w, y + 0.8 * h, steps=8)
    page.mouse.up()
