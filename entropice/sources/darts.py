"""DARTS: mapped Retrogressive Thaw Slump footprints (Nitze et al.), as cell labels.

DARTS is published as GeoPackage/GeoParquet (also read: Shapefile) with one polygon
per RTS footprint and the year of observation (level 2: annual footprints; level 1:
per image, with an acquisition date). ``open`` reads and checks such a file;
``to_cells`` gives per cell and year the RTS count, area, density (RTS area over land
area) and density class.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
import xarray as xr

from ..grids import DEFAULT_MIN_LAT, Grid
from ..parts import concat_parts

log = logging.getLogger("entropice")

YEAR_COLUMNS = ("year", "Year", "YEAR", "obs_year")
DATE_COLUMNS = ("date", "Date", "datetime", "acquisition_date", "image_date", "acq_date",
                "BaseMapDate")
DEFAULT_BIN_EDGES = (1e-4, 1e-3)
"""Density edges between the classes low | medium | high (class none: no RTS)."""
CLASS_NAMES = ("none", "low", "medium", "high")


def open(path, *, layer=None, year_column=None, date_column=None, year=None,  # noqa: A001
         crs=None):
    """Read an RTS polygon inventory as published and check it.

    Parameters
    ----------
    path : str or Path
        GeoPackage (``.gpkg``), GeoParquet (``.parquet``) or Shapefile (``.shp``, or a
        ``.zip`` of one); a local path or a URL (fetched once into the local cache).
    layer : str, optional
        Layer of a multi-layer GeoPackage.
    year_column : str, optional
        Column with the year of observation.
    date_column : str, optional
        Column with the date of observation (a date, or several separated by commas:
        a footprint seen in several years counts in each).
    year : int, optional
        One year for the whole file. With none of the three, the first of the columns
        ``year``, ``Year``, ... or of the date columns ``date``, ``image_date``,
        ``BaseMapDate``, ... is used.
    crs : str, optional
        The CRS of a file that has none (a shapefile without ``.prj``).

    Returns
    -------
    geopandas.GeoDataFrame
        Valid (repaired) polygons without exact duplicates, with an integer ``year``
        column and a boolean ``rts`` column (False for digitisations of mapped land
        without RTS, such as ARTS's ``TrainClass`` 'Negative'), in the file's CRS.

    Raises
    ------
    ValueError
        Naming the file: missing or unreadable, empty, without a CRS, without a year,
        with geometries that are not polygons, or with NaN coordinates (naming the row).
    """
    import geopandas as gpd

    from ..aggregate.polygons import check_rows
    from . import remote

    if remote.is_remote(path):  # fetched once into the local cache (a zip for shapefiles)
        name, path = str(path), remote.cached_copy(path)
    else:
        name = path = Path(path)
        if not path.exists():
            raise ValueError(f"RTS inventory {path} does not exist.")
    try:  # shapely's warnings on NaN coordinates: check_rows names the row below
        with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
            if path.suffix.lower() in (".parquet", ".geoparquet"):
                gdf = gpd.read_parquet(path)
            else:
                gdf = gpd.read_file(path, layer=layer)
    except Exception as err:  # noqa: BLE001 - the readers raise many types
        raise ValueError(f"cannot read RTS inventory {name}: {err}; expected a GeoPackage, "
                         "GeoParquet or Shapefile (the file may be truncated: download it "
                         "again).") from None
    if len(gdf) == 0:
        raise ValueError(f"RTS inventory {name} holds no polygons.")
    if gdf.crs is None:
        if crs is None:
            raise ValueError(f"RTS inventory {name} has no CRS (a shapefile without .prj?): "
                             "give it with crs = \"EPSG:...\" in [labels] or in its "
                             "[[labels.inventories]] entry.")
        gdf = gdf.set_crs(crs)
    elif crs is not None and not gdf.crs.equals(crs):
        raise ValueError(f"RTS inventory {name} says its CRS is {gdf.crs.to_string()}, the "
                         f"configuration says {crs}: remove one.")
    if gdf.geometry.name != "geometry":
        gdf = gdf.rename_geometry("geometry")
    check_rows(gdf.geometry.values, f"RTS inventory {name}")
    gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)].copy()
    if len(gdf) == 0:
        raise ValueError(f"RTS inventory {name} holds no polygons (every geometry is empty).")
    kinds = set(gdf.geom_type.unique())
    if not kinds <= {"Polygon", "MultiPolygon"}:
        other = ", ".join(sorted(kinds - {"Polygon", "MultiPolygon"}))
        raise ValueError(f"RTS inventory {name} holds {other} geometries; RTS footprints "
                         "must be polygons.")
    gdf["rts"] = _rts(gdf, name)
    years = _years(gdf, name, year_column, date_column, year)
    gdf = gdf.iloc[np.repeat(np.arange(len(gdf)), [len(y) for y in years])].copy()
    gdf["year"] = np.concatenate(years).astype(int)
    if not gdf.geometry.is_valid.all():
        from ..aggregate.polygons import repaired

        gdf["geometry"] = repaired(gdf.geometry.values)
        gdf = gdf[shapely.area(gdf.geometry.values) > 0]
    wkb = gdf.geometry.to_wkb()
    dup = pd.DataFrame({"g": wkb, "y": gdf["year"], "r": gdf["rts"]}).duplicated().values
    if dup.any():
        log.info("%s: %d exact duplicates dropped", name, int(dup.sum()))
    return gdf[~dup].reset_index(drop=True)


def _date_years(value):
    """The year(s) of a date cell: a date, several separated by commas or semicolons, a
    year (2019) or a compact date (20190701); None if unreadable."""
    import re

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    parts = [p.strip() for p in re.split(r"[,;]", str(value)) if p.strip()]
    years = []
    for part in parts:
        if re.fullmatch(r"\d{4}(\.0)?", part):
            years.append(int(float(part)))
        elif re.fullmatch(r"\d{8}", part):
            years.append(int(part[:4]))
        else:
            d = pd.to_datetime(part, errors="coerce")
            if pd.isna(d):
                return None
            years.append(d.year)
    return np.unique(years) if years and all(1000 <= y <= 3000 for y in years) else None


def _rts(gdf, path):
    """Which rows are RTS: all, or ARTS's ``TrainClass`` 'Positive' (Yang et al. 2025)."""
    if "TrainClass" not in gdf.columns:
        return np.ones(len(gdf), dtype=bool)
    kind = gdf["TrainClass"].astype(str).str.strip().str.lower()
    bad = sorted(set(kind) - {"positive", "negative"})
    if bad:
        raise ValueError(f"RTS inventory {path}: TrainClass must be 'Positive' or 'Negative'; "
                         f"found {bad[:3]}.")
    if "LabelType" in gdf.columns:
        boxes = int((gdf["LabelType"].astype(str).str.lower() == "boundingbox")[
            kind == "positive"].sum())
        if boxes:
            log.warning("%s: %d RTS are bounding boxes, not outlines: their area is an upper "
                        "bound", path, boxes)
    return (kind == "positive").values


def _years(gdf, path, year_column, date_column, year) -> list[np.ndarray]:
    """The year(s) of observation of each row."""
    given = [k for k, v in (("year_column", year_column), ("date_column", date_column),
                            ("year", year)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"RTS inventory {path}: give one of year_column, date_column and "
                         f"year, not {' and '.join(given)}.")
    if year is not None:
        return [np.array([int(year)])] * len(gdf)
    for col in (year_column, date_column):
        if col is not None and col not in gdf.columns:
            raise ValueError(f"RTS inventory {path} has no column {col!r}; columns: "
                             f"{', '.join(map(str, gdf.columns))}.")
    if year_column is None and date_column is None:
        year_column = next((c for c in YEAR_COLUMNS if c in gdf.columns), None)
        date_column = next((c for c in DATE_COLUMNS if c in gdf.columns), None)
        if year_column is None and date_column is None:
            raise ValueError(
                f"RTS inventory {path} has no year of observation: expected a column "
                f"{' or '.join(YEAR_COLUMNS + DATE_COLUMNS)}; or set year_column, "
                "date_column or year in its [labels] entry.")
    if year_column is not None:
        values = pd.to_numeric(gdf[year_column], errors="coerce").astype("float64")
        out = [np.array([int(v)]) if 1000 <= v <= 3000 else None for v in values]
        col = year_column
    else:
        col = date_column
        out = [_date_years(v) for v in gdf[date_column]]
    bad = [i for i, y in enumerate(out) if y is None]
    if bad:
        raise ValueError(f"RTS inventory {path}: {len(bad)} footprints have no readable year "
                         f"in column {col!r} (first: {gdf[col].tolist()[bad[0]]!r}).")
    return out


MIN_OVERLAP = 0.05
"""Share of the smaller footprint two footprints of a year must share to be one slump."""


def dissolve(gdf, min_overlap=MIN_OVERLAP):
    """One footprint per slump and year: the union of the footprints that overlap in a year.

    Per-image inventories map a slump once per image, so its footprints overlap; summed,
    they count its area several times. Footprints of one year (and one ``rts`` value)
    that share at least ``min_overlap`` of the smaller one's area become one, with the
    other columns of the first; neighbours whose outlines cross by a sliver stay two
    (touching is never enough).

    Returns
    -------
    (geopandas.GeoDataFrame, int)
        The footprints, and how many were merged into others.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    parts, merged = [], 0
    keys = ["year", "rts"] if "rts" in gdf.columns else ["year"]
    for _, sub in gdf.groupby(keys, sort=True):
        geoms = np.asarray(sub.geometry.values, dtype=object)
        i, j = shapely.STRtree(geoms).query(geoms, predicate="intersects")
        i, j = i[i < j], j[i < j]
        inter = shapely.area(shapely.intersection(geoms[i], geoms[j]))
        smaller = np.minimum(shapely.area(geoms[i]), shapely.area(geoms[j]))
        shared = (inter > 0) & (inter >= min_overlap * smaller)
        n = len(geoms)
        k, comp = connected_components(coo_matrix(
            (np.ones(shared.sum()), (i[shared], j[shared])), shape=(n, n)), directed=False)
        if k == n:
            parts.append(sub)
            continue
        order = np.argsort(comp, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(comp[order]) != 0])
        groups = np.split(order, starts[1:])
        out = sub.iloc[[g[0] for g in groups]].copy()
        out[sub.geometry.name] = [geoms[g[0]] if len(g) == 1 else shapely.union_all(geoms[g])
                           for g in groups]
        parts.append(out)
        merged += n - k
    out = pd.concat(parts) if parts else gdf
    return out.set_geometry(gdf.geometry.name).reset_index(drop=True), merged


def prepare(gdf, coverage=None):
    """The distinct RTS footprints and the mapped land of each year, as :func:`to_cells`
    takes them with ``prepared=True`` (done once, then reused for every grid).

    Overlapping footprints of a year are dissolved (:func:`dissolve`; the log says how
    many merged). The mapped land is ``coverage`` (a ``year`` column, or one footprint
    for all years) and, where an inventory digitised land without RTS (ARTS's negatives),
    every row of it; None when neither is given (the inventory maps the whole domain).

    Returns
    -------
    (geopandas.GeoDataFrame, geopandas.GeoDataFrame or None)
        RTS footprints (``year``, ``geometry``, ...) and mapped land (``year``,
        ``geometry``), both in ``gdf``'s CRS, geometries valid.
    """
    import geopandas as gpd

    from ..aggregate.polygons import repaired

    has_negatives = "rts" in gdf.columns and not gdf["rts"].all()
    years = sorted(set(gdf["year"]))
    mapped = [gdf[["year", "geometry"]]] if has_negatives else []
    if coverage is not None:
        coverage = coverage.to_crs(gdf.crs)
        geoms = coverage.geometry.values
        bad = ~shapely.is_valid(geoms)
        if bad.any():
            log.info("RTS coverage: %d invalid footprints repaired", int(bad.sum()))
            geoms = repaired(geoms)
        coverage = gpd.GeoDataFrame(coverage.drop(columns=coverage.geometry.name),
                                    geometry=list(geoms), crs=gdf.crs)
        if "year" not in coverage.columns:  # one footprint for every year
            coverage = pd.concat([coverage[["geometry"]].assign(year=y) for y in years])
        mapped.append(coverage[["year", "geometry"]])
    rts = gdf[gdf["rts"]] if "rts" in gdf.columns else gdf
    rts, merged = dissolve(rts)
    if merged:
        log.info("RTS labels: %d footprints overlapped others of the same year and were "
                 "merged with them; %d distinct footprints", merged, len(rts))
    if not mapped:
        return rts, None
    land = gpd.GeoDataFrame(pd.concat(mapped, ignore_index=True), geometry="geometry",
                            crs=gdf.crs)
    return rts, dissolve(land, min_overlap=0.0)[0]


def density_classes(density, bin_edges=DEFAULT_BIN_EDGES):
    """Class of each density: 0 none (no RTS), then 1, 2, ... between the edges; NaN kept."""
    edges = np.asarray(bin_edges, dtype=np.float64)
    if edges.ndim != 1 or np.any(np.diff(edges) <= 0) or (len(edges) and edges[0] <= 0):
        raise ValueError(f"bin_edges must be positive and increasing; got {list(bin_edges)}.")
    d = np.asarray(density, dtype=np.float64)
    cls = np.where(d > 0, 1 + np.searchsorted(edges, d, side="left"), 0).astype(np.float32)
    return np.where(np.isnan(d), np.nan, cls)


def to_cells(gdf, grid: Grid, *, land_fraction=None, coverage=None,
             bin_edges=DEFAULT_BIN_EDGES, min_lat: float = DEFAULT_MIN_LAT,
             prepared=False, store=None) -> xr.Dataset:
    """RTS labels per cell and year on the whole domain.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        From :func:`open`. Footprints of a year that overlap are one slump (see
        :func:`dissolve`): per-image inventories are not counted twice.
    grid : Grid
    land_fraction : array-like, optional
        Land share of each domain cell (the density's denominator); all land if None.
    coverage : geopandas.GeoDataFrame, optional
        Mapping footprints (with a ``year`` column, or one footprint for all years).
        Rows of ``gdf`` whose ``rts`` is False (land digitised without RTS) are mapped
        land too. A cell whose land is less than half mapped in a year is missing (NaN)
        that year, whether or not RTS were found in it (so partly mapped cells bias
        neither way; a mapped cell's density, RTS area over land, is a lower bound where
        part of its land is unmapped). A year mapped without any RTS is a year of zeros.
    bin_edges : sequence of float
        Density edges between the classes above "none" (default: low | medium | high
        at 1e-4 and 1e-3 of the land area).
    prepared : bool
        ``gdf`` and ``coverage`` come from :func:`prepare` (the pipeline prepares them
        once for all grids).
    store : path, optional
        Where each year is written as soon as it is made (a scratch directory, see
        :meth:`Cube.scratch`), so that memory holds a year, not every year; by default
        in memory.

    Returns
    -------
    xarray.Dataset
        Dimensions (year, cells), float32, dask-backed a year per chunk:
        ``rts_count``, ``rts_area_km2``, ``rts_density``, ``rts_class``.
    """
    from ..aggregate import polygons_to_cells

    # mapped years, with RTS or without (a year of coverage only is a year of zeros)
    years = np.unique(np.concatenate([gdf["year"].values] + (
        [coverage["year"].values] if coverage is not None and "year" in coverage.columns
        else [])).astype(np.int64))
    if not len(years):
        raise ValueError("RTS labels: the inventory and its coverage hold no mapped year.")
    if not prepared:
        gdf, coverage = prepare(gdf, coverage)
    cells = grid.cells(min_lat)
    ids = cells.cell_ids.values
    n = len(ids)
    land = np.ones(n) if land_fraction is None else np.asarray(land_fraction, dtype=np.float64)
    land_km2 = land * cells.area_km2.values
    edges = [float(e) for e in bin_edges]
    density_classes(np.zeros(1), edges)  # bad edges fail before any work
    over = 0
    attrs = {
        "rts_count": {"units": "1", "long_name": "distinct RTS (overlapping footprints of a "
                      "year merged) with their centroid in the cell",
                      "source": "darts", "cell_methods": "area: sum"},
        "rts_area_km2": {"units": "km2", "long_name": "area of RTS in the cell (union of "
                         "footprints)", "source": "darts", "cell_methods": "area: sum"},
        "rts_density": {"units": "1", "long_name": "RTS area over land area",
                        "source": "darts"},
        "rts_class": {"units": "1", "long_name": "RTS density class", "source": "darts",
                      "flag_values": list(range(len(edges) + 2)),
                      "flag_meanings": " ".join(_class_names(len(edges))),
                      "bin_edges": edges},
    }

    def year_part(year):
        """One year's labels, float32 (as the cube stores them)."""
        nonlocal over
        part = grid.on_domain(polygons_to_cells(gdf[gdf["year"] == year], grid, min_lat),
                              ids, fill=0.0)
        c, a = part["count"].values.astype(np.float64), part.overlap_area_km2.values
        covered = np.ones(n, dtype=bool)
        if coverage is not None:
            foot = coverage[coverage["year"] == year]
            share = grid.on_domain(polygons_to_cells(foot, grid, min_lat).overlap_area_km2,
                                   ids, fill=0.0).values if len(foot) else np.zeros(n)
            # the mapped land: coverage over sea maps no land; a cell without land is
            # mapped when half of it is
            mapped_land = np.minimum(share, land_km2)
            covered = np.where(land_km2 > 0, mapped_land >= 0.5 * land_km2,
                               share >= 0.5 * cells.area_km2.values)
        if np.any(a > cells.area_km2.values * 1.01):  # 1 %: the two ways to measure area
            raise ValueError("RTS area exceeds a cell's whole area: the footprints overlap "
                             "themselves (invalid polygons) or their CRS is wrong.")
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(land_km2 > 0, a / land_km2, np.where(a > 0, np.inf, 0.0))
        over += int(np.sum(covered & (d > 1.0)))
        d = np.where(covered, np.minimum(d, 1.0), np.nan)
        values = {"rts_count": np.where(covered, c, np.nan),
                  "rts_area_km2": np.where(covered, a, np.nan),
                  "rts_density": d, "rts_class": density_classes(d, edges)}
        return xr.Dataset(
            {k: (("year", "cells"), v[None].astype(np.float32), attrs[k])
             for k, v in values.items()},
            coords={"cell_ids": cells.cell_ids, "year": ("year", [np.int64(year)])})

    out = concat_parts((year_part(y) for y in years), "year", store)
    if over:  # more RTS than land: the land mask misses coastal land
        log.warning("RTS labels: %d cell-years hold more RTS area than land (the land mask "
                    "misses land there); their density is set to 1", over)
    return out


def _class_names(n_edges):
    if n_edges == 2:
        return list(CLASS_NAMES)
    return ["none"] + [f"class_{i}" for i in range(1, n_edges + 2)]
