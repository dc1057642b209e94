"""The domain's land: the share of each cell's area that is land."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .base import DEFAULT_MIN_LAT, Grid


def land_fraction(grid: Grid, land, min_lat: float = DEFAULT_MIN_LAT) -> xr.DataArray:
    """Share of each domain cell's area covered by the ``land`` polygons (0 to 1).

    Parameters
    ----------
    grid : Grid
    land : geopandas.GeoDataFrame
        Land polygons in any CRS (for example Natural Earth's ``ne_10m_land``).
    min_lat : float, default 50.0

    Returns
    -------
    xarray.DataArray
        ``land_fraction`` on every domain cell (0 where no land polygon reaches).
    """
    from ..aggregate import polygons_to_cells

    cells = grid.cells(min_lat)
    overlap = polygons_to_cells(land, grid, min_lat).overlap_area_km2
    pos = np.searchsorted(cells.cell_ids.values, overlap.cell_ids.values)
    area = np.zeros(cells.sizes["cells"])
    area[pos] = overlap.values
    frac = np.clip(area / cells.area_km2.values, 0.0, 1.0)
    return xr.DataArray(frac, dims="cells", coords={"cell_ids": cells.cell_ids},
                        name="land_fraction",
                        attrs={"units": "1", "long_name": "land share of the cell area"})
