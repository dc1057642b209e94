"""ArcticDEM: terrain per cell from the Polar Geospatial Center's mosaic tiles.

The mosaic (2, 10 or 32 m, EPSG:3413) comes as GeoTIFF/COG tiles on one common grid.
``open`` joins tiles into one lazy (dask) raster, never loading a whole mosaic;
``terrain`` derives slope, aspect (as northness and eastness), TPI, TRI, roughness and
curvature chunk by chunk with a halo of neighbouring pixels, so tile and chunk edges
are seamless; ``to_cells`` reduces each to per-cell mean, std, p10, p50 and p90.
"""

from __future__ import annotations

import re
from pathlib import Path

import numba as nb
import numpy as np
import xarray as xr

from ..grids import DEFAULT_MIN_LAT, Grid

STATS = ("mean", "std", "p10", "p50", "p90")
QUANTITIES = {
    "elevation": ("m", "elevation"),
    "slope": ("degree", "slope"),
    "northness": ("1", "northness: cosine of the aspect (1 = facing north)"),
    "eastness": ("1", "eastness: sine of the aspect (1 = facing east)"),
    "tpi": ("m", "topographic position index: elevation above the neighbourhood mean"),
    "tri": ("m", "terrain ruggedness index: root mean square difference to the 8 neighbours"),
    "roughness": ("m", "roughness: range of elevation among the 3 x 3 neighbours"),
    "curvature": ("m-1", "curvature: negative Laplacian of the elevation"),
}
TPI_RADIUS = 5
"""Half-width (pixels) of the square neighbourhood of the TPI."""


def open(paths, *, chunks=2048, bbox=None):  # noqa: A001 - the source's verb
    """Join ArcticDEM tiles into one lazy raster (dask), in EPSG:3413.

    Parameters
    ----------
    paths : str, Path or list of them
        GeoTIFF/COG tiles (local paths, or URLs whose part inside ``bbox`` is fetched
        by range requests into a local cache), or a static STAC catalogue, collection
        or item collection (``.json``, local or a URL, such as the PGC's) whose items
        carry the tiles as their ``dem`` asset.
    chunks : int
        Dask chunk size in pixels.
    bbox : (west, south, east, north), optional
        Lon/lat extent of interest: STAC items outside it are not read, and of a remote
        tile only the part inside it is fetched.

    Returns
    -------
    xarray.DataArray
        ``elevation`` (y, x) in metres, float32, nodata as NaN, with its CRS.
    """
    from . import remote

    if isinstance(paths, (str, Path)):
        paths = [paths]
    hrefs = []
    for p in paths:
        hrefs.extend(remote.stac_assets(p, ("dem",), bbox) if str(p).endswith(".json")
                     else [str(p)])
    if not hrefs:
        raise ValueError(f"no ArcticDEM tiles given{' in the domain' if bbox else ''}.")
    tiles = []
    crs = None
    for href in hrefs:
        da = remote.open_raster(href, "ArcticDEM tile", bbox=bbox, chunks=chunks)
        if da is None:
            continue
        if crs is None:
            crs = da.rio.crs
        elif da.rio.crs != crs:
            raise ValueError(f"ArcticDEM tile {href} is in {da.rio.crs}, not {crs} like the "
                             "first tile.")
        tiles.append(da.squeeze("band", drop=True).astype(np.float32))
        _check_aligned(tiles[0], tiles[-1], hrefs[0], href)
    if not tiles:
        raise ValueError(f"no ArcticDEM tile of {hrefs[0]} (+{len(hrefs) - 1}) touches the "
                         f"domain {bbox}.")
    dem = tiles[0] if len(tiles) == 1 else xr.combine_by_coords(
        [t.to_dataset(name="elevation") for t in tiles], combine_attrs="override")["elevation"]
    dem = dem.sortby("y", ascending=False).sortby("x")
    dem = dem.chunk({"y": chunks, "x": chunks}).rio.write_crs(crs)
    dem.name = "elevation"
    dem.attrs.update(units="m", long_name="elevation", source_files=(
        hrefs[0] if len(hrefs) == 1 else f"{hrefs[0]} (+{len(hrefs) - 1} tiles)"))
    return dem


def _check_aligned(first, tile, first_href, href):
    """Tiles joined into one raster must share one pixel grid: same pixel size, and
    origins a whole number of pixels apart (a tile half a pixel off would be snapped by
    the join and its cells' statistics shifted, with no word)."""
    (rx, ry), (tx, ty) = first.rio.resolution(), tile.rio.resolution()
    if not (np.isclose(abs(rx), abs(tx), rtol=1e-6) and np.isclose(abs(ry), abs(ty), rtol=1e-6)):
        raise ValueError(f"ArcticDEM tile {href} has {abs(tx):g} x {abs(ty):g} pixels, tile "
                         f"{first_href} {abs(rx):g} x {abs(ry):g}: expected tiles of one "
                         "mosaic and resolution (resample it: gdalwarp -tr -tap).")
    (fx, fy), (x0, y0) = first.rio.transform() * (0, 0), tile.rio.transform() * (0, 0)
    off = np.array([(x0 - fx) / rx, (y0 - fy) / ry])
    shift = np.abs(off - np.round(off))
    if (shift > 1e-3).any():
        raise ValueError(f"ArcticDEM tile {href} is off the pixel grid of tile {first_href} "
                         f"by {shift[0]:.2f} x {shift[1]:.2f} pixels: expected tiles of one "
                         "mosaic, sharing one grid (resample it onto the others' grid: "
                         "gdalwarp -tap -tr).")


ELEVATION_RANGE = (-500.0, 9000.0)
"""Elevations (m) outside which the DEM is wrong: undeclared nodata, other units."""


def _check_plausible(ds, dem):
    """Elevation statistics that are themselves elevations (mean, min, max, median,
    quantiles) must lie in ``ELEVATION_RANGE``; spreads, counts and sums are not checked."""
    lo, hi = ELEVATION_RANGE
    names = [v for v in ds.data_vars if v.startswith("dem_elevation_") and re.fullmatch(
        r"mean|min|max|median|p\d+(\.\d+)?", v.removeprefix("dem_elevation_"))]
    if not names:
        return
    values = np.concatenate([ds[v].values.ravel() for v in names])
    values = values[np.isfinite(values)]
    if len(values) and (values.min() < lo or values.max() > hi):
        raise ValueError(
            f"ArcticDEM {dem.attrs.get('source_files', '')}: cell elevations range "
            f"{values.min():.4g} to {values.max():.4g} m, outside {lo:g} to {hi:g} m; likely "
            "cause: a nodata value the file does not declare (such as -9999), or heights in "
            "another unit than metres.")


def _terrain_block(z, res, scale, north, halo=0):
    """The terrain quantities of one block, as a (8, ny, nx) float32 array, NaN where
    the elevation is not finite; the block's outer ``halo`` pixels only feed their
    neighbours' quantities and are not returned.

    ``res`` is the (x, y) pixel size in the projection's units; ``scale`` the lattice
    (``_lattice``) of its scale factor, which divides them into ground distances;
    ``north`` the lattice of true north's grid angle (degrees, counter-clockwise from
    grid up), or in a north polar stereographic grid the block's (x, y) pixel-centre
    coordinates, true north pointing at their origin.
    """
    ny, nx = z.shape
    out = np.empty((8, max(ny - 2 * halo, 0), max(nx - 2 * halo, 0)), dtype=np.float32)
    polar = len(north) == 2
    lattice = north if not polar else scale  # unused when polar
    xy = north if polar else (np.zeros(nx), np.zeros(ny))
    if out.size:
        _terrain_kernel(np.ascontiguousarray(z), float(res[0]), float(res[1]), *scale,
                        polar, *xy, *lattice, TPI_RADIUS, halo, out)
    return out


@nb.njit(cache=True, nogil=True, inline="always")
def _lerp(vals, jr, fr, jc, fc, i, j):
    """Bilinear between the lattice values around pixel (i, j) (``_lattice``)."""
    r0, c0 = jr[i], jc[j]
    r1, c1 = min(r0 + 1, vals.shape[0] - 1), min(c0 + 1, vals.shape[1] - 1)
    a, b = fr[i], fc[j]
    return ((1 - a) * (1 - b) * vals[r0, c0] + (1 - a) * b * vals[r0, c1]
            + a * (1 - b) * vals[r1, c0] + a * b * vals[r1, c1])


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _terrain_kernel(z, res_x, res_y, kv, kjr, kfr, kjc, kfc, polar, xs, ys, nv, njr, nfr,
                    njc, nfc, r, halo, out):
    """Every terrain quantity in one pass over the block (edges repeated beyond it),
    in float64, into ``out`` for the pixels ``halo`` or more from the block's edge:
    NaN where the elevation is not finite, and where a neighbour's is (TPI skips it).
    Ground distances from the scale factor's lattice (``kv``...); true north from the
    pixel's position (``polar``: ``xs``, ``ys``) or its lattice (``nv``..., degrees).

    Slope from central differences; the aspect's cosine and sine relative to true
    north (0 on flat ground); TRI and roughness over the 8 neighbours; the negative
    Laplacian; TPI against the mean of the (2r+1)^2 neighbourhood, from summed-area
    tables."""
    ny, nx = z.shape
    w = 2 * r + 1
    # summed-area tables of the valid elevations and of their count, edges repeated
    sat = np.zeros((ny + 2 * r + 1, nx + 2 * r + 1))
    cnt = np.zeros((ny + 2 * r + 1, nx + 2 * r + 1))
    for i in range(ny + 2 * r):
        ii = min(max(i - r, 0), ny - 1)
        for j in range(nx + 2 * r):
            v = np.float64(z[ii, min(max(j - r, 0), nx - 1)])
            ok = np.isfinite(v)
            sat[i + 1, j + 1] = sat[i, j + 1] + (v if ok else 0.0)
            cnt[i + 1, j + 1] = cnt[i, j + 1] + (1.0 if ok else 0.0)
    for i in range(1, ny + 2 * r + 1):
        for j in range(1, nx + 2 * r + 1):
            sat[i, j] += sat[i, j - 1]
            cnt[i, j] += cnt[i, j - 1]
    for i in range(halo, ny - halo):
        iu, idn = max(i - 1, 0), min(i + 1, ny - 1)
        oi = i - halo
        for j in range(halo, nx - halo):
            jl, jr = max(j - 1, 0), min(j + 1, nx - 1)
            oj = j - halo
            c = np.float64(z[i, j])
            if not np.isfinite(c):
                for q in range(8):
                    out[q, oi, oj] = np.nan
                continue
            k = _lerp(kv, kjr, kfr, kjc, kfc, i, j)
            dx, dy = res_x / k, res_y / k  # ground distances between pixel centres
            if polar:  # true north points to the pole, the projection's origin
                north = -np.arctan2(-xs[j], -ys[i])
            else:
                north = np.radians(_lerp(nv, njr, nfr, njc, nfc, i, j))
            up, down = np.float64(z[iu, j]), np.float64(z[idn, j])
            left, right = np.float64(z[i, jl]), np.float64(z[i, jr])
            dzdx = (right - left) / (2 * dx)  # towards grid east
            dzdy = (up - down) / (2 * dy)  # towards grid north
            slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
            # the slope faces downhill: -grad z, as an angle from true north, clockwise
            facing = np.arctan2(-dzdx, -dzdy) + north
            flat = dzdx == 0 and dzdy == 0
            sq = 0.0
            hi = c
            lo = c
            for da in range(-1, 2):  # the 8 neighbours, as a row-major 3 x 3 window
                for db in range(-1, 2):
                    if da == 0 and db == 0:
                        continue
                    n = np.float64(z[min(max(i + da, 0), ny - 1), min(max(j + db, 0), nx - 1)])
                    sq += (n - c) ** 2
                    if n != n or hi != hi:
                        hi = np.nan
                        lo = np.nan
                    else:
                        hi = max(hi, n)
                        lo = min(lo, n)
            box = (sat[i + w, j + w] - sat[i, j + w] - sat[i + w, j] + sat[i, j])
            n_box = (cnt[i + w, j + w] - cnt[i, j + w] - cnt[i + w, j] + cnt[i, j])
            out[0, oi, oj] = c
            out[1, oi, oj] = slope
            out[2, oi, oj] = 0.0 if flat else np.cos(facing)
            out[3, oi, oj] = 0.0 if flat else np.sin(facing)
            out[4, oi, oj] = c - box / n_box
            out[5, oi, oj] = np.sqrt(sq / 8)
            out[6, oi, oj] = hi - lo
            out[7, oi, oj] = -((right - 2 * c + left) / dx ** 2 + (up - 2 * c + down) / dy ** 2)


LATTICE = 64
"""Pixels between the points where scale factors are evaluated (then interpolated)."""


def _lattice(fn, rows, cols, x, y, to_lonlat):
    """``fn(lon, lat)`` on a lattice anchored to the raster (every ``LATTICE`` pixels)
    around the given pixels, and each pixel's place in it: ``(values, row node, row
    fraction, column node, column fraction)``, for bilinear values between the nodes
    (``_lerp``); anchored so, every chunking of the raster gives the same values."""
    def nodes(idx, n):
        lo = (idx.min() // LATTICE) * LATTICE
        hi = min(((idx.max() // LATTICE) + 1) * LATTICE, n - 1)
        return np.unique(np.clip(np.arange(lo, hi + LATTICE, LATTICE), 0, n - 1))

    lr, lc = nodes(rows, len(y)), nodes(cols, len(x))
    gx, gy = np.meshgrid(x[lc], y[lr])
    lon, lat = to_lonlat.transform(gx.ravel(), gy.ravel())
    vals = np.asarray(fn(lon, lat), dtype=np.float64).reshape(len(lr), len(lc))
    vals = np.where(np.isfinite(vals), vals, 1.0)

    def weights(idx, lattice):
        j = np.clip(np.searchsorted(lattice, idx, side="right") - 1, 0, max(len(lattice) - 2, 0))
        span = np.maximum(lattice[np.minimum(j + 1, len(lattice) - 1)] - lattice[j], 1)
        return j, np.clip((idx - lattice[j]) / span, 0.0, 1.0)

    return (vals, *weights(rows, lr), *weights(cols, lc))


def terrain(dem: xr.DataArray) -> xr.Dataset:
    """Terrain quantities on the DEM's own grid, lazily, seamless across chunks.

    Distances are corrected by the projection's scale factor (EPSG:3413 is conformal,
    so its metres are true metres up to that factor), evaluated every 64 pixels and
    interpolated; aspect is measured from true north, which in a north polar
    stereographic grid points to the pole (elsewhere: the meridian convergence).
    """
    import dask.array as dsa
    from pyproj import CRS, Proj

    from ..grids import geometry

    crs = CRS.from_user_input(dem.rio.crs)
    x, y = dem.x.values, dem.y.values
    res_x = float(abs(x[1] - x[0])) if len(x) > 1 else 1.0
    res_y = float(abs(y[1] - y[0])) if len(y) > 1 else 1.0
    to_lonlat = geometry.transformer(crs.to_wkt(), "EPSG:4326")
    proj = Proj(crs)
    op = crs.coordinate_operation
    polar = op is not None and "Polar Stereographic" in op.method_name and any(
        "latitude" in p.name.lower() and p.value > 0 for p in op.params)
    depth = TPI_RADIUS + 1
    data = dem.data if isinstance(dem.data, dsa.Array) else dsa.from_array(dem.data)
    # no chunk thinner than the halo (as dask's overlap would make it), so that the
    # blocks the kernel gets are the chunks below
    data = data.rechunk(tuple(dsa.overlap.ensure_minimum_chunksize(depth, c)
                              for c in data.chunks))

    row_starts = np.concatenate([[0], np.cumsum(data.chunks[0])])
    col_starts = np.concatenate([[0], np.cumsum(data.chunks[1])])

    def block(z, block_info=None):
        i, j = block_info[0]["chunk-location"]
        # the block's rows and columns in the DEM, halo included (edges repeated)
        rows = np.clip(np.arange(row_starts[i] - depth, row_starts[i + 1] + depth), 0,
                       len(y) - 1)
        cols = np.clip(np.arange(col_starts[j] - depth, col_starts[j + 1] + depth), 0,
                       len(x) - 1)
        scale = _lattice(lambda lon, lat: proj.get_factors(lon, lat, errcheck=False)
                         .meridional_scale, rows, cols, x, y, to_lonlat)
        north = (x[cols], y[rows]) if polar else _lattice(
            lambda lon, lat: proj.get_factors(lon, lat, errcheck=False).meridian_convergence,
            rows, cols, x, y, to_lonlat)
        return _terrain_block(z, (res_x, res_y), scale, north, halo=depth)

    # each block with a halo of its neighbours' pixels, the halo dropped by the kernel
    ov = dsa.overlap.overlap(data, depth={0: depth, 1: depth}, boundary="nearest")
    out = ov.map_blocks(block, new_axis=0, chunks=((8,),) + data.chunks, dtype=np.float32)
    ds = xr.Dataset(coords={"y": dem.y, "x": dem.x})
    for i, name in enumerate(QUANTITIES):  # each a view of the kernel's blocks
        units, long_name = QUANTITIES[name]
        ds[name] = (("y", "x"), out[i], {"units": units, "long_name": long_name})
    return ds.rio.write_crs(crs)


def to_cells(dem: xr.DataArray, grid: Grid, *, stats=STATS,
             min_lat: float = DEFAULT_MIN_LAT) -> xr.Dataset:
    """Per-cell statistics of every terrain quantity: ``dem_<quantity>_<stat>``.

    Returns
    -------
    xarray.Dataset
        On the whole domain (NaN where the DEM does not reach).
    """
    return to_levels(dem, [grid], stats=stats, min_lat=min_lat)[grid.name, grid.level]


def to_levels(dem: xr.DataArray, grids, *, stats=STATS,
              min_lat: float = DEFAULT_MIN_LAT, finest=(), progress=None) -> dict:
    """:func:`to_cells` on several grids and levels, the terrain computed once and each
    grid system's pixel index built once (:func:`entropice.aggregate.raster_to_levels`,
    whose ``finest`` and ``progress`` this passes on).

    Returns
    -------
    dict
        ``{(grid name, level): xarray.Dataset}``.
    """
    from ..aggregate.raster import raster_to_levels

    ter = terrain(dem)
    ter.attrs["source_files"] = dem.attrs.get("source_files", "")
    per_level = raster_to_levels(ter, grids, stats=stats, min_lat=min_lat, domain=True,
                                 dtype=np.float32, finest=finest, progress=progress)
    out = {}
    for key, per_cell in per_level.items():
        data_vars = {}
        for name, var in ter.data_vars.items():
            for s in stats:
                attrs = {"units": var.attrs["units"], "source": "arcticdem",
                         "long_name": f"{s} of the {var.attrs['long_name']} over the cell"}
                data_vars[f"dem_{name}_{s}"] = ("cells", per_cell[f"{name}_{s}"].values, attrs)
        out[key] = xr.Dataset(data_vars, coords={"cell_ids": per_cell.cell_ids})
        _check_plausible(out[key], dem)
    return out
