"""Links that broke a session (issue 19, 5), opened in the browser: the page loads, the
map is drawn, a notice names what was left out, and the server logs no error."""

import io

import numpy as np
import pytest
from conftest import serve, status
from PIL import Image
from playwright.sync_api import expect
from servers import stop

BRUSH = "%5B%22era5_tdd_sum%22%2C%22dem_slope_mean%22%2C%22a%22%2C%22b%22%2C%22c%22%2C%22d%22%5D"


@pytest.fixture(scope="module")
def served(cube, tmp_path_factory):
    """A server of its own, so that its log can be read: (url, log path)."""
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    proc, url = serve(cube[0], log)
    yield url, log
    stop(proc)


@pytest.mark.parametrize("query", ["?box=inf&x0=1&x1=1&y0=1&y1=1",
                                   f"?level=3&brush={BRUSH}&y1=NaN&vmax=1e400&fit=2"])
def test_a_link_that_broke_a_session_loads_the_page_with_a_notice(page, served, query,
                                                                  errors):
    url, log = served
    page.goto(url + query)
    expect(status(page)).to_contain_text("h3 level 3", timeout=60_000)
    notice = page.locator(".link-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("left out")
    page.wait_for_timeout(2000)  # the browser's own URL has reached the server by now
    shot = page.locator(".entropice-map").first.screenshot()
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # cells, land, graticule
    assert errors == []
    text = log.read_text()
    assert "Traceback" not in text and "ERROR" not in text and "raised" not in text, text
