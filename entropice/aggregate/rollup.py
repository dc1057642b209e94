"""Roll a fine level up to a coarser one: area-weighted means and sums."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..grids import get_grid


def _method(var):
    """"sum" for extensive variables (CF ``cell_methods = "area: sum"``), else "mean"."""
    return "sum" if "area: sum" in str(var.attrs.get("cell_methods", "")) else "mean"


def rollup(ds: xr.Dataset, level: int, how: dict | None = None) -> xr.Dataset:
    """Aggregate a cube group (or any dataset on a grid) to the coarser ``level``.

    Each coarse cell gets the area-weighted mean (intensive variables) or the sum
    (extensive ones: ``cell_methods = "area: sum"``, or as given in ``how``) of the
    fine cells whose parent it is. For HEALPix the four children of a cell tile it
    exactly, so sums are exact. For H3 a cell's seven children cover it only
    approximately: the result is that of the fine cells whose H3 parent is the coarse
    cell, an approximation good to the few per cent of area the children and the
    parent do not share.

    Parameters
    ----------
    ds : xarray.Dataset
        Dimension ``cells``, coordinate ``cell_ids`` with ``grid_name`` and ``level``
        attributes, and ``area_km2`` (the weights of the means).
    level : int
        The coarser level.
    how : dict, optional
        ``{variable: "mean" | "sum"}``, overriding the rule above.

    Returns
    -------
    xarray.Dataset
        On the coarse cells covered by ``ds``, with ``area_km2`` (summed) and the
        coarse cells' ``lat``/``lon`` where ``ds`` has them.
    """
    attrs = ds.cell_ids.attrs
    if "grid_name" not in attrs or "level" not in attrs:
        raise ValueError("rollup needs cell_ids with grid_name and level attributes.")
    if "area_km2" not in ds:
        raise ValueError("rollup needs the cells' area_km2 to weigh the means.")
    fine = get_grid(attrs["grid_name"], int(attrs["level"]))
    how = dict(how or {})
    for name, m in how.items():
        if m not in ("mean", "sum"):
            raise ValueError(f"how[{name!r}] must be 'mean' or 'sum'; got {m!r}.")
    parents = fine.parents(ds.cell_ids.values, level)
    coarse_ids, inverse = np.unique(parents, return_inverse=True)
    coarse = get_grid(fine.name, level)
    area = ds.area_km2

    def group_sum(da):
        moved = np.moveaxis(np.asarray(da.values, dtype=np.float64),
                            da.dims.index("cells"), -1)
        out = np.zeros((*moved.shape[:-1], len(coarse_ids)))
        for idx in np.ndindex(*moved.shape[:-1]):
            out[idx] = np.bincount(inverse, weights=moved[idx], minlength=len(coarse_ids))
        dims = [d for d in da.dims if d != "cells"] + ["cells"]
        return xr.DataArray(out, dims=dims).transpose(*da.dims)

    data_vars = {}
    for name, var in ds.data_vars.items():
        if "cells" not in var.dims or name in ("lat", "lon"):
            continue
        if name == "area_km2":
            data_vars[name] = (var.dims, group_sum(var).values, var.attrs)
            continue
        method = how.get(name, _method(var))
        values = var.astype(np.float64)
        valid = values.notnull()
        if method == "sum":
            summed = group_sum(values.fillna(0.0))
            any_valid = group_sum(valid.astype(np.float64)) > 0
            out = summed.where(any_valid)
        else:
            w = area * valid
            out = group_sum((values * area).fillna(0.0)) / group_sum(w)
        data_vars[name] = (var.dims, out.values, var.attrs)
    out = xr.Dataset(data_vars, coords={"cell_ids": coarse.cell_ids_coord(coarse_ids)},
                     attrs=dict(ds.attrs))
    for d in ds.dims:
        if d != "cells" and d in ds.coords:
            out = out.assign_coords({d: ds[d]})
    if "lat" in ds and "lon" in ds:
        lat, lon = coarse.centres(coarse_ids)
        out["lat"] = ("cells", lat, ds.lat.attrs)
        out["lon"] = ("cells", lon, ds.lon.attrs)
    out.attrs.update(grid_name=coarse.name, level=level)
    return out
