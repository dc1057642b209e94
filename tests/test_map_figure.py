"""The map as a figure: the graticule's labels follow the view, and the figure (title,
colour bar, file name of the save tool's PNG) says what it shows."""

import re

import holoviews as hv
import numpy as np
import pytest
import small_cube

from entropice.dashboard import graticule
from entropice.dashboard.graticule import graticule_labels, lat_text, lon_text
from entropice.dashboard.lookup import (
    MERIDIANS,
    MERIDIANS_TO,
    PARALLELS,
    to_lonlat,
    to_polar,
)
from entropice.dashboard.map_view import MapView, figure_filename, figure_title, home_extent
from entropice.dashboard.selection import Selection
from entropice.dashboard.store import CubeStore

hv.extension("bokeh")

HOME = ((-4.5e6, 4.5e6), (-4.5e6, 4.5e6))
TEXT = re.compile(r"^(\d{1,2}°[NS]|0°|\d{1,3}°[EW]|180°)$")


def lines_crossing(x_range, y_range, n=500):
    """The graticule's lines through a rectangle, by the lines' own formula: the bands
    of latitude and longitude (``lookup.land_and_lines``) of a fine grid of points,
    a line wherever two neighbours' bands differ (meridians short of MERIDIANS_TO)."""
    xs = np.linspace(*x_range, n)
    ys = np.linspace(*y_range, n)
    lon, lat = to_lonlat(*np.meshgrid(xs, ys))
    par = np.floor(lat / PARALLELS)
    mer = np.floor((lon + 180.0) / MERIDIANS) % round(360 / MERIDIANS)
    found = set()
    for sl_a, sl_b in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                       ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))):
        a, b = par[sl_a], par[sl_b]
        for band in np.unique(np.maximum(a, b)[a != b]):
            if 0 < band * PARALLELS < 90:
                found.add(lat_text(band * PARALLELS))
        south = (lat[sl_a] < MERIDIANS_TO) & (lat[sl_b] < MERIDIANS_TO)
        a, b = mer[sl_a], mer[sl_b]
        step = (a != b) & south
        bands = round(360 / MERIDIANS)
        for ma, mb in zip(a[step], b[step]):  # band k starts at the meridian -180 + k step
            k = mb if (mb - ma) % bands == 1 else ma if (ma - mb) % bands == 1 else None
            if k is not None:
                found.add(lon_text(-180.0 + MERIDIANS * k))
    return found


def inset(x_range, y_range, grow=0.0):
    """The rectangle the labels are placed on (``graticule.INSET``), grown by a share of
    the view."""
    (x0, x1), (y0, y1) = x_range, y_range
    w, h = x1 - x0, y1 - y0
    ix, iy = (graticule.INSET[0] - grow) * w, (graticule.INSET[1] - grow) * h
    return (x0 + ix, x1 - ix), (y0 + iy, y1 - iy)


def on_its_line(x, y, text):
    """Whether a label's centre lies on the line it names."""
    lon, lat = to_lonlat(np.array([x]), np.array([y]))
    value = int(re.match(r"\d+", text)[0])
    if text.endswith(("N", "S")):
        return abs(lat[0] - (value if text.endswith("N") else -value)) < 1e-3
    want = -value if text.endswith("W") else value
    return abs((lon[0] - want + 180.0) % 360.0 - 180.0) < 1e-3


def test_label_texts():
    assert [lat_text(v) for v in (10, 70, 80, 0, -20)] == ["10°N", "70°N", "80°N", "0°",
                                                            "20°S"]
    assert [lon_text(v) for v in (-180, -120, -30, 0, 30, 150, 180)] == [
        "180°", "120°W", "30°W", "0°", "30°E", "150°E", "180°"]


def test_the_whole_domain_labels_every_meridian_and_its_parallels():
    x, y, text = graticule_labels(*HOME)
    assert text[:12] == [lon_text(v) for v in range(-180, 180, 30)]
    assert text[12:] == ["50°N", "60°N", "70°N", "80°N"]
    (x0, x1), (y0, y1) = HOME
    assert ((x > x0) & (x < x1) & (y > y0) & (y < y1)).all()
    assert all(on_its_line(*p) for p in zip(x, y, text))


@pytest.mark.parametrize("extent", [
    ((-2e6, 0.0), (-2e6, 0.0)),                # a quarter of the domain, the pole in a corner
    ((-3e5, 3e5), (-3e5, 3e5)),                # around the pole
    ((1.0e6, 1.6e6), (-2.3e6, -1.7e6)),        # 600 km, away from the pole
    ((-2.6e6, -1.4e6), (0.5e6, 1.1e6)),        # wider than high
])
def test_a_zoomed_view_labels_the_lines_crossing_it(extent, monkeypatch):
    x, y, text = graticule_labels(*extent)
    (x0, x1), (y0, y1) = extent
    assert 0 < len(text) <= 20 and len(set(text)) == len(text)
    assert all(TEXT.match(t) for t in text)
    assert ((x > x0) & (x < x1) & (y > y0) & (y < y1)).all()
    assert all(on_its_line(*p) for p in zip(x, y, text))
    # overlapping labels dropped, the labels are those of the lines crossing the view
    # just inside its edges (lines through a corner of the view alone are not labelled)
    assert set(text) <= lines_crossing(*inset(*extent, grow=-0.002))
    monkeypatch.setattr(graticule, "APART", (1e-9, 1e-9))
    every = set(graticule_labels(*extent)[2])
    assert lines_crossing(*inset(*extent, grow=0.002)) <= every
    assert every <= lines_crossing(*inset(*extent, grow=-0.002))


def test_labels_stay_in_view_and_few_at_any_zoom():
    rng = np.random.default_rng(0)
    for _ in range(400):
        half = 10 ** rng.uniform(3, 7.6)  # 1 km to 40,000 km across
        aspect = rng.uniform(0.5, 2.0)
        cx, cy = rng.uniform(-5e6, 5e6, 2)
        extent = ((cx - half * aspect, cx + half * aspect), (cy - half, cy + half))
        x, y, text = graticule_labels(*extent)
        (x0, x1), (y0, y1) = extent
        assert len(text) <= 20
        assert ((x > x0) & (x < x1) & (y > y0) & (y < y1)).all()
        assert all(TEXT.match(t) for t in text) and len(set(text)) == len(text)
        if len(text) > 1:  # none on top of another
            dx = np.abs(x[:, None] - x[None]) / (x1 - x0)
            dy = np.abs(y[:, None] - y[None]) / (y1 - y0)
            apart = (dx >= graticule.APART[0] * 0.999) | (dy >= graticule.APART[1] * 0.999)
            assert (apart | np.eye(len(text), dtype=bool)).all()


def test_labels_cost_little():
    import time

    extents = [((-4.5e6 + i * 1e4, 4.5e6 - i * 1e4), (-4.5e6, 4.5e6)) for i in range(200)]
    start = time.process_time()
    for e in extents:
        graticule_labels(*e)
    assert (time.process_time() - start) / len(extents) < 0.005  # about 0.5 ms


def test_the_title_and_file_name_say_what_the_figure_shows():
    title = figure_title("thawing degree days", "degC day", "h3", 5, 2022, "h35-2026")
    assert title == "thawing degree days [degC day]\n2022, h3 level 5, run h35-2026"
    assert figure_title("RTS density class", None, "healpix", 10, 2021, None) == (
        "RTS density class\n2021, healpix level 10")
    assert figure_filename("pred_any", "h3", 5, 2022, "h35-20260101T000000-ab12") == (
        "entropice_h3-level5_pred_any_2022_h35-20260101T000000-ab12")
    assert figure_filename("x/../y", "h3", 5, 2022, None) == "entropice_h3-level5_x-..-y_2022"


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    path = tmp_path_factory.mktemp("figure") / "cube.zarr"
    return path, small_cube.build(path)


def test_the_figure_is_titled_and_its_labels_follow_the_view(cube):
    """The Bokeh figure the save tool exports: its title names the layer, its units,
    the year, the grid and level and the run, the colour bar is in it, the PNG is named
    after it; the graticule's labels follow a zoom and leave the plot's ranges alone."""
    from bokeh.models import ColorBar, SaveTool, Text

    sel = Selection(store=CubeStore(cube[0]))
    sel.level = 3
    view = MapView(selection=sel)
    plot = hv.renderer("bokeh").get_plot(view.plot)
    fig = plot.state
    run = cube[1]
    assert fig.title.text == ("predicted probability of any RTS, 1 - P(none)\n"
                              f"2022, h3 level 3, run {run}")
    assert fig.select_one(SaveTool).filename == f"entropice_h3-level3_pred_any_2022_{run}"
    assert len(fig.select(ColorBar)) == 1
    sel.param.update(layer="era5_tdd_sum", year=2021)
    assert fig.title.text == f"thawing degree days [degC day]\n2021, h3 level 3, run {run}"
    assert fig.select_one(SaveTool).filename.startswith("entropice_h3-level3_era5_tdd_sum_2021")
    sel.scale = "log"
    assert fig.title.text.startswith("thawing degree days (log scale) [degC day]\n")

    def labels():
        source, = [r.data_source for r in fig.renderers if isinstance(r.glyph, Text)]
        return dict(source.data)

    (x0, x1), (y0, y1) = home_extent(sel)
    home = labels()
    assert len(home["text"]) >= 12
    # the labels are left out of the ranges: the view is the images' extent alone
    assert (fig.x_range.start, fig.x_range.end) == pytest.approx((x0, x1))
    zoom = ((-2e6, -1e6), (-1.5e6, -0.5e6))
    view.range.event(x_range=zoom[0], y_range=zoom[1])
    zoomed = labels()
    assert zoomed["text"] != home["text"] and 0 < len(zoomed["text"]) <= 20
    want = graticule_labels(*zoom)
    assert list(zoomed["text"]) == want[2]
    np.testing.assert_allclose(zoomed["x"], want[0])
    # no line in view: one empty label, off the view (an empty layer is never redrawn)
    x, y = to_polar(100.0, 75.0)
    view.range.event(x_range=(x - 1e3, x + 1e3), y_range=(y - 1e3, y + 1e3))
    assert list(labels()["text"]) == [""]
    # a page opening there: the empty label, off the view, leaves its ranges alone
    sel.param.update(x0=x - 1e3, x1=x + 1e3, y0=y - 1e3, y1=y + 1e3)
    fig = hv.renderer("bokeh").get_plot(MapView(selection=sel).plot).state
    assert list(labels()["text"]) == [""]
    assert (fig.x_range.start, fig.x_range.end) == pytest.approx((x - 1e3, x + 1e3))
    assert (fig.y_range.start, fig.y_range.end) == pytest.approx((y - 1e3, y + 1e3))
