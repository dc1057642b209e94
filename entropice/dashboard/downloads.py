"""Downloads of the selected layer: every cell's id, centre, area and value, as CSV or
as GeoParquet with the cells' polygons."""

from __future__ import annotations

import io

import pandas as pd
import panel as pn

from .layers import column_name
from .selection import Selection
from .view import View


def layer_frame(selection: Selection) -> pd.DataFrame:
    """The selected layer in every cell: id, centre, area, year and value."""
    s = selection
    ds, grid = s.dataset, s.grid_system
    return pd.DataFrame({
        "cell_id": [grid.format_id(c) for c in ds.cell_ids.values],
        "lat": ds.lat.values, "lon": ds.lon.values, "area_km2": ds.area_km2.values,
        "year": s.year, column_name(s.layer): s.values()})


def layer_csv(selection: Selection) -> io.BytesIO:
    """The selected layer as CSV."""
    return io.BytesIO(layer_frame(selection).to_csv(index=False).encode())


def layer_geoparquet(selection: Selection) -> io.BytesIO:
    """The selected layer as GeoParquet, with the cells' polygons in EPSG:4326."""
    import geopandas as gpd

    polys = selection.grid_system.polygons(selection.dataset.cell_ids.values)
    gdf = gpd.GeoDataFrame(layer_frame(selection), geometry=polys, crs="EPSG:4326")
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
