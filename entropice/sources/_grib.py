"""GRIB to NetCDF-4, run in a child process (``python -m entropice.sources._grib SRC DST``).

ecCodes (under cfgrib) and HDF5 in one process corrupt the heap (a double free at
exit, seen with cfgrib 0.9.15 and h5py 3.16); converting in a child that ends without
teardown keeps them apart: the pipeline reads the NetCDF file.
"""

from __future__ import annotations

import os
import sys

from ..atomic import replacing


def convert(src: str, dst: str) -> None:
    """Every hypercube of a GRIB file (cfgrib splits step types) into one NetCDF-4 file,
    the time axis being the valid time (a file of one step keeps it as a dimension)."""
    import cfgrib
    import xarray as xr

    parts = []
    for ds in cfgrib.open_datasets(src, backend_kwargs={"indexpath": ""}):
        parts.append(_on_valid_time(ds).drop_vars(
            [c for c in ("number", "surface", "heightAboveGround") if c in ds.coords]))
    if not parts:
        raise ValueError(f"{src} holds no GRIB messages cfgrib can read.")
    out = xr.merge(parts, compat="override", join="outer", combine_attrs="drop_conflicts")
    for v in out.variables.values():
        v.attrs = {k: val for k, val in v.attrs.items() if not k.startswith("GRIB_")
                   or k in ("GRIB_units", "GRIB_shortName")}
    with replacing(dst) as tmp:
        out.to_netcdf(tmp, engine="h5netcdf")


def _on_valid_time(ds):
    """The dataset on dimension ``time`` = the valid time (the time a value is for; for
    forecasts and accumulations not the start time), whatever cfgrib made of it."""
    if "valid_time" not in ds.coords:
        return ds.expand_dims("time") if "time" in ds.coords and ds.time.ndim == 0 else ds
    vt = ds["valid_time"]
    if vt.ndim == 2:  # (time, step): every pair is a valid time
        ds = ds.stack(_t=vt.dims).reset_index("_t", drop=True)
        ds = ds.swap_dims({"_t": "valid_time"})
    elif vt.ndim == 1:
        ds = ds.swap_dims({vt.dims[0]: "valid_time"})
    ds = ds.drop_vars([c for c in ("time", "step") if c in ds.coords])
    if ds["valid_time"].ndim == 0:
        ds = ds.expand_dims("valid_time")
    return ds.rename({"valid_time": "time"}).sortby("time")


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")  # the parent reports the last line of stderr
    try:
        convert(sys.argv[1], sys.argv[2])
        code = 0
    except Exception as err:  # noqa: BLE001 - reported to the parent in one line
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        code = 1
    sys.stderr.flush()
    os._exit(code)  # ecCodes and HDF5 both loaded free memory twice at interpreter exit
