"""The domain's land: the share of each cell's area that is land (from polygons or a
land mask raster), and the land share on a lat/lon grid from the NOAA GLOBE mask that
ships in the ``global-land-mask`` package."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..grids import DEFAULT_MIN_LAT, Grid
from .polygons import polygons_to_cells
from .raster import raster_to_cells


def land_fraction(grid: Grid, land, min_lat: float = DEFAULT_MIN_LAT) -> xr.DataArray:
    """Share of each domain cell's area that is land (0 to 1).

    Parameters
    ----------
    grid : Grid
    land : geopandas.GeoDataFrame or xarray.DataArray
        Land polygons in any CRS (for example Natural Earth's ``ne_10m_land``), or a
        land mask raster (1 land, 0 sea, or a land share) with its CRS.
    min_lat : float, default 50.0

    Returns
    -------
    xarray.DataArray
        ``land_fraction`` on every domain cell (0 where no land reaches).
    """
    cells = grid.cells(min_lat)
    if isinstance(land, xr.DataArray):  # the mask's mean over the cell's pixels
        frac = np.nan_to_num(raster_to_cells(land, grid, ("mean",), min_lat,
                                             domain=True)["mean"].values)
    else:
        overlap = polygons_to_cells(land, grid, min_lat).overlap_area_km2
        area = grid.on_domain(overlap, cells.cell_ids.values, fill=0.0).values
        frac = area / cells.area_km2.values
    return xr.DataArray(np.clip(frac, 0.0, 1.0), dims="cells",
                        coords={"cell_ids": cells.cell_ids}, name="land_fraction",
                        attrs={"units": "1", "long_name": "land share of the cell area"})


def globe_land_share(min_lat: float = 49.0, factor: int = 10) -> xr.DataArray:
    """Land share north of ``min_lat`` on a lat/lon grid ``factor`` times coarser than the
    30'' NOAA GLOBE mask (block means; rows from the north), with no network."""
    import os

    import global_land_mask

    path = os.path.join(os.path.dirname(global_land_mask.__file__),
                        "globe_combined_mask_compressed.npz")
    with np.load(path) as f:
        mask, lat = f["mask"], f["lat"]
    rows = int(np.searchsorted(-lat, -min_lat))  # lat runs from 90 down
    rows -= rows % factor
    # the package's mask is True on the ocean (``is_land`` negates it)
    m = 1.0 - mask[:rows].reshape(rows // factor, factor, -1, factor).mean(axis=(1, 3))
    step = 180.0 / mask.shape[0] * factor
    la = 90.0 - step * (np.arange(m.shape[0]) + 0.5)
    lo = -180.0 + step * (np.arange(m.shape[1]) + 0.5)
    return xr.DataArray(m.astype(np.float32), dims=("y", "x"), coords={"y": la, "x": lo},
                        name="land", attrs={"units": "1", "long_name": "land share"})
