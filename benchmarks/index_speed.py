"""Cold build rate of the pixel -> cell index: per-pixel lookup beside boundary tracking.

A 4000 x 4000 EPSG:3413 raster of 32 m pixels (128 km across, centred where
``aggregate_speed.py`` is: north-eastern Siberia) is indexed on H3 level 6 and HEALPix
level 10, once by looking every pixel's cell up and once by tracking the run boundaries
from row to row (the default), in the same run. Rates are megapixels per CPU-second
(``time.process_time``) on one core, with the numba kernels compiled beforehand; the
two indexes must be equal run for run (rows, starts, lengths, cells and weights).

    python benchmarks/index_speed.py [--size 4000] [--res 32]

Target: the tracked (default) build at >= 20 megapixels per CPU-second on both grids.
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, libraries included
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from pyproj import CRS  # noqa: E402

from entropice.aggregate import _index  # noqa: E402
from entropice.grids import get_grid  # noqa: E402

CENTRE = (1_000_000.0, 1_300_000.0)  # EPSG:3413 metres, as in aggregate_speed.py
TARGET = 20.0
FIELDS = ("row", "start", "length", "cell", "weight", "slope")


def axes(n, res):
    """Pixel-centre coordinates of an n x n north-up raster about ``CENTRE``."""
    x = CENTRE[0] + res * (np.arange(n) - n / 2 + 0.5)
    y = CENTRE[1] + res * (n / 2 - np.arange(n) - 0.5)
    return x, y


def rate(x, y, crs, grid, cell_ids, per_pixel):
    """The index and its build rate in megapixels per CPU-second."""
    t0 = time.process_time()
    index = _index.build_index(x, y, crs, grid, cell_ids, per_pixel=per_pixel)
    return index, len(x) * len(y) / 1e6 / (time.process_time() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--res", type=float, default=32.0)
    args = parser.parse_args()
    crs = CRS("EPSG:3413")
    x, y = axes(args.size, args.res)
    print(f"raster {args.size} x {args.size}, EPSG:3413, {args.res:.0f} m pixels; one core")
    print("| grid | runs | per pixel Mpx/CPU-s | tracked Mpx/CPU-s | ratio | target | equal |")
    print("|---|---|---|---|---|---|---|")
    for name, level in (("h3", 6), ("healpix", 10)):
        grid = get_grid(name, level)
        cell_ids = grid.cells().cell_ids.values  # the domain is built once, not per raster
        small_x, small_y = axes(64, args.res)
        _index.build_index(small_x, small_y, crs, grid, cell_ids)  # compile the kernels
        slow, slow_rate = rate(x, y, crs, grid, cell_ids, per_pixel=True)
        fast, fast_rate = rate(x, y, crs, grid, cell_ids, per_pixel=False)
        equal = all(np.array_equal(getattr(fast, f), getattr(slow, f)) for f in FIELDS)
        met = "met" if fast_rate >= TARGET else "missed"
        print(f"| {name} {level} | {fast.n_runs} | {slow_rate:.2f} | {fast_rate:.1f} | "
              f"{fast_rate / slow_rate:.1f} | {met} (>= {TARGET:.0f}) | {equal} |", flush=True)


if __name__ == "__main__":
    main()
