"""The ArcticDEM stage on dask.distributed: per-task cost, scheduler overhead, what the
driver holds, and the wall time projected for the pan-Arctic mosaic.

The chain of ``levels_speed.py`` (terrain, then every default level in one pass) runs on
a synthetic DEM of 32 m pixels in 2048-pixel chunks, in the same run: on the threaded
scheduler (what a stage uses without ``--scheduler``) and through a Client to a
LocalCluster of 2 worker processes with one thread each (what ``--scheduler`` does),
alternately (``--reps`` times each: the machine is shared, so each pair is compared),
then once on a LocalCluster of 1 worker. Every process is warmed up alike first: the
grids' domains and the wider ones the levels derive from built, the kernels compiled
(the driver for the threaded runs, each worker for the cluster's). CPU seconds are the
driver's and the workers' together. ``--no-malloc-trim`` starts the workers without the
``MALLOC_TRIM_THRESHOLD_`` that dask's nanny gives them, which turns glibc's adaptive
mmap threshold off: every array over 128 kB is then a fresh mapping, its pages faulted
in anew each time (the threaded process reuses them). The client's task stream gives
each task's compute time; the rest of the wall time, times the workers, is overhead
(scheduling, transfers, the driver's work, workers idle at the end). The projection for
the real mosaic (about 40 Gpx at 32 m north of 50 N) scales the measured task seconds
per megapixel to its chunks and divides them among 64 and 512 workers. The driver folds
each chunk's statistics in as it comes, beside the tasks, so it bounds the wall time
only where it folds more slowly than chunks arrive; its assembly of the datasets at the
end is scaled by the pixels and added. It holds the points of cells still split between
chunks folded and chunks to come: a row of chunks at most, so that memory scales with
the mosaic's width in chunks, not with their number.

    python benchmarks/cluster_scale.py [--size 6144] [--reps 2] [--no-malloc-trim]

Target (issue 14): on one machine ``--scheduler`` not slower than without.
"""

import argparse
import statistics
import time
from collections import defaultdict

import dask
from levels_speed import LEVELS, build_domains, dem  # benchmarks/ is on the path

from entropice.aggregate import clear_cache
from entropice.aggregate import raster as raster_module
from entropice.grids import get_grid
from entropice.sources import arcticdem

MOSAIC_MPX = 40_000.0  # ArcticDEM 32 m north of 50 N, about 40 Gpx
CHUNK = 2048


def warm_up(grids):
    """What a process does once, before its first chunk: the domains
    (``levels_speed.build_domains``), and the kernels compiled, on a small DEM of every
    level."""
    build_domains(grids)
    arcticdem.to_levels(dem(256, 32.0, 64), grids)


def run(da, grids, client=None):
    """Wall seconds, CPU seconds (the driver's and, with a client, the workers'),
    per-prefix task seconds (with a client), the most bytes of split cells' points the
    driver held at once and its seconds folding chunks in and assembling the
    datasets."""
    clear_cache()
    held, fold_s = [0], [0.0, 0.0]
    add = raster_module._Fold.add

    def counting(self, touched, pixels, partials):
        t0 = time.perf_counter()
        add(self, touched, pixels, partials)
        fold_s[0] += time.perf_counter() - t0
        held.append(sum(f.held_points for f in folds) * 16)  # a value and a weight

    folds = []
    init = raster_module._Fold.__init__

    def tracked(self, *args, **kwargs):
        init(self, *args, **kwargs)
        folds.append(self)

    assemble = raster_module._assemble

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        out = assemble(*args, **kwargs)
        fold_s[1] += time.perf_counter() - t0
        return out

    raster_module._Fold.add, raster_module._Fold.__init__ = counting, tracked
    raster_module._assemble = timed
    try:
        if client is None:
            c0, t0 = time.process_time(), time.perf_counter()
            with dask.config.set(scheduler="threads", num_workers=2):
                arcticdem.to_levels(da, grids)
            return (time.perf_counter() - t0, time.process_time() - c0, None, max(held),
                    fold_s)
        from distributed import get_task_stream

        client.run(clear_cache)
        workers0 = client.run(time.process_time)
        c0 = time.process_time()
        with get_task_stream(client) as ts:
            t0 = time.perf_counter()
            arcticdem.to_levels(da, grids)
            wall = time.perf_counter() - t0
        cpu = time.process_time() - c0 + sum(v - workers0[w] for w, v in
                                             client.run(time.process_time).items())
        per_prefix = defaultdict(float)
        for task in ts.data:
            name = str(task["key"]).strip("('").split("-")[0]
            for ss in task["startstops"]:
                if ss["action"] == "compute":
                    per_prefix[name] += ss["stop"] - ss["start"]
        return wall, cpu, dict(per_prefix), max(held), fold_s
    finally:
        raster_module._Fold.add, raster_module._Fold.__init__ = add, init
        raster_module._assemble = assemble


def cluster_row(n, wall, cpu, per_prefix, mpx, threaded):
    task = sum(per_prefix.values())
    top = sorted(per_prefix.items(), key=lambda kv: -kv[1])[:4]
    return (f"| LocalCluster | {n} x 1 thread | {wall:.1f} | {cpu:.1f} | {task:.1f} | "
            f"{task / mpx:.3f} | {wall * n - task:.1f} | {wall / threaded:.2f} |\n"
            "|  | tasks: " + ", ".join(f"{k} {v:.1f} s" for k, v in top) + " | | | | | | |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=6144)
    parser.add_argument("--reps", type=int, default=2,
                        help="threaded and 2-worker runs, alternated, each this many times")
    parser.add_argument("--no-malloc-trim", action="store_true",
                        help="workers started without the MALLOC_TRIM_THRESHOLD_ that dask's "
                        "nanny sets (distributed.nanny.pre-spawn-environ)")
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    if args.no_malloc_trim:  # glibc's adaptive mmap threshold, as in the threaded process
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    da = dem(args.size, 32.0, CHUNK)
    grids = [get_grid(n, lv) for n, levels in LEVELS.items() for lv in levels]
    warm_up(grids)
    mpx = args.size**2 / 1e6
    chunks = (args.size // CHUNK) ** 2
    print(f"DEM {args.size} x {args.size} ({mpx:.0f} Mpx, {chunks} chunks of {CHUNK}^2), "
          f"arcticdem terrain onto {len(grids)} levels in one pass")
    print("| scheduler | workers | wall s | CPU s | task s | task s / Mpx | overhead s | "
          "x threaded |")
    print("|---|---|---|---|---|---|---|---|")
    ratios, cpu_ratios = [], []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(warm_up, grids)
        for _ in range(args.reps):  # alternately, so that both see the machine's load
            threaded, threaded_cpu, _, held, (fold_s, assemble_s) = run(da, grids)
            print(f"| threaded | 2 threads | {threaded:.1f} | {threaded_cpu:.1f} | - | - | - "
                  "| 1.00 |", flush=True)
            wall2, cpu2, per_prefix2, _, _ = run(da, grids, client)
            print(cluster_row(2, wall2, cpu2, per_prefix2, mpx, threaded), flush=True)
            ratios.append(wall2 / threaded)
            cpu_ratios.append(cpu2 / threaded_cpu)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(warm_up, grids)
        wall1, cpu1, per_prefix1, _, _ = run(da, grids, client)
        print(cluster_row(1, wall1, cpu1, per_prefix1, mpx, threaded), flush=True)
    task_per_mpx = sum(per_prefix2.values()) / mpx
    idle = max(wall2 - task_per_mpx * mpx / 2, 0.0)  # not in tasks: the driver's, idle
    ratio = statistics.median(ratios)
    print(f"\n--scheduler on this machine (2 workers) against the threaded scheduler: "
          f"{ratio:.2f}x the wall time (median of {len(ratios)} pairs: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}; target <= 1.0: "
          f"{'met' if ratio <= 1.05 else 'missed'}, within 5 % noise); "
          f"{statistics.median(cpu_ratios):.2f}x the CPU time")
    width = args.size // CHUNK
    print(f"driver: {idle:.1f} s of the 2 workers' wall time outside the tasks; folding "
          f"{fold_s / chunks:.3f} s per chunk, assembling {assemble_s:.1f} s; split cells' "
          f"points held at most {held / 2**20:.1f} MiB "
          f"({held / width / 2**20:.1f} MiB per chunk of a row)")
    mosaic_chunks = MOSAIC_MPX * 1e6 / CHUNK**2
    print(f"\nprojected for the real mosaic (40 Gpx at 32 m, {mosaic_chunks:,.0f} chunks, "
          f"rows of {mosaic_chunks**0.5:.0f}), this run's rates")
    print("| workers | task hours | wall h (tasks / workers, or folding if slower, + assembly) | "
          "split cells held by the driver GiB |")
    print("|---|---|---|---|")
    scale = MOSAIC_MPX / mpx
    for w in (64, 512):
        hours = task_per_mpx * MOSAIC_MPX / 3600
        # the driver folds chunks in as they come, beside the tasks: it limits the wall
        # time only if it is slower than they arrive; the rest of its time adds
        folding = fold_s / chunks * mosaic_chunks / 3600
        wall_h = max(hours / w, folding) + assemble_s * scale / 3600
        print(f"| {w} | {hours:.1f} | {wall_h:.2f} | "
              f"{held / width * mosaic_chunks**0.5 / 2**30:.1f} |")


if __name__ == "__main__":
    main()
