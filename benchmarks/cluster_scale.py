"""The ArcticDEM stage on dask.distributed: per-task cost, scheduler overhead, what the
driver holds, and the wall time projected for the pan-Arctic mosaic.

The chain of ``levels_speed.py`` (terrain, then every default level in one pass) runs
on a synthetic DEM of 32 m pixels in 2048-pixel chunks, in the same run: on the
threaded scheduler (what a stage uses without ``--scheduler``) and through a Client to
a LocalCluster of 1 and of 2 worker processes with one thread each (what
``--scheduler`` does). The client's task stream gives each task's compute time; the
rest of the wall time, times the workers, is overhead (scheduling, transfers, the
driver's merge and assembly). The projection for the real mosaic (about 40 Gpx at 32 m
north of 50 N) scales the measured task seconds per megapixel to its chunks and
divides them among 64 and 512 workers, and adds the driver's own time scaled the same
way; the driver's memory is the partial statistics it holds per chunk, scaled too.

    python benchmarks/cluster_scale.py [--size 6144]

Target (issue 14): on one machine ``--scheduler`` not slower than without.
"""

import argparse
import pickle
import time
from collections import defaultdict

import dask
from levels_speed import LEVELS, dem  # benchmarks/, the script's folder, is on the path

from entropice.aggregate import clear_cache
from entropice.aggregate import raster as raster_module
from entropice.grids import get_grid
from entropice.sources import arcticdem

MOSAIC_MPX = 40_000.0  # ArcticDEM 32 m north of 50 N, about 40 Gpx
CHUNK = 2048


def run(da, grids, client=None):
    """Wall seconds, per-prefix task seconds (with a client) and the driver's bytes of
    partial statistics per chunk."""
    clear_cache()
    held = []
    merge = raster_module._merge

    def counting(partials, qs):  # what the driver holds before merging
        held.append(sum(len(pickle.dumps(p, protocol=5)) for p in partials))
        return merge(partials, qs)

    raster_module._merge = counting
    try:
        if client is None:
            t0 = time.perf_counter()
            arcticdem.to_levels(da, grids)
            return time.perf_counter() - t0, None, sum(held)
        from distributed import get_task_stream

        client.run(clear_cache)
        with get_task_stream(client) as ts:
            t0 = time.perf_counter()
            arcticdem.to_levels(da, grids)
            wall = time.perf_counter() - t0
        per_prefix = defaultdict(float)
        for task in ts.data:
            name = str(task["key"]).strip("('").split("-")[0]
            for ss in task["startstops"]:
                if ss["action"] == "compute":
                    per_prefix[name] += ss["stop"] - ss["start"]
        return wall, dict(per_prefix), sum(held)
    finally:
        raster_module._merge = merge


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=6144)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    da = dem(args.size, 32.0, CHUNK)
    grids = [get_grid(n, lv) for n, levels in LEVELS.items() for lv in levels]
    for g in grids:
        g.cells()
    arcticdem.to_levels(dem(128, 32.0, 64), grids[:2])  # compile the kernels
    mpx = args.size**2 / 1e6
    chunks = (args.size // CHUNK) ** 2
    print(f"DEM {args.size} x {args.size} ({mpx:.0f} Mpx, {chunks} chunks of {CHUNK}^2), "
          f"arcticdem terrain onto {len(grids)} levels in one pass")
    with dask.config.set(num_workers=2):
        threaded, _, held = run(da, grids)
    print("| scheduler | workers | wall s | task s | task s / Mpx | overhead s | x threaded |")
    print("|---|---|---|---|---|---|---|")
    print(f"| threaded | 2 threads | {threaded:.1f} | - | - | - | 1.00 |", flush=True)
    rates = {}
    for n in (1, 2):
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(lambda: [g.cells() for g in grids])  # the domains, as a stage has them
            client.run(arcticdem.to_levels, dem(128, 32.0, 64), grids[:2])
            wall, per_prefix, _ = run(da, grids, client)
        task = sum(per_prefix.values())
        rates[n] = (task / mpx, wall)
        overhead = wall * n - task
        print(f"| LocalCluster | {n} x 1 thread | {wall:.1f} | {task:.1f} | {task / mpx:.3f} | "
              f"{overhead:.1f} | {wall / threaded:.2f} |", flush=True)
        top = sorted(per_prefix.items(), key=lambda kv: -kv[1])[:4]
        print("|  | tasks: " + ", ".join(f"{k} {v:.1f} s" for k, v in top) + " | | | | | |")
    task_per_mpx, wall2 = rates[2]
    driver = max(wall2 - task_per_mpx * mpx / 2, 0.0)  # not in tasks: the driver's own
    print(f"\n--scheduler on this machine (2 workers) against the threaded scheduler: "
          f"{wall2 / threaded:.2f}x the wall time (target <= 1.0: "
          f"{'met' if wall2 <= threaded * 1.05 else 'missed'}, within 5 % noise)")
    print(f"driver: {driver:.1f} s outside the tasks; partial statistics held "
          f"{held / chunks / 2**20:.1f} MiB per chunk")
    print("\nprojected for the real mosaic (40 Gpx at 32 m, "
          f"{MOSAIC_MPX * 1e6 / CHUNK**2:,.0f} chunks), this run's rates")
    print("| workers | task hours | wall h (tasks / workers + driver) | driver memory GiB |")
    print("|---|---|---|---|")
    scale = MOSAIC_MPX / mpx
    for w in (64, 512):
        hours = task_per_mpx * MOSAIC_MPX / 3600
        wall_h = hours / w + driver * scale / 3600
        print(f"| {w} | {hours:.1f} | {wall_h:.2f} | {held * scale / 2**30:.0f} |")


if __name__ == "__main__":
    main()
