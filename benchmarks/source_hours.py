"""What the full pan-Arctic run of each source costs: each stage's own aggregation on a
synthetic input in the source's layout, at the default config's nine levels in one
stage run, its CPU time per pixel, projected onto the real data.

- AlphaEarth: ``alphaearth.to_levels`` on one year of a 64-band float32 raster of
  10 m pixels (dims band/y/x, bands A00-A63, in memory, as a dask array in chunks of
  2048 pixels and all bands, as ``alphaearth.open`` gives it), in EPSG:3413 where
  ``index_speed.py`` is (the real tiles are in UTM zones: the index's cost is alike).
  The stage takes the bands in one pass per grid system where their means fit
  ``PASS_BYTES`` (at the default levels they do), else in several, and each pass
  indexes the raster anew: on the real mosaic the index cache (1 GiB) holds a few
  dozen of a year's tens of thousands of blocks, so every pass here starts with a cold
  cache too (the table's row; with several passes a note gives the run with the later
  passes' indexes from the cache). What a year costs whatever its pixels (arrays over the domain's
  cells) is measured on a 256 x 256 raster and left out of the rate (added back once
  per year).
  The principal components (``n_components``) are timed apart: a fit on ``PCA_ROWS``
  rows and the transform of every cell and year, per level.
- ERA5: ``era5.features`` and ``era5.features_to_cells`` (the stage: features once on
  the ERA5 grid for every year of the files, the trend's included, then each group a
  year at a time) on CDS daily statistics (daily means at 00:00) and on CDS monthly
  means, 0.25 degrees from 90 to 49 N (1440 x 165 points), run through the reader's
  standardisation (``era5._standardise``) in memory instead of from NetCDF files.
  Projected: the features of the config's years and the ``trend_window - 1`` before
  them, the cells of the config's years.
- ArcticDEM: ``arcticdem.to_levels`` (terrain, 8 quantities x 5 statistics) on
  ``levels_speed.dem`` (its pixels generated inside the timed run, as there), its fixed
  cost measured on 256 x 256 pixels and left out of the rate, as for AlphaEarth.

Every run is preceded by an untimed one (numba compiled, the domains built, the
process's first large allocations made); CPU seconds are the process's (every
thread's). Core-hours are CPU time at this machine's one-process rate, reading the
files not included (COG decompression and transfer come on top); wall hours on
``--workers`` workers are core-hours / workers, the driver ignored (ERA5's stage runs
in one process: its wall hours are its core-hours).

    python benchmarks/source_hours.py [--ae-size 2048] [--dem-size 2048]
        [--era5-step 0.25] [--era5-years 2] [--workers 64]

The README's run is ``--ae-size 4096``: at 2048 the year's fixed cost is most of
AlphaEarth's time and its rate uncertain; 4096 holds the synthetic raster in memory
(4.3 GB; the run peaks at about 15 GB).

Issue 14: the core-hours of the full pan-Arctic run of each source.
"""

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr
from levels_speed import build_domains, dem  # benchmarks/, the script's folder, is on the path

import entropice.aggregate as aggregate
from entropice.aggregate import clear_cache
from entropice.aggregate import raster as raster_module
from entropice.grids import get_grid
from entropice.pipeline import load_config
from entropice.sources import alphaearth, arcticdem, era5

CONFIG = Path(__file__).resolve().parents[1] / "pipeline" / "config.toml"
CENTRE = (1_000_000.0, 1_300_000.0)  # EPSG:3413 metres, as in index_speed.py
AE_PIXELS = 3e11     # AlphaEarth 10 m pixels a year over the land north of 50 N (3e7 km2)
AE_ARCHIVE = (2017, 2024)  # the years AlphaEarth has
DEM_PIXELS = 40e9    # the ArcticDEM 32 m mosaic north of 50 N (as in levels_speed.py)
FIXED_SIZE = 256


def cpu(fn):
    """``fn()``, and its CPU seconds (every thread of the process) and wall seconds."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def embeddings(n, seed=0):
    """One year of AlphaEarth: (band, y, x) float32, 64 bands of 10 m pixels, unit-length
    vectors as the real ones, in memory as a dask array of 2048-pixel chunks."""
    import dask.array as dsa

    rng = np.random.default_rng(seed)
    data = rng.standard_normal((64, n, n), dtype=np.float32)
    data /= np.sqrt((data**2).sum(axis=0, keepdims=True))
    x = CENTRE[0] + 10.0 * (np.arange(n) - n / 2 + 0.5)
    y = CENTRE[1] + 10.0 * (n / 2 - np.arange(n) - 0.5)
    bands = [f"A{b:02d}" for b in range(64)]
    da = xr.DataArray(dsa.from_array(data, chunks=(-1, 2048, 2048)), dims=("band", "y", "x"),
                      coords={"band": bands, "y": y, "x": x}, attrs={"long_name": tuple(bands)})
    return da.rio.write_crs("EPSG:3413")


def index_seconds(da, grids, min_lat):
    """CPU s of building the pixel index of ``da``'s (first) block for every grid system
    of ``grids``, cold (what a block's second pass does again when the cache lost it)."""
    targets = raster_module._targets(grids, min_lat)
    crs = raster_module.raster_crs(da)
    ny, nx = (c[0] for c in da.data.chunks[-2:])
    x, y = da.x.values[:nx], da.y.values[:ny]
    clear_cache()
    _, c, _ = cpu(lambda: raster_module._block_indexes(x, y, crs, targets))
    clear_cache()
    return c, nx * ny


def cold_passes():
    """Make every call of ``raster_to_levels`` (one pass of bands) start with a cold index
    cache, as on the real mosaic; returns the undo."""
    original = aggregate.raster_to_levels

    def cold(*args, **kwargs):
        clear_cache()
        return original(*args, **kwargs)

    aggregate.raster_to_levels = cold
    return lambda: setattr(aggregate, "raster_to_levels", original)


def passes(grids, min_lat):
    """Bands per pass and passes per grid system, as ``alphaearth.to_levels`` takes them."""
    out = {}
    for g in grids:
        out.setdefault(g.name, 0)
        out[g.name] += len(g.cells(min_lat).cell_ids)
    steps = {n: alphaearth.bands_per_pass(64, c) for n, c in out.items()}
    return {n: (s, math.ceil(64 / s)) for n, s in steps.items()}


def alphaearth_run(size, grids, min_lat, cold=True):
    """CPU s and wall s of one year of ``size``^2 pixels onto ``grids``: every pass of
    bands indexing anew (``cold``), or only the first one of each grid system."""
    rasters = {2020: embeddings(size)}
    clear_cache()
    undo = cold_passes() if cold else (lambda: None)
    try:
        _, c, w = cpu(lambda: {k: ds.load() for k, ds in alphaearth.to_levels(
            rasters, grids, min_lat=min_lat).items()})
    finally:
        undo()
    return c, w


def pca_seconds(grids, min_lat, n_components, n_years):
    """CPU s of the principal components of every level: a fit on ``PCA_ROWS`` rows of 64
    band means and the transform of every cell and year (as ``_components`` does)."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    rows = rng.standard_normal((alphaearth.PCA_ROWS, 64))
    pca, fit, _ = cpu(lambda: PCA(n_components).fit(rows))
    rows = None  # (freed)
    total = 0.0
    for g in grids:
        n = len(g.cells(min_lat).cell_ids)
        means = rng.standard_normal((64, n)).astype(np.float32)

        def transform(means=means, n=n):
            comps = np.empty((n, n_components), dtype=np.float32)
            for a in range(0, n, 2**18):
                block = means[:, a:a + 2**18].T.astype(np.float64)
                comps[a:a + 2**18] = (block - pca.mean_) @ pca.components_.T
            return comps

        _, c, _ = cpu(transform)
        total += fit + n_years * c
    return total


def era5_data(step, start, end, monthly):
    """CDS daily statistics (or monthly means) of t2m, tp and sf, 90 to 49 N every
    ``step`` degrees, longitudes 0..360, in the new CDS layout, standardised as
    ``era5.open`` does."""
    lat = np.arange(90.0, 49.0 - step / 2, -step)
    lon = np.arange(0.0, 360.0, step)
    times = pd.date_range(start, end, freq="MS" if monthly else "D")
    t = pd.DatetimeIndex(times)
    doy = t.day_of_year.values + (15 if monthly else 0)
    season = 14.0 * np.sin(2 * np.pi * (doy - 110) / 365.25)
    rng = np.random.default_rng(2)
    shape = (len(times), len(lat), len(lon))
    t2m = (273.15 + 2.0 + season[:, None, None] - 0.4 * (lat[None, :, None] - 70.0)
           + 3.0 * np.sin(np.radians(lon))[None, None, :]).astype(np.float32)
    t2m = t2m + rng.standard_normal(shape, dtype=np.float32)
    tp = rng.uniform(0, 1e-4, shape).astype(np.float32)  # mean hourly (daily: m per day)
    dims = ("valid_time", "latitude", "longitude")
    ds = xr.Dataset({"t2m": (dims, t2m, {"units": "K", "cell_methods": "time: mean"}),
                     "tp": (dims, tp, {"units": "m"}),
                     "sf": (dims, tp / 3, {"units": "m of water equivalent"})},
                    coords={"valid_time": times, "latitude": lat, "longitude": lon,
                            "number": 0})
    return era5._standardise(ds, "synthetic ERA5", 50.0, {}, None if monthly else True)


def era5_run(ds, grids, min_lat):
    """CPU s of the features of every complete year, and of their cells on every grid."""
    fds, c_feat, _ = cpu(lambda: era5.features(ds, year_start_month=10, trend_window=10))
    n_years = fds.sizes["year"]

    def cells():
        for g in grids:
            era5.features_to_cells(fds, g, min_lat=min_lat).load()

    _, c_cells, _ = cpu(cells)
    return n_years, c_feat, c_cells


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ae-size", type=int, default=2048,
                        help="AlphaEarth raster side in 10 m pixels")
    parser.add_argument("--dem-size", type=int, default=2048,
                        help="ArcticDEM side in 32 m pixels")
    parser.add_argument("--era5-step", type=float, default=0.25,
                        help="ERA5 grid step in degrees (0.25: the real one)")
    parser.add_argument("--era5-years", type=int, default=2,
                        help="complete (Arctic) years of ERA5 measured")
    parser.add_argument("--workers", type=int, default=64)
    args = parser.parse_args()

    cfg = load_config(CONFIG)
    min_lat = float(cfg["domain"]["min_lat"])
    years = cfg["domain"]["years"]
    trend = int(cfg["era5"].get("trend_window", 10))
    n_pc = cfg["alphaearth"].get("n_components") or 0
    grids = [get_grid(n, lv) for n in ("h3", "healpix") for lv in cfg["grids"].get(n, [])]
    build_domains(grids, min_lat)
    levels = ", ".join(f"{n} {min(cfg['grids'][n])}-{max(cfg['grids'][n])}"
                       for n in ("h3", "healpix") if cfg["grids"].get(n))
    rows, notes, small_share = [], [], []

    # -- AlphaEarth -------------------------------------------------------------------
    alphaearth_run(FIXED_SIZE, grids, min_lat)  # untimed: compiles, first allocations
    px = args.ae_size**2
    archive = AE_ARCHIVE[1] - AE_ARCHIVE[0] + 1
    pca = pca_seconds(grids, min_lat, n_pc, len(years)) if n_pc else 0.0
    p = passes(grids, min_lat)
    p_all = sum(k for _, k in p.values())
    ae = {}
    for cold in (True, False) if p_all > len(p) else (True,):  # (one pass: nothing cached)
        fixed, _ = alphaearth_run(FIXED_SIZE, grids, min_lat, cold)
        c, w = alphaearth_run(args.ae_size, grids, min_lat, cold)
        rate = (px - FIXED_SIZE**2) / max(c - fixed, 1e-9)  # pixels per CPU s, fixed apart
        per_year = AE_PIXELS / rate + fixed
        ae[cold] = c, w, fixed, rate, per_year, (len(years) * per_year + pca) / 3600
        if c - fixed < 0.3 * c and "AlphaEarth" not in small_share:
            small_share.append("AlphaEarth")
    c_ae, w_ae, fixed, rate, per_year, ae_hours = ae[True]
    idx, idx_px = index_seconds(embeddings(min(args.ae_size, 2048)), grids, min_lat)
    rows.append(("AlphaEarth (64 bands, 10 m, mean)", f"{args.ae_size}^2 = {px / 1e6:.1f} M",
                 c_ae, fixed, rate / 1e6,
                 f"{AE_PIXELS:.0e} a year (64 bands each) x {len(years)} years "
                 f"({years[0]}-{years[-1]})",
                 ae_hours, ae_hours / args.workers))
    notes.append(
        f"AlphaEarth: {c_ae:.1f} CPU s ({w_ae:.1f} wall s) for one year of {px / 1e6:.1f} Mpx "
        f"x 64 bands onto {len(grids)} levels; bands in "
        + ", ".join(f"{n} {k} passes of {s}" if k > 1 else f"{n} one pass"
                    for n, (s, k) in p.items())
        + f"{', each indexing anew' if p_all > len(p) else ''}; {fixed:.1f} CPU s a year "
        f"whatever the pixels "
        f"({FIXED_SIZE}^2 raster); principal components ({n_pc}, fit on "
        f"{alphaearth.PCA_ROWS:,} rows and {len(years)} years transformed, every level) "
        f"{pca:.0f} CPU s in all, in the hours; the whole archive ({AE_ARCHIVE[0]}-"
        f"{AE_ARCHIVE[1]}, {archive} years) {(archive * per_year + pca) / 3600:.0f} "
        "core-hours")
    again = len(years) * p_all / len(p) * AE_PIXELS * idx / idx_px / 3600
    calls = f"each of its {p_all // len(p)} calls" if p_all > len(p) else "its call"
    notes.append(
        f"AlphaEarth: a block's index, both grid systems, {idx / idx_px * 1e6:.2f} CPU s per "
        f"Mpx; on the mosaic the cache holds few of a year's blocks, so the second pass of "
        f"{calls} builds it again: +{again:.0f} core-hours")
    if False in ae:
        cw, _, fw, rw, pyw, hw = ae[False]
        notes.append(
            f"AlphaEarth with each block indexed once a year per grid system (the later "
            f"passes' indexes from the cache): {cw:.1f} CPU s, {fw:.1f} fixed, {rw / 1e6:.2f} "
            f"Mpx per CPU-s, {hw:.0f} core-hours ({hw / args.workers:.1f} wall hours on "
            f"{args.workers} workers); the whole archive {(archive * pyw + pca) / 3600:.0f} "
            "core-hours")

    # -- ERA5 -------------------------------------------------------------------------
    small = era5_data(2.0, "2018-10-01", "2019-12-31", False)
    era5_run(small, grids, min_lat)  # untimed
    del small
    n_feat = len(years) + trend - 1  # the trend of the first year needs the window before it
    step = args.era5_step
    points = len(np.arange(90.0, 49.0 - step / 2, -step)) * len(np.arange(0.0, 360.0, step))
    scale = (step / 0.25) ** 2  # a coarser grid measured: its features scaled to 0.25 deg
    end = f"{2019 + args.era5_years}-12-31"
    for kind, monthly, per_year_steps in (("daily", False, 365.25), ("monthly", True, 12)):
        ds = era5_data(step, "2019-10-01", end if not monthly else end[:8] + "01", monthly)
        n, c_feat, c_cells = era5_run(ds, grids, min_lat)
        del ds
        measured = n * per_year_steps * points
        real = points * scale * per_year_steps * n_feat
        hours = (n_feat * c_feat / n * scale + len(years) * c_cells / n) / 3600
        rows.append((f"ERA5 ({kind}, features + cells)",
                     f"{n} years x {points:,} points = {measured / 1e6:.3g} M point-"
                     f"{'days' if not monthly else 'months'}",
                     c_feat + c_cells, None, measured / (c_feat + c_cells) / 1e6,
                     f"{real / 1e9:.2f} G point-{'days' if not monthly else 'months'} "
                     f"({n_feat} years of features, {len(years)} onto cells)",
                     hours, None))
        notes.append(f"ERA5 {kind}: features {c_feat / n:.1f} CPU s a year, cells "
                     f"{c_cells / n:.1f} CPU s a year on all {len(grids)} levels; "
                     f"{hours * 60:.1f} core-minutes for {n_feat} years of features "
                     f"({years[0] - trend + 1}-{years[-1]}, the {trend}-year trend's) and "
                     f"{len(years)} onto cells")

    # -- ArcticDEM --------------------------------------------------------------------
    def dem_run(n):
        clear_cache()
        da = dem(n, 32.0)
        return cpu(lambda: arcticdem.to_levels(da, grids, min_lat=min_lat))[1]

    dem_run(FIXED_SIZE)  # untimed
    fixed_dem = dem_run(FIXED_SIZE)
    c_dem = dem_run(args.dem_size)
    npx = args.dem_size**2
    rate_dem = (npx - FIXED_SIZE**2) / max(c_dem - fixed_dem, 1e-9)
    if c_dem - fixed_dem < 0.3 * c_dem:
        small_share.append("ArcticDEM")
    dem_hours = (DEM_PIXELS / rate_dem + fixed_dem) / 3600
    rows.append(("ArcticDEM (terrain, 32 m, 5 statistics)",
                 f"{args.dem_size}^2 = {npx / 1e6:.1f} M", c_dem, fixed_dem, rate_dem / 1e6,
                 f"{DEM_PIXELS / 1e9:.0f} G (the 32 m mosaic, once)", dem_hours,
                 dem_hours / args.workers))
    notes.append(f"ArcticDEM: {npx / 1e6 / c_dem:.2f} Mpx per CPU-s with the fixed cost in "
                 f"(compare levels_speed.py's): {DEM_PIXELS / (npx / c_dem) / 3600:.1f}"
                 " core-hours")
    idx_dem, idx_dem_px = index_seconds(dem(min(args.dem_size, 2048), 32.0), grids, min_lat)
    notes.append(f"ArcticDEM: a block's index {idx_dem / idx_dem_px * 1e6:.2f} CPU s per Mpx, "
                 f"built again by the second pass on the mosaic: "
                 f"+{DEM_PIXELS * idx_dem / idx_dem_px / 3600:.1f} core-hours")

    print(f"each source's stage onto the config's {len(grids)} levels ({levels}) in one run, "
          f"north of {min_lat:g} N; one process on this machine")
    print(f"| source | pixels measured | CPU s | fixed CPU s (a year) | Mpx per CPU-s | "
          f"pan-Arctic pixels | core-hours | wall hours on {args.workers} workers |")
    print("|---|---|---|---|---|---|---|---|")
    for name, measured, c, fx, r, real, hours, wall in rows:
        print(f"| {name} | {measured} | {c:.1f} | {'-' if fx is None else f'{fx:.1f}'} | "
              f"{r:.2f} | {real} | {hours:.2f} | "
              f"{f'{hours:.2f} (one process)' if wall is None else f'{wall:.2f}'} |")
    print()
    if small_share:
        print("the fixed cost is most of " + " and ".join(small_share) + "'s time: a larger "
              "size measures its rate better\n")
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
