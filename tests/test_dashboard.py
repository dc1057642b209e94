"""The dashboard's views, each on a small cube built by the tests (no browser here;
tests/ui drives the served page)."""

import io

import geopandas as gpd
import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import pytest
import small_cube

from entropice.dashboard import build
from entropice.dashboard.boxes_view import BoxesView, box_table
from entropice.dashboard.data_view import DataView, by_class
from entropice.dashboard.downloads import layer_csv, layer_geoparquet
from entropice.dashboard.evaluation_view import EvaluationView, metrics_table
from entropice.dashboard.layers import (
    class_labels,
    describe,
    features,
    layer_menu,
    model_class_labels,
    split_layer,
)
from entropice.dashboard.lookup import PixelLookup, land_image, to_polar
from entropice.dashboard.map_view import MapView, home_extent
from entropice.dashboard.page import App, apply_query, cube_path
from entropice.dashboard.relevance_view import RelevanceView, importance, is_flat, weights
from entropice.dashboard.selection import Selection
from entropice.dashboard.store import CubeStore
from entropice.grids import get_grid


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


def test_store_reads_the_cube_and_its_runs(store, cube):
    assert store.problem is None
    assert store.grids() == ["h3", "healpix"] and store.levels("h3") == [2, 3]
    assert store.dataset("h3", 3) is store.dataset("h3", 3)  # read once
    assert store.run_ids("h3", 3) == [cube[1]] and store.run_ids("h3", 2) == []
    assert list(store.current_models()) == ["h3 3"]


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
    assert len(page.main[0]) == 5  # the tabs: map, boxes, relevance, evaluation, data
    assert f"Cube: `{cube[0]}`" in page.sidebar[-1].object
    note = next(w for w in page.sidebar if isinstance(w, pn.pane.Alert))
    csv = pn.Column(*page.sidebar).select(pn.widgets.FileDownload)[0]
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


def test_land_and_coastline_ship_offline():
    img = land_image((-4e6, 4e6), (-4e6, 4e6), 200, 200)
    assert 0.2 < np.isfinite(img).mean() < 0.8
    coast = img == 2
    assert 0.01 < coast.mean() < 0.2  # a thin line between land and water
    # Greenland's ice sheet is land, the North Pole is water
    x, y = to_polar([-40.0, 0.0], [75.0, 90.0])
    for xi, yi, want in zip(x, y, [1.0, None]):
        one = land_image((xi - 1, xi + 1), (yi - 1, yi + 1), 1, 1)[0, 0]
        assert (one == want) if want else np.isnan(one)


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


def test_zoomed_in_cells_are_outlined_with_their_details(sel):
    sel.level = 3
    view = MapView(selection=sel)
    lat, lon = sel.dataset.lat.values[100], sel.dataset.lon.values[100]
    x, y = to_polar(lon, lat)
    sel.layer = "pred_class"
    out = view._render(x_range=(x - 2e5, x + 2e5), y_range=(y - 2e5, y + 2e5))
    polys = out.Polygons.I
    assert "probabilities" in polys.vdims[-1].name
    cells = polys.dimension_values("cell", expanded=False)
    assert any(c == format(int(sel.dataset.cell_ids.values[100]), "x") for c in cells)


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
    view.tap.event(x=9e6, y=9e6)
    assert "No cell" in view.details.object


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
    sel.grid = "healpix"
    assert isinstance(view.plots(), pn.pane.Alert)


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


def test_evaluation_view(sel):
    sel.level = 3
    table = metrics_table(sel.store.metrics(sel.run))
    assert list(table.model) == ["eSPA+", "LogisticRegression", "Majority"]
    assert "land for 90% RTS" in table
    pn.panel(EvaluationView(selection=sel)).get_root()


def test_data_view(sel):
    sel.level = 3
    df = by_class(sel.dataset, "era5_tdd_sum", 2021)
    assert set(df["class"]) <= {"none", "low", "medium", "high"}
    assert len(df) == np.isfinite(sel.dataset.rts_class.sel(year=2021)).sum()
    pn.panel(DataView(selection=sel)).get_root()


def test_downloads_hold_the_current_layer(sel):
    sel.level = 3
    sel.layer = "era5_tdd_sum"
    csv = pd.read_csv(layer_csv(sel))
    assert len(csv) == sel.dataset.sizes["cells"]
    np.testing.assert_allclose(csv.era5_tdd_sum, sel.values(), rtol=1e-6)
    gdf = gpd.read_parquet(io.BytesIO(layer_geoparquet(sel).getvalue()))
    assert gdf.crs.to_epsg() == 4326 and len(gdf) == len(csv)
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
