"""Datasets made a part at a time (a year, a chunk of cells), so that memory holds one
part, not the domain: each part is written to a zarr store as soon as it is made, and
the whole is read back lazily.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xarray as xr


def concat_parts(parts: Iterable[xr.Dataset], dim: str, store=None) -> xr.Dataset:
    """Concatenate ``parts`` along ``dim`` through a zarr store.

    Parameters
    ----------
    parts : iterable of xarray.Dataset
        The parts, in order, each with dimension ``dim`` and the same variables (a
        generator makes them one at a time). Float variables are stored as float32,
        as in the cube.
    dim : str
        The dimension they are joined on (``year``, ``cells``).
    store : path, optional
        Where the parts are written (a scratch directory, see :meth:`Cube.scratch`);
        by default in memory.

    Returns
    -------
    xarray.Dataset
        Dask-backed, one chunk per part, read from ``store``.
    """
    import zarr

    target = zarr.storage.MemoryStore() if store is None else str(store)
    written = False
    for part in parts:
        part = part.assign({k: v.astype(np.float32) for k, v in part.data_vars.items()
                            if v.dtype == np.float64})
        for v in part.variables.values():
            v.encoding = {}
        if not written:
            part.to_zarr(target, mode="w", consolidated=False, zarr_format=3,
                         encoding={k: {"chunks": v.shape} for k, v in part.data_vars.items()})
            written = True
        else:
            part.to_zarr(target, mode="a", append_dim=dim, consolidated=False, zarr_format=3)
    if not written:
        raise ValueError(f"no parts to join along {dim!r}.")
    ds = xr.open_zarr(target, consolidated=False, zarr_format=3)
    return ds.assign_coords({k: c.compute() for k, c in ds.coords.items() if k not in ds.dims})
