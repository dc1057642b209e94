"""The served dashboard in a real browser: it loads cleanly, follows the sidebar,
highlights a box, keeps its state in the URL and refuses what it should."""

import io
import re

import numpy as np
import pytest
from conftest import serve
from PIL import Image
from playwright.sync_api import expect

HIGHLIGHT = (255, 45, 149)  # the box highlight, #ff2d95


@pytest.fixture
def errors(page):
    found = []
    page.on("console", lambda m: found.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(str(e)))
    return found


def status(page):
    return page.locator(".map-status p")


def map_png(page) -> np.ndarray:
    shot = page.locator(".entropice-map").first.screenshot()
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)


def select(page, label, value):
    page.locator(".bk-input-group", has_text=label).locator("select").first.select_option(
        value)


def test_page_loads_cleanly_and_every_view_renders(page, app_url, errors, artifacts):
    """Every tab renders with no console error, and no request leaves the machine (the
    page works offline: every script, style sheet and font is served by the app)."""
    outside, failed = [], []
    page.on("request", lambda r: outside.append(r.url) if not re.match(
        r"(https?|wss?)://127\.0\.0\.1[:/]|data:|blob:", r.url) else None)
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(app_url)
    expect(status(page)).to_contain_text("h3 level", timeout=60_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=artifacts / "map.png")
    for tab, text in [("Boxes", "Highlight box"), ("Feature relevance", None),
                      ("Evaluation", "balanced_accuracy"), ("Data", "Feature")]:
        page.locator(".bk-tab", has_text=tab).first.click()
        if text:
            expect(page.get_by_text(text).first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=artifacts / f"{tab.lower().replace(' ', '_')}.png")
    assert errors == []
    assert outside == [] and failed == []


def test_grid_level_and_layer_change_the_map(page, app_url, errors):
    page.goto(app_url + "?grid=h3&level=2")
    expect(status(page)).to_contain_text("h3 level 2", timeout=60_000)
    page.wait_for_timeout(500)
    before = map_png(page)
    select(page, "Level", "3")
    expect(status(page)).to_contain_text("h3 level 3")
    page.wait_for_timeout(500)
    level3 = map_png(page)
    assert np.abs(level3 - before).mean() > 1
    select(page, "Layer", "era5_tdd_sum")
    expect(status(page)).to_contain_text("era5_tdd_sum")
    page.wait_for_timeout(500)
    assert np.abs(map_png(page) - level3).mean() > 1
    page.locator(".bk-btn", has_text="healpix").click()
    expect(status(page)).to_contain_text("healpix level 4")
    assert errors == []


def test_choosing_a_box_highlights_its_cells(page, app_url, errors, artifacts):
    page.goto(app_url + "?grid=h3&level=3")
    expect(status(page)).to_contain_text("h3 level 3", timeout=60_000)
    page.wait_for_timeout(500)
    assert not (map_png(page) == HIGHLIGHT).all(axis=-1).any()
    box = page.locator(".bk-input-group", has_text="Highlight box").locator("select").first
    labels = box.locator("option").all_inner_texts()
    samples = [int(re.search(r"(\d+) samples", t)[1]) if "samples" in t else -1
               for t in labels]
    box.select_option(index=int(np.argmax(samples)))  # the largest box
    expect(page).to_have_url(re.compile(r"box=\d+"))
    page.wait_for_timeout(1500)
    img = map_png(page)
    pink = (np.abs(img - np.array(HIGHLIGHT)) < 60).all(axis=-1)
    page.screenshot(path=artifacts / "box_highlight.png")
    assert pink.sum() > 50
    assert errors == []


def test_a_link_reopens_the_same_view(page, app_url, errors):
    page.goto(app_url + "?grid=h3&level=3&layer=dem_slope_mean&year=2021"
                        "&x0=-2000000&x1=0&y0=-2000000&y1=0")
    expect(status(page)).to_contain_text("h3 level 3, dem_slope_mean, 2021", timeout=60_000)
    assert "in view" in status(page).inner_text()
    n_view = int(re.search(r"([\d,]+) in view", status(page).inner_text())[1].replace(",", ""))
    n_all = int(re.search(r"([\d,]+) cells", status(page).inner_text())[1].replace(",", ""))
    assert n_view < n_all / 2  # the extent came from the link
    select(page, "Year", "2022")
    expect(page).to_have_url(re.compile(r"year=2022"), timeout=30_000)  # a loaded machine
    assert "layer=dem_slope_mean" in page.url
    assert errors == []


def test_request_parameters_cannot_reach_other_files(page, app_url, errors):
    page.goto(app_url + "?grid=..%2F..%2Fetc&level=3&run=..%2F..%2F..%2Fetc%2Fpasswd"
                        "&layer=%2Fetc%2Fpasswd")
    expect(status(page)).to_contain_text("h3 level 3", timeout=60_000)
    assert "passwd" not in status(page).inner_text()
    assert errors == []


def test_a_missing_cube_tells_the_user_to_run_the_demo(page, tmp_path):
    proc, url = serve(tmp_path / "no-cube.zarr", tmp_path / "server.log")
    try:
        page.goto(url)
        expect(page.get_by_text("entropice demo").first).to_be_visible(timeout=60_000)
        assert "Traceback" not in page.content()
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_group_without_predictions_has_no_prediction_layers(page, app_url):
    page.goto(app_url + "?grid=healpix&level=4")
    expect(status(page)).to_contain_text("healpix level 4", timeout=60_000)
    expect(page.get_by_text("has no predictions yet").first).to_be_visible()
    options = page.locator(".bk-input-group", has_text="Layer").locator("option")
    assert not any(o.startswith("P(") for o in options.all_inner_texts())


def test_clicking_a_cell_shows_its_details(page, app_url, errors):
    page.goto(app_url + "?grid=h3&level=3")
    expect(status(page)).to_contain_text("h3 level 3", timeout=60_000)
    page.locator(".entropice-map").first.locator(".bk-events").first.click(
        position={"x": 330, "y": 330})
    details = page.locator(".cell-details")
    expect(details).to_contain_text("Cell", timeout=30_000)
    expect(details).to_contain_text("predicted:")
    assert errors == []


def in_view(page) -> int:
    return int(re.search(r"([\d,]+) in view", status(page).inner_text())[1].replace(",", ""))


def test_zooming_in_outlines_the_cells_with_their_details(page, app_url, errors):
    page.goto(app_url + "?grid=h3&level=3")
    expect(status(page)).to_contain_text("h3 level 3", timeout=60_000)
    events = page.locator(".entropice-map").first.locator(".bk-events").first
    box = events.bounding_box()
    x, y = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.6
    page.mouse.move(x, y)
    for _ in range(20):  # zoom in step by step until few cells are in view
        before = status(page).inner_text()
        page.mouse.wheel(0, -200)
        expect(status(page)).not_to_have_text(before, timeout=30_000)
        if in_view(page) <= 400:
            break
    assert 0 < in_view(page) <= 400
    page.wait_for_timeout(500)
    page.mouse.move(x + 3, y + 3)
    tooltip = page.locator(".bk-Tooltip").filter(has_text="probabilities")
    expect(tooltip.first).to_be_visible(timeout=10_000)
    expect(tooltip.first).to_contain_text("area_km2")
    assert errors == []
