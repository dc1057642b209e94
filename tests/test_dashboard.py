"""The dashboard's views, each on a small cube built by the tests (no browser here;
tests/ui drives the served page)."""

import io
import json
import threading
import time

import geopandas as gpd
import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import pytest
import small_cube
from bokeh.models import ColorBar
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entropice.dashboard import _kernels, build
from entropice.dashboard.boxes_view import (
    BoxesView,
    _fmt,
    box_rule,
    box_table,
    physical_centres,
)
from entropice.dashboard.cache import SharedCache
from entropice.dashboard.compare_view import CompareView
from entropice.dashboard.data_view import DataView, by_class
from entropice.dashboard.downloads import layer_csv, layer_geoparquet
from entropice.dashboard.evaluation_view import (
    EvaluationView,
    learning_curve_plot,
    metrics_table,
    temporal_table,
    transfer_heatmap,
)
from entropice.dashboard.layers import (
    class_labels,
    describe,
    features,
    layer_menu,
    model_class_labels,
    split_layer,
)
from entropice.dashboard.link import URL_STATE, apply_query, url_value
from entropice.dashboard.lookup import (
    LAND_MIN_LAT,
    LAND_STEP,
    MERIDIANS,
    MERIDIANS_TO,
    PARALLELS,
    PixelLookup,
    grid_lonlat,
    land_and_lines,
    land_share,
    pixel_centres,
    pixel_lonlat,
    to_lonlat,
    to_polar,
)
from entropice.dashboard.map_view import MapView, home_extent
from entropice.dashboard.page import App, cube_path
from entropice.dashboard.relevance_view import RelevanceView, importance, is_flat, weights
from entropice.dashboard.selection import Brush, Selection
from entropice.dashboard.space_view import AXES, FEATURES, SpaceView, cell_table
from entropice.dashboard.store import CubeStore
from entropice.grids import get_grid

hv.extension("bokeh")  # as the served page does: the map's options need a backend


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    path = tmp_path_factory.mktemp("dash") / "cube.zarr"
    run = small_cube.build(path)
    return path, run


@pytest.fixture
def store(cube):
    return CubeStore(cube[0])


@pytest.fixture
def sel(store):
    return Selection(store=store)


def in_threads(work, n):
    """``work(i)`` in ``n`` threads started at once, ``i`` the thread's number; an error
    raised in any of them is raised here."""
    errors, start = [], threading.Barrier(n)

    def run(i):
        start.wait()
        try:
            work(i)
        except Exception as e:  # noqa: BLE001 (any failure in a thread is the test's)
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_store_reads_the_cube_and_its_runs(store, cube):
    assert store.problem is None
    assert store.grids() == ["h3", "healpix"] and store.levels("h3") == [2, 3]
    assert store.dataset("h3", 3) is store.dataset("h3", 3)  # read once
    assert store.run_ids("h3", 3) == [cube[1]] and store.run_ids("h3", 2) == []
    assert list(store.current_models()) == ["h3 3"]


def test_the_shared_cache_takes_threads_hammering_it():
    """Threads asking for more keys than are kept (each ask may evict another's entry):
    every answer is right, no error, and a key is never computed by two threads at once."""
    running, most = {}, {}
    guard = threading.Lock()

    def square(k):
        with guard:
            running[k] = running.get(k, 0) + 1
            most[k] = max(most.get(k, 0), running[k])
        time.sleep(0.0005)
        with guard:
            running[k] -= 1
        return k * k

    cache = SharedCache(square, size=4)

    def hammer(seed):
        for k in np.random.default_rng(seed).integers(0, 12, 400):
            assert cache(int(k)) == k * k

    in_threads(hammer, 16)
    assert max(most.values()) == 1 and len(cache._items) <= 4


def test_the_box_prefetch_runs_beside_the_sessions(store, cube):
    """The prefetch's thread and sessions' threads read groups, models and boxes at once:
    each gets the same boxes, computed once."""
    run = cube[1]
    store.run_ids("h3", 3)
    boxes = []

    def session(_):
        for _ in range(20):
            assert store.dataset("h3", 3) is store.dataset("h3", 3)
            store.model(run)
            boxes.append(store.cell_boxes(run, "h3", 3, 2022))

    for _ in range(8):
        store.prefetch_boxes(run, "h3", 3, 2022, delay=0.0)
    in_threads(session, 8)
    assert all(b is boxes[0] for b in boxes)


def test_selection_follows_the_store(sel, cube):
    assert sel.param.grid.objects == ["h3", "healpix"]
    assert sel.grid == "h3" and sel.param.level.objects == [2, 3]
    sel.level = 3
    assert sel.run == cube[1]
    assert sel.layer == "pred_any"  # P(any RTS) first where there are predictions
    v = sel.values("pred_proba:1", 2022)
    np.testing.assert_array_equal(v, sel.dataset.pred_proba.sel(year=2022, **{"class": 1}))
    np.testing.assert_allclose(sel.values("pred_any", 2022),
                               1 - sel.dataset.pred_proba.sel(year=2022, **{"class": 0}))
    sel.grid = "healpix"
    assert sel.level == 4 and not sel.has_predictions and sel.run is None
    assert sel.layer == "rts_density"


def test_layers_decode_names_classes_and_sources(store):
    ds = store.dataset("h3", 3)
    menu = layer_menu(ds)
    assert menu["Predictions"] == {"P(any RTS)": "pred_any", "predicted class": "pred_class",
                                   "prediction entropy": "pred_entropy",
                                   "expected RTS density": "pred_density",
                                   "uncertainty (members' spread of P(any RTS))":
                                       "pred_spread",
                                   "uncertainty across folds (their models' spread of "
                                   "P(any RTS))": "pred_fold_spread",
                                   "novelty (outside the training data)": "pred_novelty",
                                   "P(none)": "pred_proba:0", "P(low)": "pred_proba:1",
                                   "P(medium)": "pred_proba:2", "P(high)": "pred_proba:3"}
    assert menu["ERA5 climate"] == {"era5_tdd_sum": "era5_tdd_sum"}
    assert "dem_slope_mean" in menu["ArcticDEM terrain"]
    assert features(ds) == {"alphaearth": ["emb_pc01"], "arcticdem": ["dem_slope_mean"],
                            "era5": ["era5_tdd_sum"]}  # by the source attribute
    assert split_layer("pred_proba:2") == ("pred_proba", 2)
    assert split_layer("era5_tdd_sum") == ("era5_tdd_sum", None)
    assert describe(ds, "pred_proba:3") == ("predicted probability, P(high)", "")
    assert describe(ds, "pred_any") == ("predicted probability of any RTS, 1 - P(none)", "")
    assert class_labels(ds.rts_class, [0.0, 3.0, 7.0]) == ["none", "high", "7"]
    assert class_labels(ds.pred_class, [1]) == ["low"]


def test_a_missing_cube_says_to_run_the_demo(tmp_path):
    page = build(tmp_path / "nowhere.zarr")
    text = str(page.main[0].object)
    assert "entropice demo" in text and "nowhere.zarr" in text


def test_the_page_composes_the_views_and_the_sidebar_follows(sel, cube):
    app = App(selection=sel)
    page = app.page()
    notice, tabs = page.main[0], page.main[1]
    assert isinstance(notice, pn.pane.Alert) and not notice.visible  # a link's left-outs
    assert len(tabs) == 7  # map, compare, boxes, space, relevance, evaluation, data
    sidebar, = page.sidebar  # one root in the page's document
    assert f"Cube: `{cube[0]}`" in sidebar[-1].object
    note = next(w for w in sidebar if isinstance(w, pn.pane.Alert))
    csv = sidebar.select(pn.widgets.FileDownload)[0]
    assert not note.visible and csv.filename == "h33_pred_any_2022.csv"
    sel.grid = "healpix"
    assert note.visible and csv.filename == "healpix4_rts_density_2022.csv"


def test_cube_path_from_args_env_or_default(monkeypatch):
    assert str(cube_path(["--cube", "x.zarr"])) == "x.zarr"
    assert str(cube_path(["--cube=y.zarr"])) == "y.zarr"
    monkeypatch.setenv("ENTROPICE_CUBE", "z.zarr")
    assert str(cube_path([])) == "z.zarr"
    monkeypatch.delenv("ENTROPICE_CUBE")
    assert str(cube_path([])) == "data/cube.zarr"


def test_names_from_a_link_are_only_matched_against_the_cube_and_runs(sel, cube):
    kept = apply_query(sel, {"grid": "../../etc", "level": "3", "layer": "/etc/passwd",
                             "run": "../../../etc/passwd", "box": "-5"})
    assert kept == {"level": "3"}
    assert (sel.grid, sel.level, sel.layer, sel.run) == ("h3", 3, "pred_any", cube[1])
    with pytest.raises(ValueError):
        sel.run = "../../etc"
    with pytest.raises(ValueError):
        sel.grid = "../../etc"
    with pytest.raises(KeyError, match="unknown model run"):
        sel.store.model("../../etc")
    with pytest.raises(KeyError, match="no group"):
        sel.store.dataset("../../etc", 3)
    with pytest.raises(ValueError, match="not a run id"):
        sel.store.run_store.path("../../etc")


def test_a_link_keeps_colours_tab_and_extent_and_drops_what_would_break_a_session(sel):
    kept = apply_query(sel, {"level": "3", "box": "1", "cmap": "magma", "vmin": "0.1",
                             "vmax": "0.9", "fit": "true", "scale": "log", "tab": "Boxes",
                             "x0": "-2e6", "x1": "0", "y0": "-2e6", "y1": "0"})
    assert len(kept) == 12
    assert (sel.box, sel.cmap, sel.vmin, sel.vmax, sel.fit, sel.scale, sel.tab) == (
        1, "magma", 0.1, 0.9, True, "log", "Boxes")
    assert (sel.x0, sel.x1, sel.y0, sel.y1) == (-2e6, 0.0, -2e6, 0.0)
    bad = {"box": "inf", "vmin": "nan", "vmax": "-inf", "fit": "1e400", "scale": "sqrt",
           "tab": "../etc", "x0": "1", "x1": "1", "y0": "1", "y1": "1"}
    assert apply_query(sel, bad) == {}
    assert apply_query(sel, {"box": str(sel.n_boxes)}) == {}  # no such box
    assert apply_query(sel, {"x0": "0", "x1": "1e30", "y0": "0", "y1": "1"}) == {}
    assert apply_query(sel, {"vmin": "2", "vmax": "1"}) == {}
    assert (sel.vmin, sel.vmax) == (None, None)
    sel.param.update(box=-1, cmap="viridis", fit=False, scale="linear", tab="Map", x0=None,
                     x1=None, y0=None, y1=None)


def test_a_link_keeps_the_brush_and_drops_a_broken_one(sel):
    """The feature space's brush travels in the link as a JSON list, checked against
    the group's layers and for finite, ordered bounds."""
    sel.level = 3
    brush = ["era5_tdd_sum", "dem_slope_mean", 100, 900.5, 0, 3]
    kept = apply_query(sel, {"brush": json.dumps(brush)})
    assert sel.brush == ("era5_tdd_sum", "dem_slope_mean", 100.0, 900.5, 0.0, 3.0)
    assert json.loads(kept["brush"]) == brush
    assert sel.brushed().any()
    # what the URL's sync reads back (panel deserialises it) is the same brush
    assert Brush.deserialize(kept["brush"]) == sel.brush
    sel.brush = None
    for bad in ("[", "5", '"era5_tdd_sum"', json.dumps(brush[:5]),
                json.dumps(["../etc/passwd", *brush[1:]]),
                json.dumps([*brush[:2], "NaN", 1, 0, 1]), json.dumps([*brush[:2], 2, 1, 0, 1]),
                json.dumps([*brush[:2], True, 1, 0, 1]), "[" * 5000 + "]" * 5000,
                '["era5_tdd_sum", "dem_slope_mean", 1e999, 1, 0, 1]'):
        assert apply_query(sel, {"brush": bad}) == {}, bad
        assert sel.brush is None


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(URL_STATE), st.one_of(
    st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-10**30, 10**30).map(str)), max_size=8))
def test_no_link_breaks_the_map(sel, query):
    """Whatever a link holds, the selection stays one the map draws."""
    apply_query(sel, query)
    view = MapView(selection=sel)
    frame = view._render()
    assert "cells" in view.status.object and frame.Image.I.data.size
    sel.param.update(box=-1, vmin=None, vmax=None, x0=None, x1=None, y0=None, y1=None)


def test_pixel_lookup_finds_each_pixels_cell():
    grid = get_grid("h3", 3)
    ids = np.sort(grid.domain_ids())
    lookup = PixelLookup("h3", 3, ids)
    idx = lookup((-3e6, 3e6), (-3e6, 3e6), 60, 60)
    assert idx.shape == (60, 60) and (idx >= 0).all()  # all of it north of 50 N
    # the centre pixel is the pole's cell; a cell's centre maps to that cell
    lat, lon = grid.centres(ids[idx[30, 30:31]])
    assert lat[0] > 88
    x, y = to_polar(lon, lat)
    one = lookup((x[0] - 1, x[0] + 1), (y[0] - 1, y[0] + 1), 1, 1)
    assert one[0, 0] == idx[30, 30]
    # across the antimeridian (x = 0, y > 0 in EPSG:3413 is 180 E) nothing is lost
    seam = lookup((-2e5, 2e5), (2.0e6, 2.4e6), 40, 40)
    assert (seam >= 0).all()


@given(st.floats(-1.5e7, 1.5e7), st.floats(-1.5e7, 1.5e7), st.floats(1.0, 1e7))
@settings(max_examples=60, deadline=None)
def test_the_maps_inverse_projection_is_pyprojs(cx, cy, half):
    """The map's fast EPSG:3413 -> lon/lat (angle about the pole, latitude from a table)
    agrees with pyproj within 1e-6 degrees over any view."""
    import pyproj

    lon, lat = pixel_lonlat((cx - half, cx + half), (cy - half, cy + half), 64, 48)
    x, y = np.meshgrid(*pixel_centres((cx - half, cx + half), (cy - half, cy + half), 64, 48))
    plon, plat = pyproj.Transformer.from_crs("EPSG:3413", "EPSG:4326", always_xy=True) \
        .transform(x, y)
    assert lon.shape == lat.shape == (48, 64)
    np.testing.assert_allclose(lat, plat, atol=1e-6)
    far = np.abs(plat) < 89.999  # the longitude at the pole itself is arbitrary
    dlon = (lon - plon + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(dlon[far], 0.0, atol=1e-6)


def _edges(band: np.ndarray) -> np.ndarray:
    """Pixels beside a pixel of another band: one-pixel lines between bands."""
    b = np.pad(band, 1, mode="edge")
    return ((b[1:-1, 1:-1] != b[:-2, 1:-1]) | (b[1:-1, 1:-1] != b[1:-1, :-2]))


def land_share_at(lon, lat) -> np.ndarray:
    """The numpy formula of the land share beneath the map: ``land_share`` interpolated
    bilinearly between its boxes' centres at each ``(lon, lat)``, wrapping in longitude
    and, beyond the centres of its first and last rows, those rows'."""
    land = land_share().astype(np.float64)
    nr, nc = land.shape
    t = (90.0 - lat) / LAND_STEP - 0.5
    r0 = np.floor(t)
    edge = (r0 < 0) | (r0 >= nr - 1)
    fr = np.where(edge, 0.0, t - r0)
    r0 = np.clip(r0, 0, nr - 1).astype(int)
    r1 = np.where(edge, r0, r0 + 1)
    u = (lon + 180.0) / LAND_STEP - 0.5
    c0 = np.floor(u)
    fc = u - c0
    c0 = c0.astype(int) % nc
    c1 = (c0 + 1) % nc
    top = land[r0, c0] + fc * (land[r0, c1] - land[r0, c0])
    bottom = land[r1, c0] + fc * (land[r1, c1] - land[r1, c0])
    return top + fr * (bottom - top)


def land_boxes(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the ``land_share`` box each ``(lon, lat)`` falls in."""
    nr, nc = land_share().shape
    return (np.clip(((90.0 - lat) / LAND_STEP).astype(int), 0, nr - 1),
            np.clip(((lon + 180.0) / LAND_STEP).astype(int), 0, nc - 1))


def land_image(x_range, y_range, width, height, nearest=False) -> np.ndarray:
    """The numpy formula of ``land_and_lines``' land and coast: at each pixel of a view
    1 on land, 2 on the coast (land beside water), NaN on water; ``nearest``: the land
    of the box each pixel falls in, as the map drew it before issue 15."""
    lon, lat = pixel_lonlat(x_range, y_range, width, height)
    ok = np.isfinite(lat) & (lat > LAND_MIN_LAT)
    lon, lat = np.nan_to_num(lon), np.where(ok, lat, 90.0)
    share = land_share()[land_boxes(lon, lat)] if nearest else land_share_at(lon, lat)
    is_land = ok & (share >= 0.5)
    water = np.pad(~is_land, 1, mode="edge")
    coast = is_land & (water[:-2, 1:-1] | water[2:, 1:-1] | water[1:-1, :-2] | water[1:-1, 2:])
    return np.where(is_land, np.where(coast, 2.0, 1.0), np.nan)


def graticule_image(x_range, y_range, width, height) -> np.ndarray:
    """The numpy formula of ``land_and_lines``' graticule: true at the pixels of a view
    on the parallels (every PARALLELS degrees) and meridians (every MERIDIANS, stopping
    short of the pole), one pixel wide."""
    lon, lat = pixel_lonlat(x_range, y_range, width, height)
    fin = np.isfinite(lat)
    parallels = _edges(np.floor(np.where(fin, lat, 90.0) / PARALLELS)) & fin
    lon_band = np.floor((np.nan_to_num(lon) + 180.0) / MERIDIANS) % (360.0 / MERIDIANS)
    return parallels | (_edges(lon_band) & fin & (lat < MERIDIANS_TO))


def test_land_and_coastline_ship_offline():
    fill, lines = land_and_lines((-4e6, 4e6), (-4e6, 4e6), 200, 200)
    assert 0.2 < (fill == 1).mean() < 0.8
    coast = lines == 2
    assert coast.any() and (fill[coast] == 1).all()
    assert 0.01 < coast.mean() < 0.2  # a thin line between land and water
    # the graticule: one-pixel lines on the parallels and meridians, nowhere else
    grat = lines == 3
    lon, lat = pixel_lonlat((-4e6, 4e6), (-4e6, 4e6), 200, 200)
    step = 0.4  # degrees of latitude in a 40 km pixel, and a little more
    near_parallel = np.abs(lat - 10 * np.round(lat / 10)) < step
    dlon = np.abs(((lon + 180) % 30 + 15) % 30 - 15)  # to the nearest meridian
    near_meridian = dlon * np.cos(np.radians(lat)) < 2 * step
    assert grat.any() and (near_parallel | near_meridian)[grat].all()
    g = np.pad(lines > 0, 1)  # 60 N drawn all round (or the coast): by every pixel there
    beside = g[1:-1, 1:-1] | g[:-2, 1:-1] | g[2:, 1:-1] | g[1:-1, :-2] | g[1:-1, 2:]
    assert beside[np.abs(lat - 60) < 0.15].mean() > 0.95
    # Greenland's ice sheet is land, the North Pole is water
    x, y = to_polar([-40.0, 0.0], [75.0, 90.0])
    for xi, yi, want in zip(x, y, [1, 0]):
        assert land_and_lines((xi - 1, xi + 1), (yi - 1, yi + 1), 1, 1)[0][0, 0] == want


def test_the_coast_runs_smoothly_when_zoomed_in():
    """Issue 15: zoomed in, the coast ran in the land share's 0.05 degree steps (each
    pixel took its box's share); the share is now interpolated bilinearly between the
    boxes' centres. Over Siberia's coast at 135 E (the grid's rows across the map's
    columns there) a box is 20 pixels high: the boxes' coast keeps a row for a box's
    width of columns, then jumps a box's height, along the boxes' edges; the
    interpolated one moves a little from column to column and crosses the boxes."""
    x, y = to_polar(135.0, 71.6)
    n, half = 320, 45_000.0
    view = (x - half, x + half), (y - half, y + half)
    lon, lat = pixel_lonlat(*view, n, n)
    assert 15 < LAND_STEP / np.abs(np.diff(lat, axis=0)).mean() < 25  # pixels a box high
    r, c = land_boxes(lon, lat)
    smooth = land_and_lines(*view, n, n)[0] == 1
    stairs = land_image(*view, n, n, nearest=True) >= 1

    def coast_rows(f):
        """The row at which the coast crosses each column it crosses once."""
        change = f[1:] != f[:-1]
        return change.argmax(axis=0)[change.sum(axis=0) == 1]

    def in_one_box(f):
        """The share of the neighbouring pixels either side of the coast that are in
        one box."""
        cross = same = 0
        for a, b in [(np.s_[1:], np.s_[:-1]), (np.s_[:, 1:], np.s_[:, :-1])]:
            t = f[a] != f[b]
            cross += t.sum()
            same += (t & (r[a] == r[b]) & (c[a] == c[b])).sum()
        return same / cross

    rows_smooth, rows_stairs = coast_rows(smooth), coast_rows(stairs)
    assert min(len(rows_smooth), len(rows_stairs)) > 0.8 * n  # the coast crosses the view
    assert len(np.unique(rows_smooth)) > 3 * len(np.unique(rows_stairs))
    assert in_one_box(stairs) == 0 and in_one_box(smooth) > 0.8
    # the whole map: the land as before but along the coast
    n, home = 640, ((-4.5e6, 4.5e6), (-4.5e6, 4.5e6))
    now = land_and_lines(*home, n, n)[0] == 1
    before = land_image(*home, n, n, nearest=True)
    changed = now != (before >= 1)
    near_coast = np.zeros_like(changed)
    coast = np.pad(before == 2, 2)
    for i in range(5):
        for j in range(5):
            near_coast |= coast[i:i + n, j:j + n]
    assert changed.mean() < 0.01 and (changed & ~near_coast).sum() <= 0.01 * changed.sum()


def test_the_maps_numba_loops_equal_the_numpy_formulas():
    """A view's inverse projection, its land and lines and the search of its cells' ids,
    each one numba pass, give what the numpy formulas they replace give."""
    rng = np.random.default_rng(0)
    for _ in range(40):
        cx, cy = rng.uniform(-6e6, 6e6, 2)
        half = 10 ** rng.uniform(2, 7)
        w, h = (int(v) for v in rng.integers(1, 90, 2))
        xr_, yr_ = (cx - half, cx + half), (cy - half, cy + half)
        xs, ys = pixel_centres(xr_, yr_, w, h)
        lon, lat = grid_lonlat(xs, ys)
        plon, plat = to_lonlat(*np.meshgrid(xs, ys))
        np.testing.assert_allclose(lat, plat, atol=1e-9)
        np.testing.assert_allclose((lon - plon + 180.0) % 360.0 - 180.0, 0.0, atol=1e-9)
        fill, lines = land_and_lines(xr_, yr_, w, h)
        img, grat = land_image(xr_, yr_, w, h), graticule_image(xr_, yr_, w, h)
        assert fill.dtype == lines.dtype == np.uint8
        assert (fill == (img >= 1)).all()
        assert (lines == np.where(img == 2, 2, np.where(grat, 3, 0))).all()
    # the land's interpolation zoomed in over coasts: Alaska's, Norway's, Wrangel
    # Island's across 180 degrees, Portugal's across the land share's southern edge
    for lon_, lat_, half in [(-150.0, 70.3, 9e4), (15.5, 68.8, 2e4), (180.0, 71.2, 4e4),
                             (-8.87, 40.02, 3e3)]:
        (x,), (y,) = to_polar([lon_], [lat_])
        view = (x - half, x + half), (y - half, y + half)
        fill = land_and_lines(*view, 80, 80)[0]
        img = land_image(*view, 80, 80)
        assert (fill == (img >= 1)).all() and 0 < fill.mean() < 1
    # ids there, ids between them, below and above them all
    ids = np.unique(rng.integers(2**52, 2**60, 50_000, dtype=np.uint64))
    ask = np.concatenate([ids[::7], ids[::11] + np.uint64(1),
                          np.array([0, 2**63, ids[-1] + np.uint64(1)], dtype=np.uint64)])
    pos = np.searchsorted(ids, ask)
    want = np.where(ids[np.minimum(pos, len(ids) - 1)] == ask, pos, -1)
    assert (_kernels.IdIndex(ids).positions(ask) == want).all()
    assert (_kernels.IdIndex(ids[:0]).positions(ask) == -1).all()


@pytest.mark.parametrize("grid, level", [("h3", 3), ("healpix", 6)])
def test_tracking_runs_finds_the_cells_pixel_by_pixel_finds(grid, level, monkeypatch):
    """Zoomed in (pixels a half to a hundredth of a cell's side), the lookup that tracks
    runs between cells gives every pixel the cell the per-pixel lookup gives: over the
    pole, across the antimeridian, on the domain's southern edge (and south of it, where
    nothing is looked up), in views of any shape."""
    cells = get_grid(grid, level).cells(50.0)
    lookup = PixelLookup(grid, level, cells.cell_ids.values, min_lat=float(cells.lat.min()))
    rng = np.random.default_rng(1)
    places = [(0.0, 90.0), (-100.0, 68.0), (180.0, 75.0), (20.0, 50.5), (-60.0, 49.0),
              (10.0, 30.0)]
    for k in range(24):
        lon, lat = places[k % len(places)]
        (cx,), (cy,) = to_polar([lon], [lat])
        width, height = (int(v) for v in rng.integers(20, 160, 2))
        pixel = lookup.side * 10 ** rng.uniform(-2, np.log10(0.5))
        aspect = rng.uniform(0.7, 1.4)
        view = ((cx - pixel * width / 2, cx + pixel * width / 2),
                (cy - aspect * pixel * height / 2, cy + aspect * pixel * height / 2),
                width, height)
        want = lookup.per_pixel(*view)
        assert (lookup.tracked(*view) == want).all(), (grid, lon, lat, view)
    assert (want == -1).all() and (lookup.tracked(*view) == -1).all()  # at 30 N: none
    # a large view of small pixels is tracked on H3, looked up pixel by pixel on HEALPix
    (cx,), (cy,) = to_polar([-100.0], [68.0])
    half = 0.05 * lookup.side * 100
    view = ((cx - half, cx + half), (cy - half, cy + half), 200, 200)
    other = "per_pixel" if grid == "h3" else "tracked"
    monkeypatch.setattr(lookup, other, lambda *a: pytest.fail(f"{other} chosen"))
    assert lookup.compute(*view).shape == (200, 200)


def test_pixel_lookup_skips_what_no_cell_reaches_and_serves_threads(store):
    """A group's lookup knows its southernmost cell and looks no pixel up farther south
    than a cell reaches, with the same result; threads asking for views at once get each
    view looked up once."""
    ds = store.dataset("h3", 3)
    plain = PixelLookup("h3", 3, ds.cell_ids.values)
    lookup = store.lookup("h3", 3)
    assert 45 < lookup.south < 50
    view = ((-7e6, 7e6), (-7e6, 7e6), 300, 300)  # its corners far south of the cells
    assert (lookup.compute(*view) == plain.compute(*view)).all()
    shared = PixelLookup("h3", 3, ds.cell_ids.values, min_lat=float(ds.lat.min()))
    calls, first = [], shared.compute

    def counted(*args):
        calls.append(args)
        time.sleep(0.01)
        return first(*args)

    shared.compute = counted
    views = [((-3e6 + k * 1e5, 3e6), (-3e6, 3e6), 64, 64) for k in range(4)]

    def ask(seed):
        for k in np.random.default_rng(seed).integers(0, 4, 20):
            assert (shared(*views[k]) == plain(*views[k])).all()

    in_threads(ask, 8)
    assert len(calls) == 4


def test_a_drawn_level_readies_its_neighbours(cube, monkeypatch):
    """After a level's map is drawn, the next levels' groups, pixel lookups of the view,
    models and colour ranges are made in the background, once."""
    import entropice.dashboard.store as store_module

    store = CubeStore(cube[0])
    assert store.neighbours("h3", 2) == [3] and store.neighbours("h3", 3) == [2]
    assert store.neighbours("healpix", 4) == []
    view = ((-3e6, 3e6), (-3e6, 3e6), 32, 32)
    store.prefetch_levels("h3", 2, view, 2022, "era5_tdd_sum", delay=0.0).join(120)
    assert store.prefetch_levels("h3", 2, view, 2022, "era5_tdd_sum") is None  # once
    lookup = store.lookup("h3", 3)
    monkeypatch.setattr(lookup, "compute", lambda *a: pytest.fail("not prefetched"))
    monkeypatch.setattr(store_module, "robust_range", lambda v: pytest.fail("not either"))
    assert lookup(*view).shape == (32, 32)
    assert store.layer_range("h3", 3, 2022, "era5_tdd_sum")[0] < 1e9


def test_a_view_is_prefetched_again_for_a_rewritten_group_and_few_are_kept(cube,
                                                                           monkeypatch):
    """The views whose neighbours were prefetched are remembered by the groups' stamps
    (a rewritten group's are prefetched again), the last ``PREFETCHES_KEPT`` of them."""
    import entropice.dashboard.store as store_module

    store = CubeStore(cube[0])
    monkeypatch.setattr(store_module, "PREFETCHES_KEPT", 2)
    views = [((-3e6 + k, 3e6), (-3e6, 3e6), 32, 32) for k in range(3)]

    def prefetches(view):  # whether the view's neighbours would be (not done here)
        timer = store.prefetch_levels("h3", 2, view, delay=3600)
        if timer is not None:
            timer.cancel()
        return timer is not None

    assert prefetches(views[0]) and not prefetches(views[0])
    stamp = store.group_stamp
    monkeypatch.setattr(store, "group_stamp", lambda g, lvl: stamp(g, lvl) + (lvl == 3))
    assert prefetches(views[0]) and not prefetches(views[0])  # h3 3 rewritten
    assert prefetches(views[1]) and prefetches(views[2])
    assert len(store._prefetched) == 2 and prefetches(views[0])  # the first forgotten


def test_the_map_answers_a_zoom_at_once_and_sends_its_land_as_bytes(sel):
    """The range stream draws a new view without HoloViews' wait of 100 ms (Bokeh has
    waited for the wheel to pause); the land beneath and the lines above the cells are
    bytes, their zeros not drawn."""
    from holoviews.plotting.bokeh.callbacks import RangeXYCallback

    sel.level = 3
    view = MapView(selection=sel)
    plot = hv.renderer("bokeh").get_plot(view.plot)
    ranges = [cb for sub in plot.traverse(lambda p: p) for cb in getattr(sub, "callbacks", [])
              if isinstance(cb, RangeXYCallback)]
    assert ranges and all(cb.debounce is None for cb in ranges)
    images = [r for r in plot.state.renderers if "image" in getattr(r, "data_source", {
        "data": {}}).data]
    land = [r for r in images if r.data_source.data["image"][0].dtype == np.uint8]
    assert len(land) == 2
    assert all(r.glyph.color_mapper.low_color == "#00000000" for r in land)
    fill, lines = (r.data_source.data["image"][0] for r in land)
    assert set(np.unique(fill)) == {0, 1} and set(np.unique(lines)) == {0, 2, 3}


def test_map_view_renders_values_and_highlights_a_box(sel):
    sel.level = 3
    view = MapView(selection=sel)
    (x0, x1), (y0, y1) = home_extent(sel)
    img, idx = view.image((x0, x1), (y0, y1), "era5_tdd_sum")
    assert np.isfinite(img).sum() == (idx >= 0).sum() > 0
    ok = idx >= 0
    np.testing.assert_allclose(img[ok], sel.values("era5_tdd_sum")[idx[ok]], rtol=1e-6)
    plain = view.dmap[()]
    sel.box = int(sel.cell_boxes()[0])
    highlighted = view.dmap[()]
    assert len(highlighted) == len(plain)
    assert plain.Image.II.data.size == 1  # a pixel off the view
    assert np.isfinite(highlighted.Image.II.data).any()
    sel.layer = "era5_tdd_sum"  # no hatching over a feature, nor the highlight twice
    feature = view.dmap[()]
    assert np.isfinite(feature.Image.II.data).any() and feature.Image.III.data.size == 1
    assert "cells" in view.status.object
    pn.panel(view).get_root()


def test_the_colour_bar_is_titled_by_the_layer_shown(sel):
    """The colour bar's title follows a layer change (HoloViews keeps the first one)."""
    from bokeh.models import ColorBar

    hv.extension("bokeh")
    sel.level = 3
    view = MapView(selection=sel)
    plot = hv.renderer("bokeh").get_plot(view.plot)

    def titles():
        return [bar.title for bar in plot.state.select(ColorBar)]

    assert titles() == ["predicted probability of any RTS, 1 - P(none)"]
    sel.layer = "era5_tdd_sum"
    assert titles() == ["thawing degree days [degC day]"]
    # a class layer: one colour per class, each named with its density range
    sel.layer = "rts_class"
    assert titles() == ["RTS density class (RTS area in % of land)"]
    bar, = plot.state.select(ColorBar)
    assert list(bar.ticker.ticks) == [0, 1, 2, 3]
    assert bar.major_label_overrides == {0: "none", 1: "low (<= 0.01 %)",
                                         2: "medium (0.01-0.1 %)", 3: "high (> 0.1 %)"}
    assert list(bar.color_mapper.palette) == ["#d9d9d9", "#fdcc8a", "#fc8d59", "#b30000"]
    assert (bar.color_mapper.low, bar.color_mapper.high) == (-0.5, 3.5)
    sel.layer = "pred_class"
    assert list(bar.ticker.ticks) == [0, 1, 2, 3] and bar.major_label_overrides[3].startswith(
        "high")
    sel.layer = "rts_density"  # back to a continuous colour bar
    assert titles() == ["RTS area over land area"] and bar.major_label_overrides == {}


def test_zoomed_in_cells_are_outlined_and_the_hover_names_their_values(sel):
    """Few cells in view: outlined, with no hover of their own; the image's one hover
    names the layer's value, the RTS label by class and P(any RTS), without coordinates."""
    from bokeh.models import HoverTool

    hv.extension("bokeh")
    sel.level = 3
    view = MapView(selection=sel)
    lat, lon = sel.dataset.lat.values[100], sel.dataset.lon.values[100]
    x, y = to_polar(lon, lat)
    sel.layer = "pred_class"
    out = view._render(x_range=(x - 2e5, x + 2e5), y_range=(y - 2e5, y + 2e5))
    assert 0 < len(out.Polygons.I.split()) <= 400 and out.Polygons.I.vdims == []
    image = out.Image.I
    assert [d.name for d in image.vdims] == ["value", "rts_label", "p_any"]
    _, idx = view.image((x - 2e5, x + 2e5), (y - 2e5, y + 2e5))
    ok = idx >= 0
    np.testing.assert_allclose(image.dimension_values("p_any", flat=False)[::-1][ok],
                               sel.values("pred_any")[idx[ok]], rtol=1e-6)
    sel.param.update(x0=x - 2e5, x1=x + 2e5, y0=y - 2e5, y1=y + 2e5)
    plot = hv.renderer("bokeh").get_plot(view.plot)
    hovers = [t for t in plot.state.select(HoverTool) if t.tooltips]
    assert len(hovers) == 1
    tips = dict(hovers[0].tooltips)
    assert list(tips) == ["predicted RTS class (RTS area in % of land)", "RTS label",
                          "P(any RTS)"]
    assert "class_names" not in tips and "$x" not in str(tips)
    code = hovers[0].formatters["@image"].code
    assert '"3": "high"' in code and "toLocaleString" in code
    sel.layer = "era5_tdd_sum"  # the names follow the layer
    assert list(dict(hovers[0].tooltips))[0] == "thawing degree days [degC day]"
    assert '"3"' not in hovers[0].formatters["@image"].code


def test_colour_range_fits_the_view_and_scales_logarithmically(sel):
    from bokeh.models import ColorBar

    hv.extension("bokeh")
    sel.level = 3
    sel.layer = "era5_tdd_sum"
    view = MapView(selection=sel)
    k = int(np.nanargmax(sel.values()))
    x, y = to_polar(sel.dataset.lon.values[k], sel.dataset.lat.values[k])
    near = dict(x_range=(x - 3e5, x + 3e5), y_range=(y - 3e5, y + 3e5))
    whole = view._render(**near).Image.I.opts.get().kwargs["clim"]
    sel.fit = True
    fitted = view._render(**near).Image.I.opts.get().kwargs["clim"]
    assert fitted != whole and fitted[1] > whole[1]  # the warmest cells, in view
    sel.param.update(fit=False, scale="log")
    img = view._render(**near).Image.I
    assert img.vdims[0].name == "log10"
    lo, hi = img.opts.get().kwargs["clim"]
    assert np.isclose(10 ** hi, whole[1]) and np.isclose(10 ** lo, whole[0])
    plot = hv.renderer("bokeh").get_plot(view.plot)
    bar, = plot.state.select(ColorBar)
    assert all(float(v.replace(",", "")) == 10.0 ** t
               for t, v in bar.major_label_overrides.items())
    assert bar.title.endswith("(log scale) [degC day]")


def test_a_clicked_cell_shows_its_details(sel):
    sel.level = 3
    view = MapView(selection=sel)
    k = 123
    ds = sel.dataset
    x, y = to_polar(ds.lon.values[k], ds.lat.values[k])
    assert view.cell_at(float(x), float(y)) == k
    view.tap.event(x=float(x), y=float(y))
    text = view.details.object
    assert format(int(ds.cell_ids.values[k]), "x") in text
    assert "predicted:" in text and "label:" in text and "km²" in text
    assert "across the outer folds' models" in text  # the run kept them
    assert f"box {int(sel.cell_boxes()[k])}" in text
    view.tap.event(x=9e6, y=9e6)
    assert "No cell" in view.details.object


def test_predictions_outside_the_training_data_are_hatched(sel, monkeypatch):
    """Cells whose novelty passes the threshold are hatched over prediction layers (and
    named so in a click's details); other layers, and the novelty layer itself, are not."""
    from entropice.dashboard import layers, map_view

    sel.level = 3
    ds = sel.dataset
    assert "pred_novelty" in sel.param.layer.objects
    for module in (layers, map_view):  # about half the cells, to see both kinds
        monkeypatch.setattr(module, "NOVEL", 0.5)
    far = layers.novel(ds, sel.year)
    assert 0 < far.sum() < len(far)
    view = MapView(selection=sel)
    (x0, x1), (y0, y1) = home_extent(sel)
    _, idx = view.image((x0, x1), (y0, y1), "pred_any")
    hatch, n = view.extrapolated(idx, "pred_any", sel.year)
    assert n == int(far.sum())
    drawn = np.isfinite(hatch)
    assert drawn.any() and far[idx[drawn]].all()  # only over novel cells ...
    inside = (idx >= 0) & far[np.maximum(idx, 0)]
    assert 0.1 < drawn.sum() / inside.sum() < 0.25  # ... in lines, one pixel in six
    for layer in ("pred_novelty", "era5_tdd_sum"):
        assert view.extrapolated(idx, layer, sel.year) == (None, 0)
    sel.layer = "pred_any"
    frame = view.dmap[()]
    assert np.isfinite(frame.Image.III.data).any() and "hatched:" in view.status.object
    k = int(np.flatnonzero(far)[0])
    view.details.object = view.cell_details(k)
    assert "outside the training data" in view.details.object
    assert "± " in view.details.object and "ensemble members" in view.details.object


def test_boxes_view(sel):
    sel.level = 3
    view = BoxesView(selection=sel)
    names, centres, proba, counts, boxes = box_table(sel.store.model(sel.run))
    assert model_class_labels(sel.store.model(sel.run)) == ["none", "low", "medium", "high"]
    assert centres.shape == (len(boxes), len(names)) and np.allclose(proba.sum(1), 1)
    assert np.all(np.diff(proba[:, 0]) >= 0)  # most RTS first
    assert len(view.box_select.options) == len(boxes) + 1
    view.box_select.value = int(boxes[0])
    assert sel.box == int(boxes[0])
    pn.panel(view).get_root()
    view._choose(x=f"box {boxes[1]}")  # a click on the heat map's column
    assert sel.box == int(boxes[1]) and view.box_select.value == int(boxes[1])
    heat = view.plots()[1].object
    span = heat.VSpan.I.data
    assert list(span) == [1, 2]  # over the second column, not half a column off
    rule = box_rule(sel, sel.box)
    cells = int((sel.cell_boxes() == sel.box).sum())
    assert f"**Box {boxes[1]}**: {cells:,} of the group's" in rule
    assert "thawing degree days (`era5_tdd_sum`)" in rule and "degC day" in rule
    assert "Box" in view.plots()[0].object
    sel.grid = "healpix"
    assert isinstance(view.plots(), pn.pane.Alert)


def test_feature_space_brushes_cells_onto_the_map(sel):
    sel.level = 3
    view = SpaceView(selection=sel)
    model = sel.store.model(sel.run)
    w = model.estimator.feature_weights_
    assert [view.x, view.y] == [model.meta["feature_names"][j] for j in np.argsort(-w)[:2]]
    pn.panel(view).get_root()
    df, colours = cell_table(sel, view.x, view.y, "RTS label")
    assert list(colours)[:4] == ["none", "low", "medium", "high"] and "not mapped" in colours
    assert len(df) == np.isfinite(sel.values(view.x) + sel.values(view.y)).sum()
    labelled = np.isfinite(sel.values("rts_class"))
    assert (df.category != "not mapped").sum() == labelled.sum()
    df, _ = cell_table(sel, view.x, view.y, "box")
    assert set(df.category) <= {f"box {k}" for k in range(sel.n_boxes)}
    # a brushed rectangle: its cells, and only they, light up on the map
    x0, x1 = np.percentile(df[view.x], [20, 60])
    y0, y1 = np.percentile(df[view.y], [20, 60])
    view._brushed(bounds=(x0, y0, x1, y1))
    inside = ((df[view.x] >= x0) & (df[view.x] <= x1) & (df[view.y] >= y0)
              & (df[view.y] <= y1)).sum()
    assert sel.brushed().sum() == inside > 0
    assert f"{inside:,} cells brushed" in view.status().object
    map_view = MapView(selection=sel)
    frame = map_view._render()
    assert np.isfinite(frame.Image.II.data).any()
    assert f"{inside:,} cells lit" in map_view.status.object
    view._brushed(bounds=None)
    assert sel.brush is None and not sel.brushed().any()
    sel.brush = (view.x, view.y, x0, x1, y0, y1)
    sel.level = 2  # another group: the brush goes
    assert sel.brush is None


def test_box_centres_hover_in_the_features_own_units(sel):
    """The heat map's hover gives each box centre in its feature's units too: the
    model's standardisation undone, which the model's own transform takes back."""
    sel.level = 3
    model = sel.store.model(sel.run)
    names, centres, _, _, boxes = box_table(model)
    all_names = model.meta["feature_names"]
    phys = physical_centres(model, all_names, model.estimator.boxes_)
    assert np.allclose(model.transform(phys), model.estimator.boxes_)
    view = BoxesView(selection=sel)
    heat = view.plots()[1].object
    data = heat.data
    assert [d.label for d in heat.vdims] == ["centre (standard units)",
                                             "centre (feature's units)"]
    j = list(names).index("era5_tdd_sum")
    col = list(all_names).index("era5_tdd_sum")
    for i, k in enumerate(boxes):
        want = centres[i, j] * model.scale[col] + model.mean[col]
        row = data[(data.box == f"box {k}") & (data.feature == "era5_tdd_sum")]
        assert row.physical.item() == f"{_fmt(want)} degC day"
        assert row.centre.item() == pytest.approx(centres[i, j])
    # the hover names both, and the colour bar stays in standard units
    fig = hv.render(heat)
    tips = [t.tooltips for t in fig.tools if hasattr(t, "tooltips")][0]
    assert ("centre (feature's units)", "@{physical}") in tips
    assert fig.select_one({"type": ColorBar}).title == "box centre (standard units)"


def test_the_principal_axes_plane_brushes_the_cells_it_holds(sel):
    """The feature space's other plane: the first two principal axes of the run's
    standardised features, in order of variance; a rectangle brushed there lights the
    cells whose projections lie in it, and travels in a link."""
    from sklearn.decomposition import PCA

    sel.level = 3
    p = sel.projection()
    assert p is sel.projection()  # kept, not computed again
    assert set(p.names) == set(sel.axes_features()) and len(p.names) >= 2
    assert 1 >= p.ratio[0] >= p.ratio[1] > 0
    coords = p.coords[np.isfinite(p.coords).all(axis=1)]
    assert coords.var(axis=0)[0] >= coords.var(axis=0)[1]
    # every cell fits in the sample here: the axes are the standardised features' own
    z = np.column_stack([sel.values(n) for n in p.names])
    z = (z - z.mean(0)) / z.std(0)
    want = PCA(2).fit_transform(z)
    assert p.fitted == len(z)
    assert np.allclose(np.abs(p.coords), np.abs(want), atol=1e-8)
    top = p.names[int(np.argmax(np.abs(p.components[0])))]
    label = p.label(0)
    assert label.startswith(f"principal axis 1 ({100 * p.ratio[0]:.0f} % of variance): +")
    assert top in label
    with pytest.raises(KeyError):
        sel.store.projection(sel.grid, sel.level, sel.year, ("../etc", "era5_tdd_sum"))

    view = SpaceView(selection=sel)
    view.plane = AXES
    pn.panel(view).get_root()
    plot = view.plot()
    assert "principal axes of" in plot[1].object and "standardised" in plot[1].object
    df, _ = cell_table(sel, "PC1", "PC2", "RTS label")
    assert len(df) == np.isfinite(p.coords).all(axis=1).sum()
    x0, x1 = np.percentile(df.PC1, [30, 70])
    y0, y1 = np.percentile(df.PC2, [10, 50])
    view._brushed(bounds=(x0, y0, x1, y1))
    assert sel.brush == ("PC1", "PC2", x0, x1, y0, y1)
    pc1, pc2 = p.coords.T
    inside = (pc1 >= x0) & (pc1 <= x1) & (pc2 >= y0) & (pc2 <= y1)
    assert inside.any() and np.array_equal(sel.brushed(), inside)
    assert f"{int(inside.sum()):,} cells brushed" in view.status().object
    assert view._rectangle(sel.brush).data.shape[0] == 1
    map_view = MapView(selection=sel)
    map_view._render()
    assert f"{int(inside.sum()):,} cells lit" in map_view.status.object

    # a link keeps the brush in the axes' plane, and its page opens on that plane
    query = {"level": "3", "year": str(sel.year), "run": sel.run,
             "brush": url_value(sel.brush)}
    other = Selection(store=sel.store)
    other_view = SpaceView(selection=other)
    kept = apply_query(other, query)
    assert json.loads(kept["brush"])[:2] == ["PC1", "PC2"]
    assert other_view.plane == AXES
    assert np.array_equal(other.brushed(), inside)
    # a brush in the features' plane brings the view back to it
    other.brush = ("era5_tdd_sum", "dem_slope_mean", 0.0, 1e4, 0.0, 10.0)
    assert other_view.plane == FEATURES and other_view.axes() == ("era5_tdd_sum",
                                                                  "dem_slope_mean")
    # the axes are the year's and the run's: another's brush goes, a feature's stays
    sel.year = [y for y in sel.param.year.objects if y != sel.year][0]
    assert sel.brush is None
    other.year = sel.year
    assert other.brush is not None
    # without a run, the axes are made of every feature of the group
    sel.run = None
    assert sel.axes_features() == [f for g in features(sel.dataset).values() for f in g]
    assert sel.projection().names == tuple(sel.axes_features())


def test_principal_axes_impute_missing_values_and_skip_what_cannot_make_an_axis():
    """A cell missing some features sits at their medians, one missing all is left out;
    a feature without values or spread makes no axis; fewer than two features, none."""
    import xarray as xr

    from entropice.dashboard.projection import principal_axes

    rng = np.random.default_rng(1)
    n = 500
    a, b = rng.normal(size=n), rng.normal(size=n)
    a[:5] = np.nan  # missing one feature
    a[5], b[5] = np.nan, np.nan  # missing both
    ds = xr.Dataset({"a": ("cells", a), "b": ("cells", 2 * b + 0.5 * np.nan_to_num(a)),
                     "flat": ("cells", np.ones(n)), "none": ("cells", np.full(n, np.nan))},
                    coords={"cell_ids": ("cells", np.arange(n))})
    p = principal_axes(ds, ["a", "flat", "b", "none"], None)
    assert p.names == ("a", "b") and p.imputed == 5 and p.fitted == n - 1
    assert np.isnan(p.coords[5]).all() and np.isfinite(np.delete(p.coords, 5, 0)).all()
    assert abs(p.ratio.sum() - 1) < 1e-9 and p.ratio[0] >= p.ratio[1]
    # a cell missing a feature projects as one with that feature's median
    known = np.isfinite(ds.a.values)
    med = np.median(ds.a.values[known])
    filled = ds.a.values.copy()
    filled[~known] = med
    z = np.column_stack([filled, ds.b.values])[np.arange(n) != 5]
    mean, sd = z.mean(0), z.std(0)
    zz = (np.column_stack([filled, ds.b.values]) - mean) / sd
    want = (zz - zz[np.arange(n) != 5].mean(0)) @ p.components.T
    assert np.allclose(p.coords[:5], want[:5])
    assert principal_axes(ds, ["a", "flat", "none"], None) is None


def test_compare_puts_another_grid_beside_and_follows_the_extent(sel):
    sel.level = 3
    view = CompareView(selection=sel)
    pn.panel(view)
    assert view.other is None  # nothing loaded until the tab is shown
    pn.panel(view).get_root()
    assert (view.other.grid, view.other.year) == ("healpix", sel.year)
    view.left.range.event(x_range=(-2e6, 0.0), y_range=(-2e6, 0.0))
    assert (view.other.x0, view.other.x1, view.other.y0, view.other.y1) == (-2e6, 0, -2e6, 0)
    view.right.range.event(x_range=(-1e6, 0.0), y_range=(-1e6, 0.0))
    assert (sel.x0, sel.x1) == (-1e6, 0.0)
    assert "healpix level" in view.right.status.object and "in view" in view.right.status.object
    sel.param.update(x0=None, x1=None, y0=None, y1=None)


def test_a_link_sets_the_compare_tabs_right_map(sel):
    """``right_grid``, ``right_level``, ``right_year`` and ``right_layer`` choose the
    right map, checked like the left's; other entries are not the right map's."""
    sel.level = 3
    view = CompareView(selection=sel)
    assert view.follow_link({"level": "2", "right_box": "1"}) == {} and view.other is None
    kept = view.follow_link({"right_grid": "h3", "right_level": "2", "right_year": "2021",
                             "right_layer": "rts_density", "right_tab": "Boxes"})
    assert kept == {"right_grid": "h3", "right_level": "2", "right_year": "2021",
                    "right_layer": "rts_density"}
    assert (view.other.grid, view.other.level, view.other.year, view.other.layer) == (
        "h3", 2, 2021, "rts_density")
    assert view.follow_link({"right_level": "../9", "right_layer": "/etc/passwd"}) == {}
    assert view.other.level == 2


def test_relevance_view(sel):
    sel.level = 3
    rel = sel.store.relevance(sel.run)
    df = weights(sel.store.model(sel.run), rel, features(sel.dataset))
    assert np.isclose(df.weight.sum(), 1) and df.weight.is_monotonic_decreasing
    assert set(df.source) == {"era5", "arcticdem", "alphaearth"}
    assert set(weights(sel.store.model(sel.run)).source) == {"other"}
    assert not df.feature.str.endswith("_missing").any()  # indicators carry no weight
    # the spread over 3 outer folds x 4 members, and the permutation importance
    assert (rel[rel.measure == "weight"]["count"] == 12).all()
    assert {"eSPA+", "LogisticRegression"} <= set(importance(rel, df.feature).model)
    assert is_flat(sel.store.model(sel.run))  # the small cube's run has eps_W = inf
    pn.panel(RelevanceView(selection=sel)).get_root()
    shown = RelevanceView(selection=sel).current().objects
    assert any(isinstance(o, pn.pane.Alert) and "flat" in o.object for o in shown)
    # the weights and the importance share one feature axis, largest weight on top
    from bokeh.models import FactorRange

    row = RelevanceView(selection=sel).current().objects[-1]
    axes = list(row.get_root().select({"type": FactorRange}))
    top = list(df.feature.head(len(axes[0].factors)))
    assert all(list(a.factors) == top[::-1] for a in axes)
    # a click on a feature's bar shows it on the map; on the heat map, in its group
    view = RelevanceView(selection=sel)
    view.show("dem_slope_mean")
    assert (sel.layer, sel.tab) == ("dem_slope_mean", "Map")
    sel.tab = "Feature relevance"
    view.show("era5_tdd_sum", "h3 2")
    assert (sel.level, sel.layer, sel.tab) == (2, "era5_tdd_sum", "Map")
    view.show("not_a_feature", "../etc 9")
    assert (sel.grid, sel.level, sel.layer) == ("h3", 2, "era5_tdd_sum")


def test_evaluation_view(sel):
    sel.level = 3
    table = metrics_table(sel.store.metrics(sel.run))
    assert list(table.model) == ["eSPA+", "LogisticRegression", "Majority"]
    assert "land for 90% RTS" in table
    view = EvaluationView(selection=sel)
    pn.panel(view).get_root()
    assert "entropice evaluate" in str(view.plots().objects[-1].object)  # not yet
    # once evaluated: learning curves, each region held out, the next year
    from entropice.runs import transfer

    ds = sel.dataset
    regions = transfer.cell_regions(ds, None, n_regions=4)
    fast = {"features": ["era5_*", "dem_*"], "baselines": ["LogisticRegression"],
            "n_estimators": 1, "n_restarts": 1}
    params = {"n_boxes": 4, "eps_C": 1.0, "eps_W": 1.0, "class_weight": "balanced"}
    temporal, changed = transfer.temporal_validation(ds, fast, params)
    tables = {"transfer": transfer.leave_one_region_out(ds, regions, fast, params),
              "learning_curve": transfer.learning_curve(ds, regions, fast, params, repeats=1),
              "temporal": temporal}
    sel.store.run_store.write_evaluation(sel.run, tables, {
        "run_id": sel.run, "regions": {"region 1": 1}, "regions_from": "k-means",
        "labels_changed_share": changed})
    beyond = view.plots().objects[-1]
    pn.panel(beyond).get_root()
    text = " ".join(str(getattr(o, "object", "")) for o in beyond.objects)
    assert "Beyond the folds" in text and "measures nothing about time" in text
    assert sel.store.figure(sel.run, "transfer_map") is None  # not drawn: not shown
    assert not any(isinstance(o, pn.pane.PNG) for o in beyond.objects)
    from entropice.runs import figures

    run_dir = sel.store.run_store.path(sel.run)
    figures.write(run_dir, tables, {"run_id": sel.run}, ds, regions)
    assert sel.store.figure(sel.run, "transfer_map") == run_dir / "transfer_map.png"
    maps = [o for o in view.plots().objects[-1].objects if isinstance(o, pn.pane.PNG)]
    assert len(maps) == 1 and maps[0].object == str(run_dir / "transfer_map.png")
    with pytest.raises(KeyError, match="unknown figure"):
        sel.store.figure(sel.run, "../model")
    heat = transfer_heatmap(tables["transfer"])
    assert set(heat.HeatMap.I.dimension_values("region")) == set(regions) - {""}
    curve = learning_curve_plot(tables["learning_curve"])
    assert {el.label for el in curve if el.label} == {"eSPA+", "LogisticRegression"}
    assert list(temporal_table(temporal).columns) == ["eSPA+", "LogisticRegression",
                                                      "persistence", "climatology"]
    for name in ("transfer", "learning_curve", "temporal"):  # the run as it was
        (sel.store.run_store.path(sel.run) / f"{name}.csv").unlink()
    for path in run_dir.glob("*.png"):
        path.unlink()
    (sel.store.run_store.path(sel.run) / "evaluation.json").unlink()


def test_data_view(sel):
    sel.level = 3
    df = by_class(sel.dataset, "era5_tdd_sum", 2021)
    assert list(df["class"].cat.categories) == ["none", "low", "medium", "high"]
    assert df["class"].is_monotonic_increasing
    assert len(df) == np.isfinite(sel.dataset.rts_class.sel(year=2021)).sum()
    view = DataView(selection=sel)
    pn.panel(view).get_root()
    sel.layer = "dem_slope_mean"  # follows the map's layer ...
    assert view.feature == "dem_slope_mean"
    view.feature = "era5_tdd_sum"  # ... and sets it
    assert sel.layer == "era5_tdd_sum"
    violin = view.plot()
    assert violin.dimension_values("class", expanded=False).tolist() == [
        "none", "low", "medium", "high"][:len(set(df["class"]))]


def test_downloads_hold_the_current_layer(sel):
    sel.level = 3
    sel.layer = "era5_tdd_sum"
    csv = pd.read_csv(layer_csv(sel))
    assert len(csv) == sel.dataset.sizes["cells"]
    np.testing.assert_allclose(csv["era5_tdd_sum [degC day]"], sel.values(), rtol=1e-6)
    gdf = gpd.read_parquet(io.BytesIO(layer_geoparquet(sel).getvalue()))
    assert gdf.crs.to_epsg() == 4326 and len(gdf) == len(csv)
    # zoomed in: only the cells in view; a class layer with names; predictions with the
    # run and without the cells over water
    x, y = to_polar(sel.dataset.lon.values, sel.dataset.lat.values)
    sel.param.update(x0=-2e6, x1=0.0, y0=-2e6, y1=0.0, layer="pred_class")
    inside = (x >= -2e6) & (x <= 0) & (y >= -2e6) & (y <= 0)
    land = sel.dataset.land_fraction.values > 0
    csv = pd.read_csv(layer_csv(sel))
    assert 0 < len(csv) == (inside & land).sum() < sel.dataset.sizes["cells"]
    assert set(csv.class_name) <= {"none", "low", "medium", "high"}
    assert (csv.run_id == sel.run).all()
    sel.layer = "pred_proba:3"
    assert "P(high)" in pd.read_csv(layer_csv(sel)).columns
    sel.param.update(x0=None, x1=None, y0=None, y1=None)
    assert gdf.geometry.is_valid.all()


def test_land_share_is_computed_once_in_a_child_process(tmp_path, monkeypatch):
    """The land beneath the map comes from the 1 GB GLOBE mask: decompressed once, by a
    child process (the server never holds it), then read from the cache."""
    from entropice.dashboard import lookup

    monkeypatch.setenv("ENTROPICE_CACHE", str(tmp_path))
    monkeypatch.delenv("ENTROPICE_CACHE_DIR", raising=False)
    lookup.land_share.cache_clear()

    def not_here():
        raise AssertionError("the mask was decompressed in the server's process")

    monkeypatch.setattr(lookup, "_globe_land_share", not_here)
    try:
        land = lookup.land_share()
    finally:
        lookup.land_share.cache_clear()
    assert (tmp_path / "dashboard").is_dir() and lookup._cache_path().exists()
    assert land.dtype == np.float32 and 0.0 <= land.min() and land.max() <= 1.0
    # Svalbard is land, the Fram Strait water
    lat, lon = 78.2, 15.6
    row, col = int((90 - lat) / lookup.LAND_STEP), int((lon + 180) / lookup.LAND_STEP)
    assert land[row, col] > 0.5 and land[int((90 - 79.0) / lookup.LAND_STEP),
                                         int((0.0 + 180) / lookup.LAND_STEP)] < 0.5
