"""The dashboard page: the sidebar's selection, the map and the model's views in tabs,
the view's state in the URL, and downloads of the current layer."""

from __future__ import annotations

import io
from urllib.parse import urlencode

import holoviews as hv
import pandas as pd
import panel as pn
import param

from .boxes_view import BoxesView
from .data_view import DataView
from .evaluation_view import EvaluationView
from .map_view import MapView
from .relevance_view import RelevanceView
from .store import CubeStore

TITLE = "Entropice: where are Retrogressive Thaw Slumps dense?"
URL_STATE = ["grid", "level", "year", "layer", "run", "box", "x0", "x1", "y0", "y1"]


def layer_frame(store: CubeStore) -> pd.DataFrame:
    """The current layer in every cell: id, centre, area, year and value."""
    ds = store.dataset
    return pd.DataFrame({
        "cell_id": [store.format_id(c) for c in ds.cell_ids.values],
        "lat": ds.lat.values, "lon": ds.lon.values, "area_km2": ds.area_km2.values,
        "year": store.year, store.layer.replace(":", "_"): store.values()})


def layer_csv(store: CubeStore) -> io.BytesIO:
    """The current layer as CSV."""
    return io.BytesIO(layer_frame(store).to_csv(index=False).encode())


def layer_geoparquet(store: CubeStore) -> io.BytesIO:
    """The current layer as GeoParquet, with the cells' polygons in EPSG:4326."""
    import geopandas as gpd

    ds = store.dataset
    polys = store.lookup.grid.polygons(ds.cell_ids.values)
    gdf = gpd.GeoDataFrame(layer_frame(store), geometry=polys, crs="EPSG:4326")
    buf = io.BytesIO()
    gdf.to_parquet(buf)
    buf.seek(0)
    return buf


def _layer_select(store: CubeStore) -> pn.widgets.Select:
    """The layer menu, grouped by source and kept in step with the store."""
    w = pn.widgets.Select(label="Layer", width=280)

    def refresh(*_):
        w.groups = store.layer_groups()
        w.value = store.layer

    def push(event):
        if event.new is not None and event.new != store.layer:
            store.layer = event.new

    refresh()
    store.param.watch(refresh, ["grid", "level", "layer"])
    w.param.watch(push, "value")
    return w


def _sync_url(store: CubeStore):
    """Keep the view's state in the URL. Values from a link are matched against what the
    cube offers (a name that is not offered is dropped, never used to open a file)."""
    loc = pn.state.location
    if loc is None:
        return
    query, kept = dict(loc.query_params), {}
    for name in URL_STATE:  # in order: the grid decides the levels, the level the layers
        if name not in query:
            continue
        p = store.param[name]
        try:
            if isinstance(p, param.Selector):
                value = next(o for o in p.objects if str(o) == str(query[name]))
            else:
                number = float(query[name])
                value = int(number) if isinstance(p, param.Integer) else number
            setattr(store, name, value)
            kept[name] = query[name]
        except (StopIteration, ValueError, TypeError):
            continue
    loc.search = "?" + urlencode(kept) if kept else ""
    loc.sync(store, {n: n for n in URL_STATE})


def missing_cube_page(store: CubeStore):
    return pn.template.BootstrapTemplate(title=TITLE, main=[pn.pane.Alert(
        f"{store.problem}\n\nBuild the demo cube first (no download needed, about five "
        "minutes):\n\n    entropice demo\n\nthen serve this page again, or point it at "
        "your cube with `panel serve app/ --args --cube PATH` (or ENTROPICE_CUBE=PATH).",
        alert_type="danger")])


def build(path=None, models=None):
    """The dashboard as a servable template."""
    hv.extension("bokeh")
    store = CubeStore(path, models)
    if store.problem:
        return missing_cube_page(store)
    map_view = MapView(store=store)
    boxes = BoxesView(store=store)
    note = pn.pane.Alert("This grid and level has no predictions yet: run `entropice "
                         "predict` to map predicted RTS density.", alert_type="info",
                         visible=not store.has_predictions, width=280)
    store.param.watch(lambda *_: setattr(note, "visible", not store.has_predictions),
                      ["grid", "level"])
    downloads = pn.Row(
        pn.widgets.FileDownload(callback=lambda: layer_csv(store), filename="layer.csv",
                                label="CSV", width=130),
        pn.widgets.FileDownload(callback=lambda: layer_geoparquet(store),
                                filename="layer.parquet", label="GeoParquet", width=130))

    def filenames(*_):
        stem = f"{store.grid}{store.level}_{store.layer.replace(':', '_')}_{store.year}"
        downloads[0].filename, downloads[1].filename = f"{stem}.csv", f"{stem}.parquet"
    filenames()
    store.param.watch(filenames, ["grid", "level", "layer", "year"])
    sidebar = [
        pn.widgets.RadioButtonGroup.from_param(store.param.grid, label="Grid"),
        pn.widgets.Select.from_param(store.param.level, label="Level"),
        pn.widgets.Select.from_param(store.param.year, label="Year"),
        _layer_select(store), note,
        pn.widgets.Select.from_param(store.param.run, label="Model run"),
        boxes.box_select,
        pn.widgets.Select.from_param(store.param.cmap, label="Colour map"),
        pn.Row(pn.widgets.FloatInput.from_param(store.param.vmin, label="min", width=130),
               pn.widgets.FloatInput.from_param(store.param.vmax, label="max", width=130)),
        pn.pane.Markdown("**Download the layer**"), downloads,
        pn.pane.Markdown(f"Cube: `{store.path}`", styles={"font-size": "0.8em"}),
    ]
    tabs = pn.Tabs(("Map", map_view), ("Boxes", boxes.plots),
                   ("Feature relevance", RelevanceView(store=store)),
                   ("Evaluation", EvaluationView(store=store)),
                   ("Data", DataView(store=store)), dynamic=True)
    _sync_url(store)
    # Bootstrap, not Fast: Fast fetches a web font, and the page must work offline
    page = pn.template.BootstrapTemplate(title=TITLE, sidebar=sidebar, main=[tabs],
                                        sidebar_width=320)
    page.store = store  # for tests and notebooks
    return page


