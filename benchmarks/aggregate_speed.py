"""Throughput of raster -> cell aggregation beside a naive baseline, in the same run.

A 10,000 x 10,000 float32 raster in EPSG:3413 (100 m pixels, 1000 km across, centred
on the Lena Delta region) is aggregated to H3 level 6 and HEALPix level 10, for the mean
and the 90th percentile, cold (the pixel -> cell index is built) and warm (the index
is cached). The naive baseline transforms every pixel centre, looks its cell up pixel
by pixel (``h3.latlng_to_cell``; ``healpy.ang2pix`` on the pixel arrays) and reduces
with ``pandas.groupby``; it runs on a band of rows and is reported per pixel.
Everything runs on one core. Peak memory (the kernel's high-water mark, reset before
each step) is reported over the raster's size.

    python benchmarks/aggregate_speed.py [--size 10000] [--baseline-rows 100]

Targets: warm mean >= 20x the naive baseline and >= 50 megapixels/s on one core; peak
memory under 3x the raster's size.
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, libraries included
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import h3  # noqa: E402
import healpy as hp  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import rioxarray  # noqa: E402,F401
import xarray as xr  # noqa: E402
from pyproj import Transformer  # noqa: E402

from entropice.aggregate import clear_cache, raster_to_cells  # noqa: E402
from entropice.grids import get_grid  # noqa: E402

RES = 100.0
CENTRE = (1_000_000.0, 1_300_000.0)  # EPSG:3413 metres: north-eastern Siberia


def status(key):
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(key)).split()[1]) * 1024


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status("VmRSS")


def make_raster(n):
    x = CENTRE[0] + RES * (np.arange(n) - n / 2 + 0.5)
    y = CENTRE[1] + RES * (n / 2 - np.arange(n) - 0.5)
    data = np.empty((n, n), dtype=np.float32)
    rng = np.random.default_rng(0)
    for r0 in range(0, n, 1000):  # in bands, to allocate nothing but the raster
        data[r0:r0 + 1000] = rng.standard_normal((min(1000, n - r0), n), dtype=np.float32)
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": y, "x": x}, name="dem",
                      attrs={"units": "m"})
    return da.rio.write_crs("EPSG:3413")


def naive(da, grid, rows):
    """Per-pixel cell lookup and pandas.groupby over ``rows`` rows; seconds per pixel."""
    band = da.isel(y=slice(0, rows))
    t0 = time.perf_counter()
    xx, yy = np.meshgrid(band.x.values, band.y.values)
    lon, lat = Transformer.from_crs("EPSG:3413", "EPSG:4326", always_xy=True).transform(
        xx.ravel(), yy.ravel())
    if grid.name == "h3":
        cells = np.array([h3.latlng_to_cell(a, b, grid.level) for a, b in zip(lat, lon)])
    else:
        cells = hp.ang2pix(grid.nside, lon, lat, nest=True, lonlat=True)
    df = pd.DataFrame({"cell": cells, "v": band.values.ravel()})
    g = df.groupby("cell").v
    g.mean(), g.quantile(0.9)
    return (time.perf_counter() - t0) / band.size


def timed(fn):
    before = reset_peak()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0, status("VmHWM") - before


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--baseline-rows", type=int, default=100)
    args = parser.parse_args()
    # compile the kernels on a small raster first
    small = make_raster(200)
    raster_to_cells(small, get_grid("h3", 4), stats=("mean", "p90"))
    clear_cache()
    da = make_raster(args.size)
    mpx = da.size / 1e6
    raster_mb = da.nbytes / 2**20
    print(f"raster {args.size} x {args.size} float32 ({raster_mb:.0f} MiB), EPSG:3413, "
          f"{RES:.0f} m pixels; one core")
    print("| grid | step | seconds | Mpx/s | x naive | peak memory / raster |")
    print("|---|---|---|---|---|---|")
    for name, level in (("h3", 6), ("healpix", 10)):
        grid = get_grid(name, level)
        grid.cells()  # the domain is built once per grid and level, not per raster
        per_px = naive(da, grid, args.baseline_rows)
        print(f"| {name} {level} | naive (mean + p90) | {per_px * da.size:.1f} (est.) | "
              f"{1e-6 / per_px:.2f} | 1.0 | - |", flush=True)
        steps = [
            ("cold: index + mean", ("mean",)),
            ("warm: mean", ("mean",)),
            ("warm: p90", ("p90",)),
            ("warm: mean + p90", ("mean", "p90")),
        ]
        for label, stats in steps:
            secs, peak = timed(lambda g=grid, s=stats: raster_to_cells(da, g, stats=s))
            speed = mpx / secs
            print(f"| {name} {level} | {label} | {secs:.2f} | {speed:.1f} | "
                  f"{speed * per_px * 1e6:.0f} | {(da.nbytes + peak) / da.nbytes:.2f} |",
                  flush=True)
        clear_cache()


if __name__ == "__main__":
    main()
