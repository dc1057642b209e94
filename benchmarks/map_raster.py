"""The map's image: the dashboard's pixel -> cell lookup against datashader's points.

For the cells of a grid level north of 50 N (default H3 level 6, 1.66M cells) and a
640 x 640 image, at the home view and zoomed 10x and 100x: the seconds to make the
image (the lookup cold, i.e. on a new view; then a layer change, a gather of values by
the remembered lookup) and datashader's mean of the cells' centres on the same canvas,
and the share of the pixels over the domain's cells that each leaves empty.

    python benchmarks/map_raster.py [--grid h3 --level 6] [--repeat 3]
"""

import argparse
import statistics
import time

import numpy as np
import pandas as pd


def seconds(fn, repeat):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        res = fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out), res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", default="h3")
    ap.add_argument("--level", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import datashader as ds

    from entropice.dashboard.lookup import PixelLookup, _pixel_lonlat, to_polar
    from entropice.grids import get_grid

    cells = get_grid(args.grid, args.level).cells(50.0)
    ids = cells.cell_ids.values
    x, y = to_polar(cells.lon.values, cells.lat.values)
    values = np.random.default_rng(0).normal(size=len(ids)).astype(np.float32)
    df = pd.DataFrame({"x": x, "y": y, "v": values})
    r = 1.03 * float(np.max(np.hypot(x, y)))
    px = 640
    print(f"{args.grid} level {args.level}: {len(ids):,} cells; a {px} x {px} image; "
          f"median of {args.repeat}")
    print(f"{'view':<10} {'lookup cold':>12} {'gather':>8} {'datashader':>11} "
          f"{'empty (lookup)':>15} {'empty (datashader)':>19}")
    centre = to_polar(np.array([-100.0]), np.array([68.0]))
    for zoom in (1, 10, 100):
        half = r / zoom
        cx, cy = (0.0, 0.0) if zoom == 1 else (float(centre[0][0]), float(centre[1][0]))
        xr, yr = (cx - half, cx + half), (cy - half, cy + half)

        def cold(xr=xr, yr=yr):  # a new view: its inverse projection included
            _pixel_lonlat.cache_clear()
            return PixelLookup(args.grid, args.level, ids)(xr, yr, px, px)

        t_cold, idx = seconds(cold, args.repeat)
        t_gather, img = seconds(lambda idx=idx: np.where(idx >= 0, values[np.maximum(idx, 0)],
                                                         np.nan), args.repeat)
        canvas = ds.Canvas(plot_width=px, plot_height=px, x_range=xr, y_range=yr)
        t_ds, agg = seconds(lambda c=canvas: c.points(df, "x", "y", ds.mean("v")), args.repeat)
        over = idx >= 0  # pixels over a cell of the domain
        empty_ds = float(np.mean(~np.isfinite(agg.values[::-1][over]))) if over.any() else 0
        print(f"{'home' if zoom == 1 else f'{zoom}x':<10} {t_cold:12.3f} {t_gather:8.3f} "
              f"{t_ds:11.3f} {0.0:15.1%} {empty_ds:19.1%}")


if __name__ == "__main__":
    main()
