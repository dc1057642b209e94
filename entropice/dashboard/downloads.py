"""Downloads of the selected layer as the map shows it: the cells in view (their centres
inside the map's extent) that have a value there, each with its id, centre, area and
value, as CSV or as GeoParquet with the cells' polygons. Columns carry the layer's units,
class layers their classes' names, predictions the run they come from."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import panel as pn

from .layers import PROBA, class_labels, column_name, is_prediction, layer_menu, split_layer
from .lookup import to_polar
from .selection import Selection
from .view import View


def shown_cells(selection: Selection) -> np.ndarray:
    """Positions of the cells the map shows: centre in view, a value in the layer (no
    prediction over water)."""
    s = selection
    ds = s.dataset
    ok = np.isfinite(s.values())
    if is_prediction(s.layer):
        ok &= ds.land_fraction.values > 0
    if None not in (s.x0, s.x1, s.y0, s.y1):
        x, y = to_polar(ds.lon.values, ds.lat.values)
        ok &= (x >= s.x0) & (x <= s.x1) & (y >= s.y0) & (y <= s.y1)
    return np.flatnonzero(ok)


def value_column(selection: Selection) -> str:
    """The layer's column: its menu name (``P(high)`` for a class's probability) with its
    units (``era5_tdd_sum [degC day]``)."""
    s = selection
    labels = {layer: label for group in layer_menu(s.dataset).values()
              for label, layer in group.items()}
    name = labels.get(s.layer, column_name(s.layer))
    units = s.describe()[1]
    return f"{name} [{units}]" if units else name


def layer_frame(selection: Selection) -> pd.DataFrame:
    """The selected layer in the cells shown: id, centre, area, year and value; a class
    layer's class names; a prediction's run id."""
    s = selection
    ds, grid = s.dataset, s.grid_system
    pos = shown_cells(s)
    values = s.values()[pos]
    df = pd.DataFrame({
        "cell_id": [grid.format_id(c) for c in ds.cell_ids.values[pos]],
        "lat": ds.lat.values[pos], "lon": ds.lon.values[pos],
        "area_km2": ds.area_km2.values[pos], "year": s.year, value_column(s): values})
    name, cls = split_layer(s.layer)
    if cls is None and name in ds and "flag_meanings" in ds[name].attrs:
        df["class_name"] = class_labels(ds[name], values)
    if is_prediction(s.layer) and PROBA in ds:
        df["run_id"] = ds[PROBA].attrs.get("run_id", "")
    return df


def layer_csv(selection: Selection) -> io.BytesIO:
    """The selected layer as CSV."""
    return io.BytesIO(layer_frame(selection).to_csv(index=False).encode())


def layer_geoparquet(selection: Selection) -> io.BytesIO:
    """The selected layer as GeoParquet, with the cells' polygons in EPSG:4326."""
    import geopandas as gpd

    s = selection
    polys = s.grid_system.polygons(s.dataset.cell_ids.values[shown_cells(s)])
    gdf = gpd.GeoDataFrame(layer_frame(s), geometry=polys, crs="EPSG:4326")
    buf = io.BytesIO()
    gdf.to_parquet(buf)
    buf.seek(0)
    return buf


class Downloads(View):
    """Buttons that download the selected layer, its files named for what they hold."""

    def _button(self, write, suffix, label):
        s = self.selection
        filename = pn.bind(lambda grid, level, layer, year:
                           f"{grid}{level}_{column_name(layer)}_{year}{suffix}",
                           s.param.grid, s.param.level, s.param.layer, s.param.year)
        return pn.widgets.FileDownload(callback=lambda: write(s), filename=filename,
                                       label=label, width=130)

    def __panel__(self):
        return pn.Row(self._button(layer_csv, ".csv", "CSV"),
                      self._button(layer_geoparquet, ".parquet", "GeoParquet"))
