"""AlphaEarth Foundations satellite embeddings: 64 numbers per 10 m pixel and year.

The embeddings come as annual 64-band rasters (bands A00-A63), exported from Earth
Engine as GeoTIFF/COG (one file per year and tile, the year in the file name) or as a
Zarr store with dimensions (year, band, y, x). ``to_cells`` gives per cell and year
the mean of each band, and optionally their principal components, fitted once over
the domain and all years; ``to_levels`` does so for several levels, each year's
raster reduced once per grid system.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from ..grids import DEFAULT_MIN_LAT, Grid
from . import remote

YEAR_RE = re.compile(r"(?<!\d)(19|20)\d{2}(?!\d)")


def _band_names(da, path):
    names = da.attrs.get("long_name")
    if isinstance(names, (list, tuple)) and len(names) == da.sizes["band"] and all(
            isinstance(n, str) and re.fullmatch(r"A\d\d", n) for n in names):
        return list(names)
    return [f"A{i:02d}" for i in range(da.sizes["band"])]


def open(paths, *, years=None, keep_years=None, chunks=2048,  # noqa: A001 - the source's verb
         bbox=None):
    """Read AlphaEarth embeddings as one lazy DataArray per year.

    Parameters
    ----------
    paths : str, Path or list of them
        GeoTIFF/COG files (one year each; the year is read from the file name unless
        ``years`` gives it), or one Zarr store with dims (year, band, y, x); local or
        URLs (their part inside ``bbox`` fetched by range requests into a local cache).
    years : list of int, optional
        The year of each file, in order.
    keep_years : list of int, optional
        Only these years are opened (and, of remote files, fetched).
    chunks : int
        Dask chunk size in pixels.
    bbox : (west, south, east, north), optional
        Lon/lat extent of interest: of a remote file only the part inside it is fetched,
        and a remote file outside it is skipped.

    Returns
    -------
    dict of int -> xarray.DataArray
        (band, y, x) rasters with bands named ``A00``...; several tiles of one year
        are joined.
    """
    import rioxarray  # noqa: F401 - the .rio accessor

    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [str(p) if remote.is_remote(p) else Path(p) for p in paths]
    if not paths:
        raise ValueError("no AlphaEarth files given.")
    first = str(paths[0]).rstrip("/")
    if len(paths) == 1 and (first.endswith(".zarr") or (
            not remote.is_remote(first) and (Path(first) / "zarr.json").exists())):
        try:
            ds = xr.open_zarr(remote.zarr_store(first), consolidated=None,
                              decode_coords="all")
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"cannot read AlphaEarth store {paths[0]}: {err}") from None
        var = next((v for v in ds.data_vars if {"year", "band"} <= set(ds[v].dims)), None)
        if var is None:
            raise ValueError(f"AlphaEarth store {paths[0]} has no variable with year and band "
                             "dimensions.")
        da = ds[var]
        if da.rio.crs is None:
            raise ValueError(f"AlphaEarth store {paths[0]} has no CRS (a grid_mapping).")
        return {int(y): da.sel(year=y, drop=True) for y in da.year.values
                if keep_years is None or int(y) in set(keep_years)}
    if years is not None and len(years) != len(paths):
        raise ValueError(f"years gives {len(years)} years for {len(paths)} files.")
    per_year = {}
    for k, path in enumerate(paths):
        if years is not None:
            year = int(years[k])
        else:
            m = YEAR_RE.search(Path(str(path).split("?")[0]).stem)
            if m is None:
                raise ValueError(f"cannot tell the year of AlphaEarth file {path}: put it in "
                                 "the file name (..._2021.tif) or pass years=[...].")
            year = int(m.group(0))
        if keep_years is not None and year not in set(keep_years):
            continue
        da = remote.open_raster(path, "AlphaEarth file", bbox=bbox, chunks=chunks)
        if da is None:
            continue
        da = da.assign_coords(band=_band_names(da, path))
        per_year.setdefault(year, []).append(da)
    if not per_year:
        among = "" if keep_years is None else f" of the years {[int(y) for y in keep_years]}"
        raise ValueError(f"no AlphaEarth file{among} of {paths[0]} (+{len(paths) - 1}) "
                         f"touches the domain {bbox}.")
    out = {}
    for year, tiles in per_year.items():
        if len(tiles) == 1:
            out[year] = tiles[0]
        else:
            crs = tiles[0].rio.crs
            joined = xr.combine_by_coords([t.to_dataset(name="emb") for t in tiles],
                                          combine_attrs="override")["emb"]
            out[year] = joined.rio.write_crs(crs)
    return dict(sorted(out.items()))


PCA_ROWS = 1_000_000
"""At most this many (cell, year) rows of a level, drawn evenly over the years, fit its
PCA."""

PASS_BYTES = 2**30
"""Band means held while one pass reduces a year's raster onto a grid system's levels:
8 bytes per band and cell (the fold's and the dataset's float32), 4 more for every band
when they do not all fit and are taken in more passes (each indexing the raster again)."""


def bands_per_pass(n_bands: int, n_cells: int) -> int:
    """How many of ``n_bands`` one pass takes onto ``n_cells`` cells (a grid system's
    levels together) within ``PASS_BYTES``: all of them where they fit."""
    if 8 * n_bands * n_cells <= PASS_BYTES:
        return n_bands
    return int(max(1, (PASS_BYTES - 4 * n_bands * n_cells) // (8 * n_cells)))


def to_cells(rasters, grid: Grid, *, n_components=None, min_lat: float = DEFAULT_MIN_LAT,
             store=None) -> xr.Dataset:
    """Per cell and year: the mean of each band (``emb_a00_mean``...), and with
    ``n_components`` the principal components of those means (``emb_pc01``...).

    Parameters
    ----------
    rasters : dict of int -> xarray.DataArray
        From :func:`open`.
    n_components : int, optional
        Principal components to add, fitted once on the cells of all years (at most
        ``PCA_ROWS`` rows of them).
    store : path, optional
        Where each year's cells are written as soon as they are made (a scratch
        directory), so that memory holds one year; by default in memory.

    Returns
    -------
    xarray.Dataset
        Dimensions (year, cells) on the whole domain (NaN where no embedding); lazy.
    """
    key = grid.name, grid.level
    return to_levels(rasters, [grid], n_components=n_components, min_lat=min_lat,
                     stores=None if store is None else {key: store})[key]


def to_levels(rasters, grids, *, n_components=None, min_lat: float = DEFAULT_MIN_LAT,
              stores=None, finest=(), progress=None) -> dict:
    """:func:`to_cells` on several grids and levels: each year's raster is reduced once
    per grid system, every level of a system from the pixel index of its finest
    (:func:`entropice.aggregate.raster_to_levels`, whose ``finest`` this passes on).

    Parameters
    ----------
    grids : sequence of Grid
        The grids and levels; the others are :func:`to_cells`'s, with ``stores`` a
        directory per ``(grid name, level)``.
    progress : callable, optional
        Called with each year once it is on every level (for progress bars).

    Returns
    -------
    dict
        ``{(grid name, level): xarray.Dataset}``, each as :func:`to_cells` gives it.
    """
    from ..aggregate import raster_to_levels
    from ..parts import Parts

    grids = list(dict.fromkeys(grids))
    years = sorted(rasters)
    if not years:
        raise ValueError("no AlphaEarth years to put on cells.")
    bands = rasters[years[0]].band.values.tolist()  # str, not np.str_, in messages
    names = [f"emb_{b.lower()}_mean" for b in bands]
    cells = {(g.name, g.level): g.cells(min_lat) for g in grids}
    parts = {k: Parts("year", None if stores is None else stores[k]) for k in cells}
    systems = {}
    for g in grids:
        systems.setdefault(g.name, []).append(g)
    passes = {}  # per grid system: the level it is derived from, and bands per pass
    for name, system in systems.items():
        base = [f for f in finest if f.name == name]
        n_cells = sum(len(cells[g.name, g.level].cell_ids) for g in system) + sum(
            len(f.cells(min_lat).cell_ids) for f in base if f not in system)
        passes[name] = base, bands_per_pass(len(bands), n_cells)

    for y in years:
        da = rasters[y]
        if da.band.values.tolist() != bands:
            raise ValueError(f"AlphaEarth year {y} has bands {da.band.values[:3].tolist()}...; "
                             f"year {years[0]} has {bands[:3]}...")
        for name, system in systems.items():
            base, step = passes[name]
            means = {}  # (band, cells) float32 per level: one pass's, or filled by several
            for a in range(0, len(bands), step):
                per_level = raster_to_levels(da.isel(band=slice(a, a + step)), system,
                                             stats=("mean",), min_lat=min_lat, domain=True,
                                             dtype=np.float32, finest=base)
                for k, ds in per_level.items():
                    m = ds["mean"].transpose("band", "cells").values
                    if step == len(bands):
                        means[k] = m
                    else:
                        means.setdefault(k, np.empty((len(bands), m.shape[1]),
                                                     np.float32))[a:a + step] = m
                del per_level
            for k, m in means.items():
                parts[k].add(xr.Dataset(
                    {n: (("year", "cells"), m[b][None], {
                        "units": "1", "long_name": f"mean of AlphaEarth embedding band "
                        f"{band}", "source": "alphaearth"})
                     for b, (n, band) in enumerate(zip(names, bands))},
                    coords={"cell_ids": cells[k].cell_ids, "year": [y]}))
            del means
        if progress is not None:
            progress(y)

    out = {k: p.open() for k, p in parts.items()}
    if not n_components:
        return out
    for k, ds in out.items():
        pcs = _components(ds, parts[k], names, n_components,
                          None if stores is None else f"{stores[k]}/components")
        out[k] = xr.merge([ds, pcs], compat="no_conflicts", join="outer",
                          combine_attrs="drop_conflicts")
    return out


def _pca_rows(parts, names, n_years, n):
    """The rows (cells with every band, float64) that fit the PCA: at most ``PCA_ROWS``,
    drawn evenly over the years, read back a year at a time from ``parts``."""
    quota = PCA_ROWS // n_years
    sampled = n * n_years > PCA_ROWS
    rng = np.random.default_rng(0)
    rows = np.empty(((quota if sampled else n) * n_years, len(names)))
    filled = 0
    for k in range(n_years):
        means = parts.read(names, k)
        ok = np.flatnonzero(np.isfinite(means).all(axis=0))
        if sampled and len(ok) > quota:
            ok = ok[np.sort(rng.choice(len(ok), quota, replace=False))]
        rows[filled:filled + len(ok)] = means[:, ok].T
        filled += len(ok)
        del means
    return rows[:filled]


def _components(ds, parts, names, n_components, store):
    """The principal components of the band means ``ds`` (written as ``parts``), fitted
    on rows of every year (:func:`_pca_rows`) and given a year at a time."""
    from sklearn.decomposition import PCA

    from ..parts import concat_parts

    n = ds.sizes["cells"]
    rows = _pca_rows(parts, names, ds.sizes["year"], n)
    if len(rows) < n_components:
        raise ValueError(f"{len(rows)} cells have embeddings: too few for "
                         f"{n_components} principal components.")
    pca = PCA(n_components).fit(rows)
    del rows

    def components(k):
        means = parts.read(names, k)  # (band, cells), float32
        comps = np.empty((n, n_components), dtype=np.float32)
        for a in range(0, n, 2**18):  # NaN where a band is missing
            block = means[:, a:a + 2**18].T.astype(np.float64)
            comps[a:a + 2**18] = (block - pca.mean_) @ pca.components_.T
        return xr.Dataset({f"emb_pc{c + 1:02d}": (("year", "cells"), comps[None, :, c], {
            "units": "1", "long_name": f"principal component {c + 1} of the AlphaEarth band "
            f"means ({pca.explained_variance_ratio_[c]:.1%} of the variance)",
            "source": "alphaearth"}) for c in range(n_components)},
            coords={"cell_ids": ds.cell_ids, "year": ds.year.values[k:k + 1]})

    return concat_parts((components(k) for k in range(ds.sizes["year"])), "year", store)
