"""Training at scale: time, peak memory and held-out AUC of ``train`` from 50k to 8M rows.

Each size is a cube group of synthetic cells on the H3 level-6 grid (a wedge of the
domain, 5 years, 108 features of ERA5's, ArcticDEM's and AlphaEarth's kinds with gaps,
so 113 design columns): smooth random fields over the Arctic carry the classes (none 85
%, low 10 %, medium 4 %, high 1 %) through a nonlinear rule, and every feature is a noisy
mix of the fields. ``train_group`` runs in its own process with the default config's
settings (search, baselines, permutation importance), and at the sizes up to
``--full-max`` again with every sample in the search, the fits and the scores
(``search_rows``, ``fit_rows``, ``tree_rows``, ``score_rows`` None): the out-of-fold ROC
AUC of each model, the scalable run's minus the full one's, says what the samples cost.

    python benchmarks/train_scale.py [--sizes 5e4 2e5 1e6 8e6] [--full-max 2e5]
        [--workdir DIR]

Target (issue 14): h3/6 (1.66M cells x 5 years, 8.3M rows) in at most 10 minutes of wall
time on 2 idle cores and 3 GB; AUC within 0.005 of the full-data fit.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_scale import measure  # noqa: E402

YEARS = list(range(2019, 2024))
LEVEL = 6
N_FIELDS = 6
KINDS = {"era5": (60, True), "dem": (40, False), "emb_pc": (8, True)}  # count, yearly
GAPS = 5  # ArcticDEM features with missing cells (voids): 5 flag columns


def _fields(lat, lon, rng, n):
    """``n`` smooth random fields over the cells: sums of plane waves of 300-3000 km
    on a polar stereographic plane, scaled to unit variance."""
    r = (90 - lat) * 111.0
    x, y = r * np.cos(np.radians(lon)), r * np.sin(np.radians(lon))
    out = np.zeros((n, len(lat)), np.float32)
    for k in range(n):
        for _ in range(4):
            wl = rng.uniform(300, 3000)
            a = rng.uniform(0, 2 * np.pi)
            out[k] += np.cos((x * np.cos(a) + y * np.sin(a)) * 2 * np.pi / wl
                             + rng.uniform(0, 2 * np.pi)).astype(np.float32)
        out[k] /= out[k].std()
    return out


def make_group(path, n_rows, seed=0):
    """Write a cube at ``path`` with one h3/6 group of about ``n_rows`` labelled
    cell-years; return the number of rows."""
    import xarray as xr

    from entropice.cube import Cube
    from entropice.grids import get_grid

    rng = np.random.default_rng(seed)
    cells = get_grid("h3", LEVEL).cells()
    n_cells = min(cells.sizes["cells"], int(n_rows) // len(YEARS))
    keep = np.sort(np.argsort(cells.lon.values, kind="stable")[:n_cells])  # a wedge
    ds = cells.isel(cells=keep)
    lat, lon = ds.lat.values, ds.lon.values
    base = _fields(lat, lon, rng, N_FIELDS)
    yearly = base[None] + 0.3 * np.stack([_fields(lat, lon, rng, N_FIELDS)
                                          for _ in YEARS])  # (year, field, cell)
    g = (yearly[:, 0] + 0.7 * yearly[:, 1] ** 2 - 0.5 * yearly[:, 2] * yearly[:, 3]
         + rng.normal(0, 0.7, yearly[:, 0].shape))
    cls = np.digitize(g, np.quantile(g, [0.85, 0.95, 0.99])).astype(np.float32)
    ny = len(YEARS)
    area = ds.area_km2.values
    ds = ds.assign_coords(year=YEARS)
    ds["land_fraction"] = ("cells", np.ones(n_cells, np.float32),
                           {"units": "1", "long_name": "land share"})
    ds["rts_class"] = (("year", "cells"), cls, {
        "units": "1", "long_name": "RTS density class", "source": "synthetic",
        "flag_values": [0, 1, 2, 3], "flag_meanings": "none low medium high"})
    ds["rts_count"] = (("year", "cells"), (cls * 2).astype(np.float32),
                       {"units": "1", "long_name": "RTS footprints", "source": "synthetic"})
    ds["rts_area_km2"] = (("year", "cells"), (cls ** 2 * 1e-3 * area).astype(np.float32),
                          {"units": "km2", "long_name": "RTS area", "source": "synthetic"})
    cube = Cube.create(path)
    cube.write_group(ds, "h3", LEVEL, stage="synthetic")
    for kind, (count, is_yearly) in KINDS.items():
        batch = {}
        for j in range(count):
            mix = rng.normal(0, 1, N_FIELDS).astype(np.float32)
            mix *= rng.uniform(0, 1, N_FIELDS) < 0.5  # a few fields each
            if is_yearly:
                v = np.einsum("f,yfc->yc", mix, yearly) + rng.normal(
                    0, 1.0, (ny, n_cells)).astype(np.float32)
                dims = ("year", "cells")
            else:
                v = mix @ base + rng.normal(0, 1.0, n_cells).astype(np.float32)
                if kind == "dem" and j < GAPS:
                    v[rng.random(n_cells) < 0.03] = np.nan
                dims = ("cells",)
            batch[f"{kind}_{j:02d}"] = (dims, v.astype(np.float32), {
                "units": "1", "long_name": f"synthetic {kind} feature", "source": kind})
        cube.add_variables(xr.Dataset(batch, coords={"cell_ids": ds.cell_ids, "year": YEARS}),
                           "h3", LEVEL, stage=f"synthetic-{kind}")
    return n_cells * ny


def train(cube_path, models, full):
    """One ``train_group`` (in this process): the out-of-fold ROC AUC of each model."""
    from entropice import runs
    from entropice.cube import Cube

    section = {"features": ["era5_*", "dem_*", "emb_pc*"]}
    if full:
        section.update(search_rows=None, fit_rows=None, tree_rows=None, score_rows=None)
    ds = Cube(cube_path).read("h3", LEVEL)
    out = runs.train_group(ds, section, store=runs.RunStore(models))
    return {m: v["roc_auc"] for m, v in out["metrics"].items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", type=float, default=[5e4, 2e5, 1e6, 8e6])
    ap.add_argument("--full-max", type=float, default=2e5)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--max-gb", type=float, default=12)
    ap.add_argument("--one", nargs=4, help=argparse.SUPPRESS)  # cube models mode out.json
    args = ap.parse_args()
    if args.one:
        cube, models, mode, out = args.one
        import logging
        logging.basicConfig(filename=Path(out).with_suffix(".log"), level=logging.INFO,
                            format="%(asctime)s %(message)s")
        Path(out).write_text(json.dumps(train(cube, models, mode == "full")))
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="train_scale-"))
    print(f"train at scale: synthetic h3/{LEVEL} groups, {len(YEARS)} years, "
          f"{sum(c for c, _ in KINDS.values())} features (+{GAPS} missing flags), "
          "default [train] search and baselines")
    print(f"{'rows':>9} {'run':>7} {'wall s':>7} {'CPU s':>7} {'peak GB':>8}  "
          "ROC AUC (eSPA+ / RF / HGB / LR)")
    for size in args.sizes:
        cube = work / f"cube-{int(size)}.zarr"
        t0 = time.perf_counter()
        if not cube.exists():
            partial = cube.with_suffix(".partial")
            shutil.rmtree(partial, ignore_errors=True)
            n = make_group(partial, size)
            partial.rename(cube)
        else:
            from entropice.cube import Cube
            n = int(Cube(cube).read("h3", LEVEL).rts_class.count())
        print(f"# {n:,} rows written in {time.perf_counter() - t0:.0f} s", flush=True)
        aucs = {}
        for mode in (["scaled", "full"] if size <= args.full_max else ["scaled"]):
            out = work / f"auc-{int(size)}-{mode}.json"
            cmd = [sys.executable, __file__, "--one", str(cube), str(work / f"models-{mode}"),
                   mode, str(out)]
            wall, cpu, peak, status = measure(cmd, args.max_gb * 1e9)
            head = f"{n:>9,} {mode:>7} {wall:>7.0f} {cpu:>7.0f} {peak / 2**30:>8.2f}  "
            if status != "ok":
                print(head + status, flush=True)
                continue
            aucs[mode] = a = json.loads(out.read_text())
            row = " / ".join(f"{a.get(m, float('nan')):.4f}" for m in
                             ("eSPA+", "RandomForest", "HistGradientBoosting",
                              "LogisticRegression"))
            print(head + row, flush=True)
        if len(aucs) == 2:
            diff = " / ".join(f"{aucs['scaled'][m] - aucs['full'][m]:+.4f}" for m in
                              ("eSPA+", "RandomForest", "HistGradientBoosting",
                               "LogisticRegression"))
            print(f"{'':>9} {'scaled-full':>33}  {diff}", flush=True)


if __name__ == "__main__":
    main()
