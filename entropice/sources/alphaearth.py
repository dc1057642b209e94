"""AlphaEarth Foundations satellite embeddings: 64 numbers per 10 m pixel and year.

The embeddings come as annual 64-band rasters (bands A00-A63), exported from Earth
Engine as GeoTIFF/COG (one file per year and tile, the year in the file name) or as a
Zarr store with dimensions (year, band, y, x). ``to_cells`` gives per cell and year
the mean of each band, and optionally their principal components, fitted once over
the domain and all years.
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
        among = "" if keep_years is None else f" of the years {list(keep_years)}"
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
"""At most this many (cell, year) rows, drawn evenly over the years, fit the PCA."""


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
    from ..aggregate import raster_to_cells
    from ..parts import concat_parts

    cells = grid.cells(min_lat)
    ids = cells.cell_ids.values
    years = sorted(rasters)
    if not years:
        raise ValueError("no AlphaEarth years to put on cells.")
    bands = list(rasters[years[0]].band.values)
    names = [f"emb_{b.lower()}_mean" for b in bands]
    rng = np.random.default_rng(0)
    sample = []  # rows of band means that fit the PCA

    def year(y):
        da = rasters[y]
        if list(da.band.values) != bands:
            raise ValueError(f"AlphaEarth year {y} has bands {list(da.band.values)[:3]}...; "
                             f"year {years[0]} has {bands[:3]}...")
        means = raster_to_cells(da, grid, stats=("mean",), min_lat=min_lat, domain=True,
                                dtype=np.float32)["mean"].transpose("band", "cells").values
        if n_components:
            ok = np.flatnonzero(np.isfinite(means).all(axis=0))
            quota = PCA_ROWS // len(years)
            if len(ids) * len(years) > PCA_ROWS and len(ok) > quota:
                ok = ok[np.sort(rng.choice(len(ok), quota, replace=False))]
            sample.append(means[:, ok].T.astype(np.float64))
        return xr.Dataset({name: (("year", "cells"), means[b][None], {
            "units": "1", "long_name": f"mean of AlphaEarth embedding band {band}",
            "source": "alphaearth"}) for b, (name, band) in enumerate(zip(names, bands))},
            coords={"cell_ids": cells.cell_ids, "year": [y]})

    ds = concat_parts((year(y) for y in years), "year", store)
    if not n_components:
        return ds
    from sklearn.decomposition import PCA

    rows = np.concatenate(sample)
    if len(rows) < n_components:
        raise ValueError(f"{len(rows)} cells have embeddings: too few for "
                         f"{n_components} principal components.")
    pca = PCA(n_components).fit(rows)
    del rows, sample[:]

    def components(k):
        means = np.stack([ds[n][k].values for n in names])  # (band, cells), float32
        comps = np.empty((len(ids), n_components), dtype=np.float32)
        for a in range(0, len(ids), 2**18):  # NaN where a band is missing
            block = means[:, a:a + 2**18].T.astype(np.float64)
            comps[a:a + 2**18] = (block - pca.mean_) @ pca.components_.T
        return xr.Dataset({f"emb_pc{c + 1:02d}": (("year", "cells"), comps[None, :, c], {
            "units": "1", "long_name": f"principal component {c + 1} of the AlphaEarth band "
            f"means ({pca.explained_variance_ratio_[c]:.1%} of the variance)",
            "source": "alphaearth"}) for c in range(n_components)},
            coords={"cell_ids": cells.cell_ids, "year": [years[k]]})

    pcs = concat_parts((components(k) for k in range(len(years))), "year",
                       None if store is None else f"{store}/components")
    return xr.merge([ds, pcs], compat="no_conflicts", join="outer", combine_attrs="drop_conflicts")
