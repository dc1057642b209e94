"""Nine levels from one pass over a DEM: the ArcticDEM chain at the default config's
levels, one level at a time (terrain and pixel index per level, as before) beside all
levels at once (terrain once, one index per grid system), in the same run.

A 4000 x 4000 EPSG:3413 DEM of 32 m pixels (128 km across, where ``index_speed.py``
is), smooth relief plus pixel noise, chunked 2048 x 2048 as ``arcticdem.open`` does,
goes through ``arcticdem.to_cells`` (one level) and ``arcticdem.to_levels`` (several)
on the threaded dask scheduler; the numba kernels are compiled beforehand, the grids'
domains built (and the wider ones the levels derive from) and one level reduced once
untimed (the process's first large allocations, which later runs reuse: it costs more
than the runs after it), the times of both printed; every run starts with a cold
index cache. Printed: wall and CPU seconds; for H3 the share of pixels a coarse level
derived from level 6 puts in another cell than its own index, and what that moves the
cell statistics by; and the pixels of cells split between chunks held for their
quantiles, gathered (before) or summarised (now).

    python benchmarks/levels_speed.py [--size 4000] [--res 32] [--repeat 3] [--quick]

The runs in one pass (one level, the finest of each system, all levels) are timed
``--repeat`` times, in turn, and the fastest of each is shown (the machine may be shared:
a busy spell hits every run alike); ``--quick`` times only those.

Target (issue 14): nine levels cost about one (at most 1.5x one level's time).
"""

import argparse
import time

import numpy as np
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr
from pyproj import CRS

from entropice.aggregate import _index, clear_cache
from entropice.aggregate import raster as raster_module
from entropice.grids import get_grid
from entropice.sources import arcticdem

CENTRE = (1_000_000.0, 1_300_000.0)  # EPSG:3413 metres, as in index_speed.py
LEVELS = {"h3": [3, 4, 5, 6], "healpix": [6, 7, 8, 9, 10]}  # pipeline/config.toml's
TARGET = 1.5


def build_domains(grids, min_lat=50.0):
    """The grids' domains (the grids stage's work) and the wider ones their levels derive
    from, built once per process so that no timed run pays for them."""
    for g in grids:
        g.cells(min_lat)
    for t in raster_module._targets(grids, min_lat):
        if t.base is not None:
            _index._domain_ids(*t.base)


def dem(n, res, chunks=2048):
    """A north-up EPSG:3413 DEM: hills of a few hundred metres and 1 m pixel noise."""
    import dask.array as dsa

    x = CENTRE[0] + res * (np.arange(n) - n / 2 + 0.5)
    y = CENTRE[1] + res * (n / 2 - np.arange(n) - 0.5)
    def synthetic_dem(block_info=None):  # (the task name on a cluster)
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        yy, xx = np.meshgrid(y[r0:r1], x[c0:c1], indexing="ij")
        z = 300 + 200 * np.sin(xx / 9e3) * np.cos(yy / 7e3) + 80 * np.sin((xx + yy) / 2.3e3)
        noise = np.random.default_rng(r0 * n + c0).normal(size=z.shape)
        return (z + noise).astype(np.float32)

    data = dsa.map_blocks(synthetic_dem, chunks=((chunks,) * (n // chunks) + ((n % chunks,) if n %
                                                                       chunks else ()),) * 2,
                          dtype=np.float32)
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": y, "x": x}, name="elevation",
                      attrs={"units": "m"})
    return da.rio.write_crs("EPSG:3413")


def timed(fn):
    clear_cache()
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def moved_share(da, coarse, fine):
    """Share of the DEM's pixels that the index derived from ``fine`` puts in another
    ``coarse`` cell than ``coarse``'s own index (H3: children cover parents roughly)."""
    x, y = da.x.values, da.y.values
    crs = CRS("EPSG:3413")
    t = raster_module._targets([coarse, fine], 50.0)[0]
    own = _index.level_index(x, y, crs, coarse, 50.0)
    derived = t.index(x, y, crs)

    def per_pixel(index):
        out = np.full(index.shape, -1, dtype=np.int64)
        for r, s, n, c in zip(index.row, index.start, index.length, index.cell):
            out[r, s:s + n] = c
        return out

    a, b = per_pixel(own), per_pixel(derived)
    both = (a >= 0) | (b >= 0)
    return float(np.mean(a[both] != b[both]))


def held_pixels(da, grids):
    """Pixels of cells split between chunks held for their quantiles: every one of them
    (gathered, before) and at most SUMMARY_POINTS per cell and chunk (now)."""
    x, y = da.x.values, da.y.values
    crs = CRS("EPSG:3413")
    ychunks, xchunks = da.chunks
    yb, xb = np.cumsum([0, *ychunks]), np.cumsum([0, *xchunks])
    targets = raster_module._targets(grids, 50.0)
    rows = []
    for t in targets:
        parts = []
        for i in range(len(ychunks)):
            for j in range(len(xchunks)):
                ix = t.index(x[xb[j]:xb[j + 1]], y[yb[i]:yb[i + 1]], crs)
                parts.append((ix.touched, ix.local_pixels))
        totals = np.zeros(len(t.cells.cell_ids))
        for touched, n in parts:
            totals[touched] += n
        gathered = sum(int(n[n < totals[c]].sum()) for c, n in parts)
        summarised = sum(int(np.minimum(n[n < totals[c]], raster_module.SUMMARY_POINTS).sum())
                         for c, n in parts)
        rows.append((t.grid, gathered, summarised))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--res", type=float, default=32.0)
    parser.add_argument("--repeat", type=int, default=3,
                        help="times each run in one pass is timed (the fastest is shown)")
    parser.add_argument("--quick", action="store_true",
                        help="only the runs in one pass (not one level at a time, nor the "
                             "tables after them)")
    args = parser.parse_args()
    da = dem(args.size, args.res)
    grids = [get_grid(n, lv) for n, levels in LEVELS.items() for lv in levels]
    for g in grids:
        g.cells()  # the domains, built once (the grids stage's work, not this one's)
    c0 = time.process_time()
    build_domains(grids)  # and, once per process, the wider ones the levels derive from
    c_wide = time.process_time() - c0
    arcticdem.to_levels(dem(128, args.res, 64), grids[:2])  # compile the kernels
    # a first run pays the process's first large allocations, which the ones after reuse
    _, _, c_first = timed(lambda: arcticdem.to_cells(da, get_grid("h3", 6)))
    npx = args.size**2
    print(f"DEM {args.size} x {args.size} ({npx / 1e6:.0f} Mpx), EPSG:3413, {args.res:.0f} m "
          "pixels, chunks 2048; arcticdem terrain, 8 quantities x 5 statistics")
    print("| run | levels | wall s | CPU s | Mpx/CPU-s | x one level |")
    print("|---|---|---|---|---|---|")
    finest = [get_grid(n, max(levels)) for n, levels in LEVELS.items()]
    runs = {"one": lambda: arcticdem.to_cells(da, get_grid("h3", 6)),
            "finest": lambda: arcticdem.to_levels(da, finest),
            "all": lambda: arcticdem.to_levels(da, grids)}
    out, best, cpu = {}, {}, {name: [] for name in runs}
    for _ in range(args.repeat):  # in turn, the fastest of each kept
        for name, fn in runs.items():
            out[name] = None  # (the previous run's result freed first)
            out[name], w, c = timed(fn)
            cpu[name].append(c)
            best[name] = min(best.get(name, (w, c)), (w, c), key=lambda wc: wc[1])
    one, together = out["one"], out["all"]
    (w1, c1), (w2, c2), (wt, ct) = best["one"], best["finest"], best["all"]
    print(f"| one level (h3 6) | 1 | {w1:.1f} | {c1:.1f} | {npx / 1e6 / c1:.2f} | 1.00 |",
          flush=True)
    if not args.quick:
        each, we, ce = timed(lambda: {(g.name, g.level): arcticdem.to_cells(da, g)
                                      for g in grids})
        print(f"| one level at a time | {len(grids)} | {we:.1f} | {ce:.1f} | "
              f"{npx / 1e6 / ce:.2f} | {ce / c1:.2f} |", flush=True)
    print(f"| the finest of each system in one pass | {len(finest)} | {w2:.1f} | {c2:.1f} | "
          f"{npx / 1e6 / c2:.2f} | {c2 / c1:.2f} |", flush=True)
    print(f"| all levels in one pass | {len(grids)} | {wt:.1f} | {ct:.1f} | "
          f"{npx / 1e6 / ct:.2f} | {ct / c1:.2f} |", flush=True)
    verdict = "met" if ct / c1 <= TARGET else "missed"
    faster = "" if args.quick else f", {ce / ct:.1f}x faster than one at a time"
    print(f"\nnine levels in one pass: {ct / c1:.2f}x one level's CPU time{faster} "
          f"(target <= {TARGET}x one level: {verdict}); {ct / c2:.2f}x the finest level of "
          "each grid system alone")
    print(f"CPU s of each run in one pass ({args.repeat} in turn; the table has the fastest): "
          + "; ".join(f"{name} " + ", ".join(f"{c:.2f}" for c in cs) for name, cs in cpu.items()))
    same = all(np.array_equal(one[v].values, together["h3", 6][v].values, equal_nan=True)
               for v in one.data_vars)
    print(f"h3 6 in one pass equal to h3 6 alone: {same}")
    print(f"once per process, before the runs: the wider domains of the indexes the levels "
          f"derive from, {c_wide:.1f} CPU s; a first one-level run, {c_first:.1f} CPU s")
    if args.quick:
        return

    print("\nfrom the finest level's index, against each level's own (one level at a time)")
    print("| level | pixels in another cell | elevation mean, median / max abs diff (m) | "
          "slope p90, median / max abs diff (deg) |")
    print("|---|---|---|---|")
    fine = {"h3": get_grid("h3", 6), "healpix": get_grid("healpix", 10)}
    for g in grids:
        a, b = each[g.name, g.level], together[g.name, g.level]
        moved = (0.0 if g == fine[g.name]
                 else moved_share(da, g, fine[g.name]) if g.name == "h3" else None)
        cols = []
        for v in ("dem_elevation_mean", "dem_slope_p90"):
            d = np.abs(a[v].values.astype(float) - b[v].values.astype(float))
            d = d[np.isfinite(d)]
            cols.append(f"{np.median(d):.3g} / {d.max():.3g}" if len(d) else "-")
        share = "0 (nested)" if moved is None else f"{moved:.2%}"
        print(f"| {g.name} {g.level} | {share} | {cols[0]} | {cols[1]} |", flush=True)

    print(f"\npixels of split cells held for their quantiles (summaries of at most "
          f"{raster_module.SUMMARY_POINTS} points per cell and chunk)")
    print("| level | gathered (before) | summarised (now) | share of the DEM, before / now |")
    print("|---|---|---|---|")
    for g, gathered, summarised in held_pixels(da, grids):
        print(f"| {g.name} {g.level} | {gathered:,} | {summarised:,} | "
              f"{gathered / npx:.1%} / {summarised / npx:.2%} |")


if __name__ == "__main__":
    main()
