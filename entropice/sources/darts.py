"""DARTS: mapped Retrogressive Thaw Slump footprints (Nitze et al.), as cell labels.

DARTS is published as GeoPackage/GeoParquet (also read: Shapefile) with one polygon
per RTS footprint and the year of observation (level 2: annual footprints; level 1:
per image, with an acquisition date). ``open`` reads and checks such a file;
``to_cells`` gives per cell and year the RTS count, area, density (RTS area over land
area) and density class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import shapely
import xarray as xr

from ..grids import DEFAULT_MIN_LAT, Grid

YEAR_COLUMNS = ("year", "Year", "YEAR", "obs_year")
DATE_COLUMNS = ("date", "Date", "datetime", "acquisition_date", "image_date", "acq_date")
DEFAULT_BIN_EDGES = (1e-4, 1e-3)
"""Density edges between the classes low | medium | high (class none: no RTS)."""
CLASS_NAMES = ("none", "low", "medium", "high")


def open(path, *, layer=None, year_column=None):  # noqa: A001 - the source's verb
    """Read an RTS polygon inventory and check it.

    Parameters
    ----------
    path : str or Path
        GeoPackage (``.gpkg``), GeoParquet (``.parquet``) or Shapefile (``.shp``).
    layer : str, optional
        Layer of a multi-layer GeoPackage.
    year_column : str, optional
        Column with the year of observation; by default the first of ``year``,
        ``Year``, ... or the year of a date column (``date``, ``acquisition_date``, ...).

    Returns
    -------
    geopandas.GeoDataFrame
        Valid (repaired) polygons without exact duplicates, with an integer ``year``
        column, in the file's CRS.

    Raises
    ------
    ValueError
        Naming the file: missing or unreadable, empty, without a CRS, without a year
        column, or with geometries that are not polygons.
    """
    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise ValueError(f"DARTS file {path} does not exist.")
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            gdf = gpd.read_parquet(path)
        else:
            gdf = gpd.read_file(path, layer=layer)
    except Exception as err:  # noqa: BLE001 - the readers raise many types
        raise ValueError(f"cannot read DARTS file {path}: {err}") from None
    if len(gdf) == 0:
        raise ValueError(f"DARTS file {path} holds no polygons.")
    if gdf.crs is None:
        raise ValueError(f"DARTS file {path} has no CRS.")
    gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)].copy()
    kinds = set(gdf.geom_type.unique())
    if not kinds <= {"Polygon", "MultiPolygon"}:
        other = ", ".join(sorted(kinds - {"Polygon", "MultiPolygon"}))
        raise ValueError(f"DARTS file {path} holds {other} geometries; RTS footprints must "
                         "be polygons.")
    gdf["year"] = _years(gdf, path, year_column)
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        from ..aggregate.polygons import _polygonal

        gdf.loc[invalid, "geometry"] = [_polygonal(shapely.make_valid(g))
                                        for g in gdf.geometry[invalid]]
        gdf = gdf[gdf.geometry.area > 0]
    wkb = gdf.geometry.to_wkb()
    gdf = gdf[~pd.DataFrame({"g": wkb, "y": gdf["year"]}).duplicated().values]
    return gdf.reset_index(drop=True)


def _years(gdf, path, year_column):
    if year_column is not None:
        if year_column not in gdf.columns:
            raise ValueError(f"DARTS file {path} has no column {year_column!r}; columns: "
                             f"{', '.join(map(str, gdf.columns))}.")
        col = year_column
    else:
        col = next((c for c in YEAR_COLUMNS if c in gdf.columns), None)
    if col is not None:
        values = pd.to_numeric(gdf[col], errors="coerce")
    else:
        date = next((c for c in DATE_COLUMNS if c in gdf.columns), None)
        if date is None:
            raise ValueError(
                f"DARTS file {path} has no year of observation: expected a column "
                f"{' or '.join(YEAR_COLUMNS + DATE_COLUMNS)} (or pass year_column=...)."
            )
        values = pd.to_datetime(gdf[date], errors="coerce").dt.year
    if values.isna().any():
        bad = int(values.isna().sum())
        raise ValueError(f"DARTS file {path}: {bad} footprints have no readable year.")
    return values.astype(int).values


def density_classes(density, bin_edges=DEFAULT_BIN_EDGES):
    """Class of each density: 0 none (no RTS), then 1, 2, ... between the edges; NaN kept."""
    edges = np.asarray(bin_edges, dtype=np.float64)
    if edges.ndim != 1 or np.any(np.diff(edges) <= 0) or (len(edges) and edges[0] <= 0):
        raise ValueError(f"bin_edges must be positive and increasing; got {list(bin_edges)}.")
    d = np.asarray(density, dtype=np.float64)
    cls = np.where(d > 0, 1 + np.searchsorted(edges, d, side="left"), 0).astype(np.float32)
    return np.where(np.isnan(d), np.nan, cls)


def to_cells(gdf, grid: Grid, *, land_fraction=None, coverage=None,
             bin_edges=DEFAULT_BIN_EDGES, min_lat: float = DEFAULT_MIN_LAT) -> xr.Dataset:
    """RTS labels per cell and year on the whole domain.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        From :func:`open`.
    grid : Grid
    land_fraction : array-like, optional
        Land share of each domain cell (the density's denominator); all land if None.
    coverage : geopandas.GeoDataFrame, optional
        Mapping footprints (with a ``year`` column, or one footprint for all years).
        Cells less than half covered in a year are missing (NaN) that year, not zero.
    bin_edges : sequence of float
        Density edges between the classes above "none" (default: low | medium | high
        at 1e-4 and 1e-3 of the land area).

    Returns
    -------
    xarray.Dataset
        Dimensions (year, cells): ``rts_count``, ``rts_area_km2``, ``rts_density``,
        ``rts_class``.
    """
    from ..aggregate import polygons_to_cells

    cells = grid.cells(min_lat)
    ids = cells.cell_ids.values
    n = len(ids)
    years = np.unique(gdf["year"].values)
    land = np.ones(n) if land_fraction is None else np.asarray(land_fraction, dtype=np.float64)
    land_km2 = land * cells.area_km2.values
    count = np.zeros((len(years), n))
    area = np.zeros((len(years), n))
    covered = np.ones((len(years), n), dtype=bool)
    for k, year in enumerate(years):
        part = polygons_to_cells(gdf[gdf["year"] == year], grid, min_lat)
        pos = np.searchsorted(ids, part.cell_ids.values)
        count[k, pos] = part["count"].values
        area[k, pos] = part.overlap_area_km2.values
        if coverage is not None:
            foot = coverage[coverage["year"] == year] if "year" in coverage.columns else coverage
            cov = polygons_to_cells(foot, grid, min_lat) if len(foot) else None
            share = np.zeros(n)
            if cov is not None:
                share[np.searchsorted(ids, cov.cell_ids.values)] = cov.overlap_area_km2.values
            covered[k] = share >= 0.5 * cells.area_km2.values
    with np.errstate(invalid="ignore", divide="ignore"):
        density = np.where(land_km2 > 0, area / land_km2, np.where(area > 0, np.inf, 0.0))
    density = np.minimum(density, 1.0)
    for arr in (count, area, density):
        arr[~covered] = np.nan
    edges = [float(e) for e in bin_edges]
    classes = density_classes(density, edges)
    coords = {"cell_ids": cells.cell_ids, "year": ("year", years.astype(np.int64))}
    dims = ("year", "cells")
    return xr.Dataset(
        {
            "rts_count": (dims, count, {
                "units": "1", "long_name": "RTS footprints with their centroid in the cell",
                "source": "darts", "cell_methods": "area: sum"}),
            "rts_area_km2": (dims, area, {
                "units": "km2", "long_name": "area of RTS footprints in the cell",
                "source": "darts", "cell_methods": "area: sum"}),
            "rts_density": (dims, density, {
                "units": "1", "long_name": "RTS area over land area", "source": "darts"}),
            "rts_class": (dims, classes, {
                "units": "1", "long_name": "RTS density class", "source": "darts",
                "flag_values": list(range(len(edges) + 2)),
                "flag_meanings": " ".join(_class_names(len(edges))),
                "bin_edges": edges}),
        },
        coords=coords,
    )


def _class_names(n_edges):
    if n_edges == 2:
        return list(CLASS_NAMES)
    return ["none"] + [f"class_{i}" for i in range(1, n_edges + 2)]
