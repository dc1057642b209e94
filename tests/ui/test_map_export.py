"""The map as a figure, in a real browser: the graticule's labels follow a zoom, and the
save tool's PNG says what it shows (title, colour bar)."""

import io
import json
import re

import numpy as np
from conftest import status
from PIL import Image
from playwright.sync_api import expect

TEXT = re.compile(r"^(\d{1,2}°[NS]|0°|\d{1,3}°[EW]|180°)$")

GRATICULE = """() => {
  // the map's graticule labels (the source of the Text glyph holding degrees) and the
  // figure's ranges and title
  for (const doc of Bokeh.documents)
    for (const fig of doc._all_models.values()) {
      if (!fig.x_range || !fig.y_range || !fig.renderers || !fig.title) continue;
      for (const r of fig.renderers) {
        const s = r.data_source;
        if (!s || !s.data || !s.data.text) continue;
        const text = Array.from(s.data.text);
        if (!text.some(t => /°/.test(t))) continue;
        return {text, x: Array.from(s.data.x), y: Array.from(s.data.y),
                xr: [fig.x_range.start, fig.x_range.end],
                yr: [fig.y_range.start, fig.y_range.end], title: fig.title.text};
      }
    }
  return null;
}"""

GEOMETRY = """() => {
  // the map's frame and colour bar on its canvas (CSS pixels), from Bokeh's views
  const seen = new Set(), out = [];
  const walk = (v) => {
    if (!v || seen.has(v)) return;
    seen.add(v);
    if (v.frame && v.model && v.model.right && v.model.right.length) {
      const bar = v.views?.find_one?.(v.model.right[0]) ?? null;
      const box = (b) => [b.x, b.y, b.width, b.height];
      out.push({frame: box(v.frame.bbox), bar: bar ? box(bar.bbox) : null,
                dpr: window.devicePixelRatio});
    }
    for (const c of v.child_views ?? []) walk(c);
  };
  for (const id of Object.keys(Bokeh.index)) walk(Bokeh.index[id]);
  return out;
}"""


def inside(labels) -> bool:
    (x0, x1), (y0, y1) = labels["xr"], labels["yr"]
    return all(x0 < x < x1 and y0 < y < y1 for x, y in zip(labels["x"], labels["y"]))


def test_the_graticule_labels_follow_a_zoom(page, app_url, errors, artifacts):
    page.goto(app_url + "?grid=h3&level=3")
    expect(status(page)).to_contain_text("h3 level 3", timeout=60_000)
    page.wait_for_timeout(1000)
    home = page.evaluate(GRATICULE)
    assert home is not None and 12 <= len(home["text"]) <= 20
    assert all(TEXT.match(t) for t in home["text"]) and inside(home)
    events = page.locator(".entropice-map").first.locator(".bk-events").first
    box = events.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.65)
    for _ in range(2):  # two wheel steps: a quarter of the domain, some lines in view
        before = status(page).inner_text()
        page.mouse.wheel(0, -300)
        expect(status(page)).not_to_have_text(before, timeout=30_000)
    # the labels of the new view (the ranges move at once, the labels with the image)
    zoomed = page.wait_for_function(
        f"""() => {{
          const g = ({GRATICULE})();
          if (g === null || g.text.join() === {json.dumps(home["text"])}.join()) return false;
          const [x0, x1] = g.xr, [y0, y1] = g.yr;
          return g.x.every((x, i) => x0 < x && x < x1 && y0 < g.y[i] && g.y[i] < y1)
            ? g : false;
        }}""", polling=250, timeout=30_000).json_value()
    page.mouse.move(5, 5)  # no tooltip over the labels
    page.wait_for_timeout(500)
    page.locator(".entropice-map").first.screenshot(path=artifacts / "graticule_zoomed.png")
    assert 0 < len(zoomed["text"]) <= 20 and inside(zoomed)
    assert all(TEXT.match(t) for t in zoomed["text"])
    assert (zoomed["xr"][1] - zoomed["xr"][0]) < 0.8 * (home["xr"][1] - home["xr"][0])
    assert errors == []


def test_the_save_tool_exports_the_map_with_its_title_and_colour_bar(page, app_url, cube,
                                                                   errors, artifacts):
    run = cube[1]
    page.goto(app_url + "?grid=h3&level=3")
    expect(status(page)).to_contain_text("h3 level 3", timeout=60_000)
    page.wait_for_timeout(1000)
    title = page.evaluate(GRATICULE)["title"]
    assert title == f"predicted probability of any RTS, 1 - P(none)\n2022, h3 level 3, run {run}"
    geometry, = page.evaluate(GEOMETRY)
    canvas = page.locator(".entropice-map").first.locator(".bk-events").first.bounding_box()
    with page.expect_download() as download:
        page.locator(".entropice-map").first.locator(".bk-tool-icon-save").first.click()
    saved = download.value
    assert saved.suggested_filename == f"entropice_h3-level3_pred_any_2022_{run}.png"
    png = Image.open(saved.path())
    png.save(artifacts / "map_export.png")
    dpr = geometry["dpr"]
    assert abs(png.width - canvas["width"] * dpr) <= 2 * dpr
    assert abs(png.height - canvas["height"] * dpr) <= 2 * dpr
    img = np.asarray(png.convert("RGB")).astype(int)

    def crop(x, y, w, h):
        return img[round(y * dpr):round((y + h) * dpr), round(x * dpr):round((x + w) * dpr)]

    # the colour bar: a gradient of many colours (viridis, yellow to purple)
    bar = crop(*geometry["bar"])
    colourful = bar[(bar.max(axis=-1) - bar.min(axis=-1)) > 60]
    assert len(colourful) > 2000
    assert len(np.unique(colourful // 8, axis=0)) > 30
    assert ((colourful[:, 0] > 200) & (colourful[:, 1] > 200) & (colourful[:, 2] < 100)).any()
    assert ((colourful[:, 2] > 60) & (colourful[:, 1] < 40)).any()
    # the title, above the frame: dark text on white
    fx, fy, fw, fh = geometry["frame"]
    top = crop(fx, 0, fw, fy)
    assert fy >= 25 and (top < 80).all(axis=-1).sum() > 200
    # the map itself
    frame = crop(*geometry["frame"])
    assert (frame < 240).any(axis=-1).mean() > 0.5
    assert errors == []


def test_every_png_export_names_its_view(page, app_url, errors):
    """A layer and year change retitle the figure and rename its PNG."""
    page.goto(app_url + "?grid=h3&level=3&layer=era5_tdd_sum&year=2021")
    expect(status(page)).to_contain_text("h3 level 3, era5_tdd_sum, 2021", timeout=60_000)
    page.wait_for_timeout(1000)
    title = page.evaluate(GRATICULE)["title"]
    assert title.startswith("thawing degree days [degC day]\n2021, h3 level 3")
    with page.expect_download() as download:
        page.locator(".entropice-map").first.locator(".bk-tool-icon-save").first.click()
    assert download.value.suggested_filename.startswith(
        "entropice_h3-level3_era5_tdd_sum_2021")
    assert Image.open(io.BytesIO(download.value.path().read_bytes())).width > 300
    assert errors == []
