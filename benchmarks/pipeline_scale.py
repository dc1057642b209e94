"""Every pipeline stage at the real levels on the demo's raw data: wall time, CPU time
and peak memory per stage, at two numbers of years.

For each group (default h3/6 and healpix/10, 1.66M and 1.47M cells) and each number of
years (default 5 and 20) the demo's raw files are written for those years into a
scratch directory, and every stage runs as its own process (``python -m entropice
<stage>``) on a cube holding that group only. A stage whose memory passes ``--max-gb``
is killed and reported as such. ``predict`` uses a model trained (with a small search)
on the grid's coarsest demo level, so that it measures prediction, not training.

    python benchmarks/pipeline_scale.py [--groups h3/6 healpix/10] [--years 5 20]
        [--stages grids labels era5 arcticdem alphaearth predict] [--max-gb 10]

Target (issue 14): peak memory of every stage at most 3 GB, and the same at 5 and 20
years; time at most in proportion to the years.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STAGES = ["grids", "labels", "era5", "arcticdem", "alphaearth", "predict"]
COARSE = {"h3": 3, "healpix": 6}  # where predict's model is trained


def rss(pid):
    """Memory of a process (its high-water mark, VmHWM: exact between samples) and the
    resident memory of its children, in bytes."""
    total = 0
    for p in [pid, *_children(pid)]:
        key = "VmHWM" if p == pid else "VmRSS"
        try:
            with open(f"/proc/{p}/status") as f:
                total += int(next(ln for ln in f if ln.startswith(key)).split()[1]) * 1024
        except (OSError, StopIteration):
            pass
    return total


def _children(pid):
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(k) for k in kids] + [g for k in kids for g in _children(int(k))]


def measure(cmd, max_bytes):
    """Run ``cmd``; its wall time, CPU time, peak RSS and how it ended."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, killed = [0], [False]

    def watch():
        while proc.poll() is None:
            now = rss(proc.pid)
            peak[0] = max(peak[0], now)
            if now > max_bytes:
                killed[0] = True
                proc.kill()
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    watcher.join()
    err = proc.stderr.read()
    wall = time.perf_counter() - t0
    # not ru_maxrss: it survives exec, so a child would report this process's size
    peak_bytes = peak[0]
    if killed[0]:
        state = f"killed > {max_bytes / 1e9:.0f} GB"
    elif proc.returncode:
        state = "failed: " + (err.strip().splitlines() or ["?"])[-1][:120]
    else:
        state = "ok"
    return wall, usage.ru_utime + usage.ru_stime, peak_bytes, state


def raw_data(root, n_years):
    """The demo's raw files for the last ``n_years`` label years (and the ERA5 years
    their trends need)."""
    from entropice import demo

    last = demo.LABEL_YEARS[-1]
    demo.LABEL_YEARS = list(range(last - n_years + 1, last + 1))
    demo.YEARS = list(range(demo.LABEL_YEARS[0] - 9, last + 1))
    demo.EMBEDDING_YEARS = demo.LABEL_YEARS
    return demo.make_raw(root / "raw", root / "cube.zarr")


def config_for(raw_config, root, grid, level, models):
    text = raw_config.read_text()
    head, _, rest = text.partition("[grids]")
    rest = rest.split("\n", 3)[3]  # the h3 = and healpix = lines
    levels = {g: [] for g in ("h3", "healpix")}
    levels[grid].append(level)
    cfg = head + f"[grids]\nh3 = {levels['h3']}\nhealpix = {levels['healpix']}\n" + rest
    cfg = cfg.replace(str((root / 'cube.zarr').resolve()), str(root / f"{grid}{level}.zarr"))
    cfg = cfg.replace(str((root / 'models').resolve()), str(models))
    path = raw_config.parent / f"{grid}{level}.toml"
    path.write_text(cfg)
    return path


def train_coarse(raw_config, root, grid, models):
    """A run on the grid's coarsest demo level, made current for every level of it."""
    from entropice.grids import get_grid
    from entropice.pipeline import load_config, run_all
    from entropice.runs import RunStore

    level = COARSE[grid]
    cfg = load_config(config_for(raw_config, root, grid, level, models))
    cfg["train"].update(n_folds=2, inner_folds=2, baselines=[], permutation_repeats=1,
                        grid={"n_boxes": [20], "eps_C": [1.0], "eps_W": [1.0],
                              "class_weight": ["balanced"]})
    run_all(cfg, quiet=True)
    store = RunStore(models)
    return store, store.entry(get_grid(grid, level))["run_id"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", nargs="+", default=["h3/6", "healpix/10"])
    ap.add_argument("--years", nargs="+", type=int, default=[5, 20])
    ap.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES + ["train"])
    ap.add_argument("--max-gb", type=float, default=10.0)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    from entropice.grids import get_grid

    rows = []
    base = args.workdir or Path(tempfile.mkdtemp(prefix="entropice-scale-"))
    print(f"{os.cpu_count()} cores; scratch {base}", flush=True)
    print(f"{'stage':<11} {'group':<11} {'years':>5} {'wall s':>8} {'CPU s':>8} "
          f"{'peak GB':>8}  state", flush=True)
    for n_years in args.years:
        root = base / f"years{n_years}"
        raw_config = raw_data(root, n_years)
        models = root / "models"
        for group in args.groups:
            grid, level = group.split("/")
            level = int(level)
            cells = len(get_grid(grid, level).cells(50.0).cell_ids)
            config = config_for(raw_config, root, grid, level, models)
            for stage in args.stages:
                if stage == "predict":
                    store, run_id = train_coarse(raw_config, root, grid, models)
                    store.set_current(get_grid(grid, level), run_id)
                cmd = [sys.executable, "-m", "entropice", stage, "--config", str(config),
                       "--quiet", "--force"]
                wall, cpu, peak, state = measure(cmd, args.max_gb * 1e9)
                rows.append((stage, group, n_years, wall, cpu, peak, state))
                print(f"{stage:<11} {group:<11} {n_years:>5} {wall:8.1f} {cpu:8.1f} "
                      f"{peak / 1e9:8.2f}  {state} ({cells:,} cells)", flush=True)
    worst = max(r[5] for r in rows if r[6] == "ok") if rows else 0
    print(f"\nlargest peak of a finished stage: {worst / 1e9:.2f} GB (target <= 3 GB)")
    for stage in args.stages:
        for group in args.groups:
            by_years = {r[2]: r for r in rows if r[0] == stage and r[1] == group
                        and r[6] == "ok"}
            if len(by_years) > 1:
                lo, hi = min(by_years), max(by_years)
                print(f"{stage:<11} {group:<11} at {hi} years / at {lo} years: peak "
                      f"{by_years[hi][5] / by_years[lo][5]:.2f}, CPU time "
                      f"{by_years[hi][4] / by_years[lo][4]:.2f} (years "
                      f"{hi / lo:.2f})")


if __name__ == "__main__":
    main()
