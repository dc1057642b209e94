"""Datasets made a part at a time (a year, a chunk of cells), so that memory holds one
part, not the domain: each part is written to a zarr store as soon as it is made, and
the whole is read back lazily.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xarray as xr


class Parts:
    """A dataset joined along ``dim`` from parts added one at a time, each written to a
    zarr store as it comes (so that several can be filled side by side: a year of
    every level at once).

    Parameters
    ----------
    dim : str
        The dimension the parts are joined on (``year``, ``cells``).
    store : path, optional
        Where the parts are written (a scratch directory, see :meth:`Cube.scratch`);
        by default in memory.
    """

    def __init__(self, dim: str, store=None):
        import zarr

        self.dim = dim
        self.target = zarr.storage.MemoryStore() if store is None else str(store)
        self.written = False

    def add(self, part: xr.Dataset):
        """Write one part (float variables as float32, as in the cube)."""
        part = part.assign({k: v.astype(np.float32) for k, v in part.data_vars.items()
                            if v.dtype == np.float64})
        for v in part.variables.values():
            v.encoding = {}
        if not self.written:
            part.to_zarr(self.target, mode="w", consolidated=False, zarr_format=3,
                         encoding={k: {"chunks": v.shape, "compressors": None}
                                   for k, v in part.data_vars.items()})
            self.written = True
        else:
            part.to_zarr(self.target, mode="a", append_dim=self.dim, consolidated=False,
                         zarr_format=3)

    def read(self, names, i) -> np.ndarray:
        """Variables ``names`` of part ``i`` (position along ``dim``), stacked: read
        straight from the store, without building a dataset."""
        import zarr

        group = zarr.open_group(self.target, mode="r", zarr_format=3)
        return np.stack([group[name][i] for name in names])

    def open(self) -> xr.Dataset:
        """The parts written so far, dask-backed, one chunk per part."""
        if not self.written:
            raise ValueError(f"no parts to join along {self.dim!r}.")
        ds = xr.open_zarr(self.target, consolidated=False, zarr_format=3)
        return ds.assign_coords({k: c.compute() for k, c in ds.coords.items()
                                 if k not in ds.dims})


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
    joined = Parts(dim, store)
    for part in parts:
        joined.add(part)
    return joined.open()
