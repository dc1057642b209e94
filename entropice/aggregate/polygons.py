"""Polygons to cells: exact overlap areas in the polar equal-area projection."""

from __future__ import annotations

import logging

import numpy as np
import shapely
import xarray as xr

from ..grids import DEFAULT_MIN_LAT, Grid, geometry

log = logging.getLogger("entropice")

MAX_PIECE_VERTICES = 256
"""Polygons with more vertices are cut into pieces before they meet the cells."""


def _label(i, index):
    return f"row {index[i]!r}" if index is not None else f"row {i}"


def nonfinite_rows(geoms) -> np.ndarray:
    """Positions of the geometries with a NaN or infinite coordinate: bad input, on which
    GEOS fails with messages that name no row ("Edge direction cannot be determined
    because endpoints are equal")."""
    coords, at = shapely.get_coordinates(np.asarray(geoms, dtype=object), return_index=True)
    return np.unique(at[~np.isfinite(coords).all(axis=1)])


def check_rows(geoms, where):
    """Stop on a geometry with NaN or infinite coordinates (bad input: nothing to repair),
    naming ``where`` (its file) and its row, counting from 1; say in the log which rows
    are invalid and why (they are repaired: ``shapely.make_valid``)."""
    geoms = np.asarray(geoms, dtype=object)
    bad = nonfinite_rows(geoms)
    if len(bad):
        raise ValueError(f"{where}: row {bad[0] + 1} has NaN or infinite coordinates "
                         f"({len(bad)} such rows); expected polygons with finite coordinates: "
                         "fix or remove them.")
    invalid = np.flatnonzero(~(shapely.is_valid(geoms) | shapely.is_missing(geoms)))
    if len(invalid):
        log.warning("%s: %d invalid polygons repaired with shapely.make_valid; first: row "
                    "%d, %s", where, len(invalid), invalid[0] + 1,
                    shapely.is_valid_reason(geoms[invalid[0]]))


def _checked_geometries(gdf, repair):
    """Polygonal geometries of the frame in EPSG:6931, repaired or rejected."""
    if gdf.crs is None:
        raise ValueError("the polygons have no CRS: set one with gdf.set_crs(...).")
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    index = list(gdf.index)
    missing = np.flatnonzero(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if len(missing):
        raise ValueError(f"polygon {_label(missing[0], index)} has no geometry "
                         f"({len(missing)} such rows).")
    nonfinite = nonfinite_rows(geoms)
    if len(nonfinite):
        raise ValueError(f"polygon {_label(nonfinite[0], index)} has NaN or infinite "
                         f"coordinates ({len(nonfinite)} such rows).")
    kinds = shapely.get_type_id(geoms)
    bad = np.flatnonzero(~np.isin(kinds, [3, 6]))  # Polygon, MultiPolygon
    if len(bad):
        raise ValueError(f"{_label(bad[0], index)} is a {geoms[bad[0]].geom_type}, not a "
                         "polygon; polygons_to_cells takes (Multi)Polygons only.")
    geoms = geoms.copy()
    if gdf.crs.is_geographic:
        beyond = np.flatnonzero(np.abs(shapely.bounds(geoms)[:, [1, 3]]).max(axis=1) > 90.0)
        if len(beyond):
            raise ValueError(f"polygon {_label(beyond[0], index)} reaches latitudes beyond "
                             "+-90 degrees.")
        wide = np.flatnonzero(shapely.bounds(geoms)[:, 2] - shapely.bounds(geoms)[:, 0] > 180)
        geoms[wide] = [_across_antimeridian(geoms[i]) for i in wide]
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        if not repair:
            i = np.flatnonzero(invalid)[0]
            raise ValueError(f"polygon {_label(i, index)} is invalid "
                             f"({shapely.is_valid_reason(geoms[i])}); pass repair=True "
                             "to repair it.")
        geoms = repaired(geoms)
        gone = np.flatnonzero(shapely.is_empty(geoms) | (shapely.area(geoms) <= 0))
        if len(gone):
            raise ValueError(f"polygon {_label(gone[0], index)} is invalid and has no area "
                             "left once repaired.")
    # densify in the source CRS, so that edges keep their shape once projected
    step = 0.05 if gdf.crs.is_geographic else 2000.0
    geoms = shapely.segmentize(geoms, step)
    t = geometry.transformer(gdf.crs.to_wkt(), geometry.EQUAL_AREA_CRS)
    projected = shapely.transform(geoms, lambda xy: np.column_stack(
        t.transform(xy[:, 0], xy[:, 1], errcheck=False)))
    # a polar cap drawn in lon/lat folds onto itself at the pole: mend such folds
    return repaired(projected)


def _unwrap_ring(coords):
    """Longitudes of a lon/lat ring made continuous: an edge spanning more than 180 deg
    crosses the antimeridian; one from -180 to 180 (or back) runs along a parallel all
    the way round, as in a polar cap drawn in lon/lat."""
    lon, lat = coords[:, 0].copy(), coords[:, 1]
    d = np.diff(lon)
    full = np.isclose(np.abs(d), 360.0) & np.isclose(np.abs(lon[:-1]), 180.0)
    step = np.where(full | (np.abs(d) <= 180.0), d, (d + 180.0) % 360.0 - 180.0)
    lon[1:] = lon[0] + np.cumsum(step)
    return np.column_stack([lon, lat])


def _across_antimeridian(geom):
    """A lon/lat polygon whose edges jump across +-180 deg, with continuous longitudes."""
    polys = geom.geoms if geom.geom_type == "MultiPolygon" else [geom]
    out = [shapely.Polygon(_unwrap_ring(np.asarray(p.exterior.coords)),
                           [_unwrap_ring(np.asarray(h.coords)) for h in p.interiors])
           for p in polys]
    return out[0] if len(out) == 1 else shapely.MultiPolygon(out)


def _polygonal(geom):
    """The polygonal part of a geometry (make_valid may add lines or points)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon",
                                                                      "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def repaired(geoms) -> np.ndarray:
    """Polygons made valid (``shapely.make_valid``, keeping the polygonal part; a polygon
    with no area left becomes empty); valid ones are returned as they are."""
    geoms = np.array(geoms, dtype=object)
    bad = ~shapely.is_valid(geoms)
    geoms[bad] = [_polygonal(shapely.make_valid(g)) for g in geoms[bad]]
    return geoms


def _subdivide(geom, max_vertices=MAX_PIECE_VERTICES):
    """Cut a polygon in halves, recursively, until every piece is small."""
    if shapely.get_num_coordinates(geom) <= max_vertices:
        return [geom]
    x0, y0, x1, y1 = geom.bounds
    if x1 - x0 >= y1 - y0:
        xm = (x0 + x1) / 2
        halves = (shapely.box(x0 - 1, y0 - 1, xm, y1 + 1), shapely.box(xm, y0 - 1, x1 + 1, y1 + 1))
    else:
        ym = (y0 + y1) / 2
        halves = (shapely.box(x0 - 1, y0 - 1, x1 + 1, ym), shapely.box(x0 - 1, ym, x1 + 1, y1 + 1))
    out = []
    for h in halves:
        part = _polygonal(shapely.intersection(geom, h))
        if not part.is_empty:
            out.extend(_subdivide(part, max_vertices))
    return out


def _candidate_cells(pieces, grid, cell_ids, cell_m):
    """Domain cells that may intersect the pieces: the cells of points on their
    boundaries and inside them, and the cells next to those."""
    boundary = shapely.get_coordinates(shapely.segmentize(shapely.boundary(pieces), cell_m / 4))
    pts = [boundary]
    for piece in pieces:
        x0, y0, x1, y1 = piece.bounds
        if max(x1 - x0, y1 - y0) < cell_m / 3:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1, cell_m / 3), np.arange(y0, y1, cell_m / 3))
        inside = shapely.contains_xy(piece, gx.ravel(), gy.ravel())
        pts.append(np.column_stack([gx.ravel()[inside], gy.ravel()[inside]]))
    pts = np.concatenate(pts)
    t = geometry.transformer(geometry.EQUAL_AREA_CRS, "EPSG:4326")
    lon, lat = t.transform(pts[:, 0], pts[:, 1], errcheck=False)
    ok = np.isfinite(lat)
    ids = np.unique(grid.latlon_to_cells(lat[ok], geometry.wrap_lon(lon[ok])))
    ids = grid.neighbours(ids) if len(ids) else ids
    return ids[np.isin(ids, cell_ids)]


def polygons_to_cells(gdf, grid: Grid, min_lat: float = DEFAULT_MIN_LAT, *,
                      attributes=(), repair: bool = True) -> xr.Dataset:
    """Overlap of polygons with cells: area, count and attribute sums per cell.

    Intersections are computed exactly in the polar Lambert azimuthal equal-area
    projection (EPSG:6931, WGS84), where polygons across the antimeridian or around
    the pole need no special care; polygons crossing cell edges are split among the
    cells they cover.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        (Multi)Polygons in any CRS.
    grid : Grid
    min_lat : float, default 50.0
        The domain's southern boundary; parts of polygons outside it are ignored.
    attributes : sequence of str
        Numeric columns to sum per cell, each polygon's value split in proportion to
        the share of its area in the cell (``sum_<name>``).
    repair : bool, default True
        Repair invalid geometries (``shapely.make_valid``) instead of rejecting them.

    Returns
    -------
    xarray.Dataset
        Indexed by ``cell_ids`` (cells with overlap or a centroid):
        ``overlap_area_km2``, ``count`` (polygons whose centroid lies in the cell) and
        ``sum_<name>`` for each attribute.
    """
    if min_lat < 0:
        raise ValueError("polygons_to_cells works in the northern polar projection: "
                         f"min_lat must be >= 0; got {min_lat}.")
    for name in attributes:
        if name not in gdf.columns:
            raise ValueError(f"attribute {name!r} is not a column of the polygons; columns: "
                             f"{', '.join(map(str, gdf.columns))}.")
    cells_ds = grid.cells(min_lat)
    cell_ids = cells_ds.cell_ids.values
    n_cells = len(cell_ids)
    overlap = np.zeros(n_cells)
    count = np.zeros(n_cells, dtype=np.int64)
    sums = {name: np.zeros(n_cells) for name in attributes}
    if len(gdf):
        geoms = _checked_geometries(gdf, repair)
        poly_area = shapely.area(geoms)
        pieces, owner = [], []
        for i, g in enumerate(geoms):
            for piece in _subdivide(g):
                pieces.append(piece)
                owner.append(i)
        pieces = np.asarray(pieces, dtype=object)
        owner = np.asarray(owner, dtype=np.int64)
        cell_m = 1000.0 * np.sqrt(np.median(cells_ds.area_km2.values)) if n_cells else 1.0
        cand = _candidate_cells(pieces, grid, cell_ids, cell_m) if len(pieces) else cell_ids[:0]
        if len(cand):
            cell_polys = geometry.equal_area_polygons(grid.vertices(cand))
            tree = shapely.STRtree(cell_polys)
            pi, ci = tree.query(pieces, predicate="intersects")
            area = shapely.area(shapely.intersection(pieces[pi], cell_polys[ci]))
            pos = np.searchsorted(cell_ids, cand[ci])
            overlap += np.bincount(pos, weights=area, minlength=n_cells) / 1e6
            share = area / poly_area[owner[pi]]
            for name in attributes:
                values = np.asarray(gdf[name].values, dtype=np.float64)[owner[pi]]
                sums[name] += np.bincount(pos, weights=values * share, minlength=n_cells)
        # centroids
        cx, cy = shapely.get_coordinates(shapely.centroid(geoms)).T
        lon, lat = geometry.transformer(geometry.EQUAL_AREA_CRS, "EPSG:4326").transform(cx, cy)
        ids = grid.latlon_to_cells(lat, geometry.wrap_lon(lon))
        pos = np.searchsorted(cell_ids, ids).clip(0, max(n_cells - 1, 0))
        inside = (cell_ids[pos] == ids) & (lat >= min_lat) if n_cells else np.zeros(0, bool)
        count += np.bincount(pos[inside], minlength=n_cells)
    keep = np.flatnonzero((overlap > 0) | (count > 0))
    data_vars = {
        "overlap_area_km2": ("cells", overlap[keep], {
            "units": "km2", "long_name": "area of the polygons inside the cell",
            "cell_methods": "area: sum"}),
        "count": ("cells", count[keep], {
            "units": "1", "long_name": "polygons whose centroid lies in the cell",
            "cell_methods": "area: sum"}),
    }
    for name in attributes:
        data_vars[f"sum_{name}"] = ("cells", sums[name][keep], {
            "long_name": f"sum of {name}, split by area share", "cell_methods": "area: sum"})
    return xr.Dataset(data_vars, coords={"cell_ids": grid.cell_ids_coord(cell_ids[keep])})
