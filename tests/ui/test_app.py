"""The served dashboard in a real browser: it loads cleanly, follows the sidebar,
highlights a box, keeps its state in the URL and refuses what it should."""

import io
import re

import numpy as np
import pytest
from conftest import brush, serve, status
from PIL import Image
from playwright.sync_api import expect
from servers import stop

HIGHLIGHT = (255, 45, 149)  # the box highlight, #ff2d95


def map_png(page) -> np.ndarray:
    shot = page.locator(".entropice-map").first.screenshot()
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)


def select(page, label, value):
    page.locator(".bk-input-group", has_text=label).locator("select").first.select_option(
        value)


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_page_loads_cleanly_and_every_view_renders(page, app_url, errors, artifacts, size):
    """Every tab renders with no console error, and no request leaves the machine (the
    page works offline: every script, style sheet and font is served by the app), in a
    laptop's window and a desktop's."""
    page.set_viewport_size({"width": size[0], "height": size[1]})
    shot = f"{size[0]}x{size[1]}"
    outside, failed = [], []
    page.on("request", lambda r: outside.append(r.url) if not re.match(
        r"(https?|wss?)://127\.0\.0\.1[:/]|data:|blob:", r.url) else None)
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(app_url)
    expect(status(page)).to_contain_text("h3 level", timeout=60_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=artifacts / f"{shot}_map.png")
    for tab, text in [("Compare", "Zooming or panning"), ("Boxes", "Highlight box"),
                      ("Feature space", "No cells brushed"),
                      ("Feature relevance", "Click a feature"),
                      ("Evaluation", "balanced_accuracy"), ("Data", "Feature")]:
        page.locator(".bk-tab", has_text=tab).first.click()
        expect(page.get_by_text(text).first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=artifacts / f"{shot}_{tab.lower().replace(' ', '_')}.png")
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
        stop(proc)


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
    tooltip = page.locator(".bk-Tooltip").filter(has_text="RTS label")
    expect(tooltip.first).to_be_visible(timeout=10_000)
    expect(tooltip.first).to_contain_text("any RTS")
    expect(tooltip.first).to_contain_text(
        re.compile(r"RTS label\W*(none|low|medium|high|not mapped)"))
    expect(tooltip.first).not_to_contain_text(re.compile(r"\de-|NaN|\d{7}"))
    visible = [t for t in page.locator(".bk-Tooltip").all() if t.is_visible()]
    assert len(visible) == 1  # one tooltip, never two on top of each other
    assert errors == []


def test_a_click_on_the_heat_map_highlights_that_box_with_its_rule(page, app_url, errors,
                                                                    artifacts):
    page.goto(app_url + "?grid=h3&level=3&tab=Boxes")
    rule = page.locator(".box-rule")
    expect(rule).to_contain_text("Click a box", timeout=60_000)
    heat = page.locator(".bk-Canvas").first
    expect(heat).to_be_visible()
    page.wait_for_timeout(1000)
    frame = page.locator(".bk-events").first.bounding_box()
    # the heat map's plot area starts after its y-axis labels; click its first column
    page.mouse.click(frame["x"] + frame["width"] * 0.3, frame["y"] + frame["height"] * 0.4)
    expect(rule).to_contain_text("Box ", timeout=30_000)
    expect(rule).to_contain_text("holding RTS")
    expect(page).to_have_url(re.compile(r"box=\d+"))
    box = int(re.search(r"box=(\d+)", page.url)[1])
    expect(rule).to_contain_text(f"Box {box}")
    page.screenshot(path=artifacts / "box_rule.png")
    page.locator(".bk-tab", has_text="Map").first.click()
    expect(page.locator(".map-box-rule")).to_contain_text(f"Box {box}", timeout=30_000)
    page.wait_for_timeout(1500)
    pink = (np.abs(map_png(page) - np.array(HIGHLIGHT)) < 60).all(axis=-1)
    assert pink.sum() > 20
    assert errors == []


def test_a_click_on_a_feature_bar_shows_it_on_the_map(page, app_url, errors):
    page.goto(app_url + "?grid=h3&level=3&tab=Feature+relevance")
    expect(page.get_by_text("Click a feature").first).to_be_visible(timeout=60_000)
    page.wait_for_timeout(1500)
    bars = page.locator(".bk-events").first.bounding_box()
    # the top bar (the largest weight) sits near the plot's top, right of its labels
    for fy in (0.1, 0.3, 0.5, 0.7):
        page.mouse.click(bars["x"] + bars["width"] * 0.6, bars["y"] + bars["height"] * fy)
        if "tab=Map" in page.url:
            break
        page.wait_for_timeout(500)
    expect(page).to_have_url(re.compile(r"tab=Map"), timeout=30_000)
    layer = re.search(r"layer=([a-z0-9_]+)", page.url)[1]
    assert layer.startswith(("era5_", "dem_", "emb_"))
    expect(status(page)).to_contain_text(f"h3 level 3, {layer}", timeout=30_000)
    assert errors == []


def test_colours_and_tab_come_back_from_the_link(page, app_url, errors):
    page.goto(app_url + "?grid=h3&level=3&layer=era5_tdd_sum&cmap=magma&scale=log&fit=true"
                        "&tab=Data")
    expect(page.locator(".bk-tab.bk-active").first).to_have_text("Data", timeout=60_000)
    expect(page.get_by_text("Feature").first).to_be_visible(timeout=30_000)
    for key in ("cmap=magma", "scale=log", "fit=true", "layer=era5_tdd_sum"):
        assert key in page.url
    page.locator(".bk-tab", has_text="Map").first.click()
    expect(status(page)).to_contain_text("era5_tdd_sum, 2022", timeout=30_000)
    expect(status(page)).to_contain_text("log scale")
    expect(page).to_have_url(re.compile(r"tab=Map"))
    assert errors == []


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_the_map_fits_the_window(page, app_url, errors, size, artifacts):
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.goto(app_url + "?grid=h3&level=3")
    expect(status(page)).to_contain_text("h3 level 3", timeout=60_000)
    page.wait_for_timeout(1000)
    box = page.locator(".entropice-map").first.bounding_box()
    page.screenshot(path=artifacts / f"map_{size[0]}x{size[1]}.png")
    assert box["x"] + box["width"] <= size[0] and box["y"] + box["height"] <= size[1]
    assert box["width"] * box["height"] >= 0.25 * size[0] * size[1]
    assert errors == []


def test_links_that_would_break_a_session_are_refused(page, app_url, errors):
    page.goto(app_url + "?grid=h3&level=3&box=inf&x0=1&x1=1&y0=1&y1=1&vmin=nan&scale=x")
    expect(status(page)).to_contain_text("h3 level 3", timeout=60_000)
    select(page, "Year", "2021")  # the session goes on, with the link's bad values gone
    expect(page).to_have_url(re.compile(r"year=2021"), timeout=30_000)
    assert "box=inf" not in page.url and "x0=1&" not in page.url and "nan" not in page.url
    assert errors == []


def test_brushing_the_feature_space_lights_the_cells_on_the_map(page, app_url, errors,
                                                                artifacts):
    page.goto(app_url + "?grid=h3&level=3&tab=Feature+space")
    expect(page.get_by_text("No cells brushed").first).to_be_visible(timeout=60_000)
    expect(page.locator(".space-legend")).to_contain_text("not mapped")
    page.wait_for_timeout(2000)
    brush(page)
    brushed = page.locator(".space-status")
    expect(brushed).to_contain_text(re.compile(r"\d[\d,]* cells brushed"), timeout=30_000)
    # (the Markdown's text is in its shadow root: read the bold words)
    # (the bold words holding the count: "No cells brushed" may still be there a moment)
    lit = page.locator(".space-status strong",
                       has_text=re.compile(r"\d[\d,]* cells brushed")).first.inner_text()
    count = re.search(r"(\d[\d,]*) cells brushed", lit)[1]
    page.screenshot(path=artifacts / "feature_space.png")
    page.locator(".bk-tab", has_text="Map").first.click()
    # the status line read in one go in the page (it is redrawn as the map settles)
    text = page.wait_for_function("""() => {
      for (const doc of Bokeh.documents)
        for (const m of doc._all_models.values())
          if (m.css_classes && m.css_classes.includes("map-status") &&
              / cells lit/.test(m.text)) return m.text;
      return false;
    }""", polling="raf", timeout=30_000).json_value()
    assert int(re.search(r"(\d[\d,]*) cells lit", text)[1].replace(",", "")) > 0
    pink = 0
    for _ in range(10):  # the highlight drawn
        page.wait_for_timeout(500)
        pink = (np.abs(map_png(page) - np.array(HIGHLIGHT)) < 60).all(axis=-1).sum()
        if pink > 20:
            break
    assert pink > 20
    # the brush is in the link: a new page from it lights the same cells
    expect(page).to_have_url(re.compile(r"brush="), timeout=30_000)
    again = page.context.new_page()
    again.goto(page.url.replace("tab=Map", "tab=Feature+space"))
    expect(again.locator(".space-status").first).to_contain_text(
        f"{count} cells brushed", timeout=60_000)
    again.close()
    assert errors == []


def test_compare_zooms_both_maps_together(page, app_url, errors, artifacts):
    page.goto(app_url + "?grid=h3&level=3&tab=Compare")
    left, right = page.locator(".left-map .map-status p"), page.locator(".right-map .map-status p")
    expect(right).to_contain_text("healpix level", timeout=60_000)
    expect(left).to_contain_text("h3 level 3")
    page.wait_for_timeout(1000)

    def shown(status):
        return int(re.search(r"([\d,]+) in view", status.inner_text())[1].replace(",", ""))

    before = shown(right)
    box = page.locator(".left-map .bk-events").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.6)
    for _ in range(4):
        page.mouse.wheel(0, -300)
        page.wait_for_timeout(700)
    expect(right).not_to_contain_text(f" {before:,} in view", timeout=30_000)
    page.wait_for_timeout(2500)
    assert shown(right) < before
    page.screenshot(path=artifacts / "compare.png")
    # the right map shows the same extent: its coastline lies where the left one's does
    page.mouse.move(5, 5)
    page.wait_for_timeout(500)

    def coast(side):
        shot = page.locator(f".{side}-map .entropice-map").first.screenshot()
        img = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)
        dark = (img[5:420, 5:420] < 90).all(axis=-1)
        g = np.pad(dark, 2)
        return dark | g[:-4, 2:-2] | g[4:, 2:-2] | g[2:-2, :-4] | g[2:-2, 4:]

    left_coast, right_coast = coast("left"), coast("right")
    assert left_coast.sum() > 100
    assert (left_coast & right_coast).sum() / (left_coast | right_coast).sum() > 0.3
    # the right map's choice is in the link: a new page from it shows the same maps
    expect(page).to_have_url(re.compile(r"right_grid=healpix"), timeout=30_000)
    assert "right_level=" in page.url
    again = page.context.new_page()
    url = re.sub(r"right_level=\w+", "right_level=2",
                 re.sub(r"right_grid=\w+", "right_grid=h3", page.url))
    again.goto(url)
    expect(again.locator(".right-map .map-status p")).to_contain_text(
        "h3 level 2", timeout=60_000)
    expect(again.locator(".left-map .map-status p")).to_contain_text("h3 level 3")
    again.close()
    assert errors == []


RELEVANCE_AXES = """() => {
  // each plot's feature axis (bottom to top), the features of its bars or cells and
  // where it is on the page (top, bottom)
  const out = {};
  for (const doc of Bokeh.documents)
    for (const m of doc._all_models.values()) {
      const title = m.title && m.title.text;
      if (typeof title !== "string" || !m.y_range || !m.y_range.factors) continue;
      const key = title.startsWith("eSPA+ weights") ? "bars"
        : title.startsWith("Permutation importance") ? "importance"
        : title.startsWith("Box centres") ? "boxes"
        : title.startsWith("Weights of the most relevant") ? "across" : null;
      if (key === null) continue;
      const drawn = {feature: [], weight: []};
      for (const r of m.renderers) {
        const source = r.data_source;
        if (!source || !source.get_column) continue;
        const f = source.get_column("feature");
        if (!f) continue;
        drawn.feature.push(...Array.from(f));
        const w = source.get_column("weight");
        if (w && key === "bars") drawn.weight.push(...Array.from(w));
      }
      const at = [];
      for (const view of Bokeh.index.find(m)) {
        const r = view.el.getBoundingClientRect();
        at.push(r.top, r.bottom);
      }
      out[key] = {factors: Array.from(m.y_range.factors), drawn, at};
    }
  return out.bars && out.bars.drawn.weight.length && out.across ? out : false;
}"""


def relevance_axes(page) -> dict:
    return page.wait_for_function(RELEVANCE_AXES, polling=500, timeout=60_000).json_value()


def check_largest_on_top(page, artifacts, name):
    """The weights' bars, bottom to top, in the order of their weights (the largest on
    top), every bar on the axis; the permutation importance on the same axis; neither
    under the heat map below them (it hid the bottom bar and the axis)."""
    page.wait_for_timeout(1500)
    axes = relevance_axes(page)
    page.screenshot(path=artifacts / f"{name}.png")
    bars = axes["bars"]
    by_feature = dict(zip(bars["drawn"]["feature"], bars["drawn"]["weight"]))
    assert sorted(bars["factors"]) == sorted(by_feature)  # every bar, nothing else
    w = [by_feature[f] for f in bars["factors"]]
    assert w == sorted(w) and w[-1] == max(by_feature.values())  # the largest on top
    assert bars["factors"] == bars["drawn"]["feature"][:len(bars["factors"])]
    if "importance" in axes:
        assert axes["importance"]["factors"] == bars["factors"]
    below = axes["across"]["at"][0]
    for plot in ("bars", "importance"):
        if plot in axes:
            assert axes[plot]["at"][1] <= below + 1, (plot, axes[plot]["at"], below)
    return axes


def test_the_largest_weight_is_on_top_whatever_tabs_were_visited(page, app_url, errors,
                                                                  artifacts):
    """The boxes' heat map has a feature axis of its own (its top features, in its own
    order): visiting it first must not reorder the weights' bars, nor the reverse."""
    page.goto(app_url + "?grid=h3&level=3&tab=Feature+relevance")
    expect(page.get_by_text("Click a feature").first).to_be_visible(timeout=60_000)
    direct = check_largest_on_top(page, artifacts, "relevance_direct")["bars"]["factors"]
    for tab in ("Map", "Boxes", "Feature relevance"):
        page.locator(".bk-tab", has_text=tab).first.click()
    after = check_largest_on_top(page, artifacts, "relevance_after_boxes")
    assert after["bars"]["factors"] == direct
    page.goto(app_url + "?grid=h3&level=3")
    expect(status(page)).to_contain_text("h3 level 3", timeout=60_000)
    for tab in ("Boxes", "Feature relevance"):
        page.locator(".bk-tab", has_text=tab).first.click()
        if tab == "Boxes":
            expect(page.locator(".box-rule")).to_contain_text("Click a box", timeout=30_000)
            page.wait_for_timeout(1500)
    after = check_largest_on_top(page, artifacts, "relevance_map_boxes_relevance")
    assert after["bars"]["factors"] == direct
    boxes = after["boxes"]  # and the heat map keeps its own features, its own order
    assert sorted(boxes["factors"]) == sorted(set(boxes["drawn"]["feature"]))
    assert errors == []


COLOUR_BAR = """(title) => {
  // the colour bar whose title holds ``title``: its ticks, their labels and its colours
  // as the server set them, and the ticks its view draws (``drawn``)
  for (const doc of Bokeh.documents)
    for (const m of doc._all_models.values()) {
      if (m.color_mapper === undefined || m.major_label_overrides === undefined) continue;
      if (typeof m.title !== "string" || !m.title.includes(title)) continue;
      const o = m.major_label_overrides;
      const drawn = [];
      for (const view of Bokeh.index.find(m)) {
        const axis = view._axis_view;
        drawn.push(...Array.from(axis.tick_coords.major[axis.dimension]));
      }
      return {title: m.title, ticks: m.ticker.ticks ? Array.from(m.ticker.ticks) : null,
              labels: o instanceof Map ? Object.fromEntries(o) : o,
              low: m.color_mapper.low, high: m.color_mapper.high,
              palette: Array.from(m.color_mapper.palette), drawn};
    }
  return false;
}"""

SET = ("title", "ticks", "labels", "low", "high", "palette")
"""What the server sets on a colour bar (``drawn`` is what the browser makes of it)."""


def colour_bar(page, title) -> dict:
    """The map's colour bar once its title holds ``title`` (read again after a moment:
    the map may still be settling)."""
    page.wait_for_function(COLOUR_BAR, arg=title, polling=250, timeout=30_000)
    page.wait_for_timeout(1000)
    return page.wait_for_function(COLOUR_BAR, arg=title, polling=250,
                                  timeout=30_000).json_value()


def in_range(bar) -> list:
    """The ticks set on a colour bar that fall on it (the ones it draws)."""
    return [t for t in bar["ticks"] if bar["low"] <= t <= bar["high"]]


def field(page, label):
    """The sidebar's input of that label."""
    return page.locator(".bk-input-group", has=page.locator(
        "label", has_text=re.compile(rf"^{re.escape(label)}$"))).locator("select, input").first


def fit(page):
    """The sidebar's "fit to the view" check box (its label is not a <label>)."""
    return page.locator(".bk-Checkbox", has_text="fit to the view").locator("input").first


def test_a_class_layer_names_its_classes_and_thresholds_on_the_colour_bar(
        page, app_url, cube, errors, artifacts):
    """The predicted class and the RTS labels' class, chosen in the sidebar: one colour
    per class, each named on the colour bar with its range of RTS area from the cube's
    ``bin_edges``."""
    from entropice.cube import Cube

    ds = Cube(cube[0]).read("h3", 3)
    edges = [f"{100 * float(e):.3g}" for e in ds.rts_class.attrs["bin_edges"]]
    names = ds.rts_class.attrs["flag_meanings"].split()
    assert names == ["none", "low", "medium", "high"] and len(edges) == 2
    want = {"0": "none", "1": f"low (<= {edges[0]} %)",
            "2": f"medium ({edges[0]}-{edges[1]} %)", "3": f"high (> {edges[1]} %)"}
    page.goto(app_url + "?grid=h3&level=3")
    expect(status(page)).to_contain_text("h3 level 3", timeout=60_000)
    for label, title in [("predicted class", "predicted RTS class"),
                         ("rts_class", "RTS density class")]:
        field(page, "Layer").select_option(label)
        bar = colour_bar(page, title)
        assert bar["title"] == f"{title} (RTS area in % of land)"
        assert bar["ticks"] == [0, 1, 2, 3]
        assert bar["labels"] == want
        assert len(set(bar["palette"])) == 4  # a colour per class
        assert (bar["low"], bar["high"]) == (-0.5, 3.5)  # each class its colour's middle
    page.locator(".entropice-map").first.screenshot(path=artifacts / "class_legend.png")
    assert "layer=rts_class" in page.url
    assert errors == []


def test_colour_settings_set_in_the_sidebar_come_back_from_the_link(page, app_url, errors,
                                                                   artifacts):
    """The colour map, a minimum, fit to the view and log scale, set through the widgets:
    the page's own URL reopens them, in the widgets and on the colour bar."""
    page.goto(app_url + "?grid=h3&level=3&layer=era5_tdd_sum")
    expect(status(page)).to_contain_text("era5_tdd_sum", timeout=60_000)
    default = colour_bar(page, "thawing degree days")
    field(page, "Colour map").select_option("magma")
    field(page, "min").fill("100")
    field(page, "min").press("Enter")
    fit(page).check()
    page.locator(".bk-btn", has_text=re.compile(r"^log$")).click()
    for key in ("cmap=magma", "vmin=100", "fit=true", "scale=log"):
        expect(page).to_have_url(re.compile(re.escape(key)), timeout=30_000)
    expect(status(page)).to_contain_text("log scale", timeout=30_000)
    before = colour_bar(page, "(log scale)")
    assert before["palette"] != default["palette"]  # magma, not viridis
    assert before["low"] == pytest.approx(2.0)  # log10 of the minimum set
    assert before["ticks"][0] == 2 and before["labels"]["2"] == "100"
    link = page.url
    page.goto(link)
    expect(status(page)).to_contain_text("log scale", timeout=60_000)
    assert field(page, "Colour map").input_value() == "magma"
    assert float(field(page, "min").input_value()) == 100
    assert field(page, "max").input_value() == ""
    assert fit(page).is_checked()
    expect(page.locator(".bk-btn", has_text=re.compile(r"^log$"))).to_have_class(
        re.compile(r"bk-active"))
    after = colour_bar(page, "(log scale)")
    page.locator(".entropice-map").first.screenshot(path=artifacts / "colour_link.png")
    assert {k: after[k] for k in SET} == {k: before[k] for k in SET}
    assert after["drawn"] == in_range(after)  # opened from the link: drawn as set
    for key in ("cmap=magma", "vmin=100", "fit=true", "scale=log"):
        assert key in page.url
    assert errors == []


def test_the_colour_bar_draws_the_ticks_of_the_layer_chosen_in_the_session(page, app_url,
                                                                            errors, artifacts):
    """A class layer, then a log scale, chosen after the page opened on a continuous
    layer: the colour bar draws the ticks set for them (the class names, the powers of
    ten), not the first layer's (a tick at every half class, log10 values)."""
    page.goto(app_url + "?grid=h3&level=3")
    expect(status(page)).to_contain_text("h3 level 3", timeout=60_000)
    colour_bar(page, "P(none)")
    field(page, "Layer").select_option("predicted class")
    bar = colour_bar(page, "predicted RTS class")
    page.locator(".entropice-map").first.screenshot(path=artifacts / "class_legend_chosen.png")
    assert bar["ticks"] == [0, 1, 2, 3]
    assert bar["drawn"] == bar["ticks"]
    field(page, "Layer").select_option("era5_tdd_sum")
    page.locator(".bk-btn", has_text=re.compile(r"^log$")).click()
    bar = colour_bar(page, "(log scale)")
    assert bar["drawn"] == in_range(bar) and bar["drawn"]  # powers of ten, not log10s
    assert errors == []
