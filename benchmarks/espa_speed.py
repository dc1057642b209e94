"""Speed and memory of an eSPA+ fit beside Lloyd's k-means, in the same run.

For T in {1e4, 1e5, 1e6} samples, D = 64 features, K = 20 boxes, float64 and float32,
prints the seconds per iteration of ESPAClassifier (eps_C = eps_W = 1, all cores) and of
sklearn.cluster.KMeans(algorithm="lloyd") from the same initial boxes, and their ratio.
Seconds per iteration are the slope of fit time over iterations (fits of a few and of
more iterations, best of three), so fixed costs such as input checks do not count;
the full fit time is printed too. Then the growth of that time from 1e5 to 1e6 samples,
and the peak memory of a fit (in a fresh process) over the size of X. Last, the cost of
the probabilistic read-out: models fitted (same settings, 100 iterations) on 50,000 of
T = 1e6 float64 samples, with ``REFERENCE`` (hard: the nearest box's label
frequencies), the default (soft, one member) and soft with n_estimators=4, then
predict_proba on all 1e6 samples (best of 5, the models interleaved, after a warm-up
call); seconds and the ratio to the hard read-out.

    python benchmarks/espa_speed.py [--sizes 1e4 1e5 1e6]

Targets (2 cores): eSPA/KMeans <= 1.25 at T = 1e6; fit time 1e5 -> 1e6 at most 12x;
peak memory of a fit at most 2.5x the size of X; the default predict_proba at most 2x
the hard (reference) one at T = 1e6.
"""

import argparse
import json
import subprocess
import sys
import time

import numpy as np

D, K = 64, 20
ITERS = {10_000: (3, 63), 100_000: (3, 33)}  # more iterations where one is short
DEFAULT_ITERS = (3, 13)
READOUT_T, READOUT_FIT_T = 1_000_000, 50_000


def data(n, dtype, seed=0):
    """Gaussian noise with random labels: the boxes keep moving for many iterations.

    Written straight into an array of ``dtype``, so making it allocates nothing more.
    """
    rng = np.random.default_rng(seed)
    X = np.empty((n, D), dtype=dtype)
    rng.standard_normal(dtype=dtype, out=X)
    y = rng.integers(0, 3, n)
    return X, y, X[rng.choice(n, K, replace=False)].astype(np.float64)


def espa(init, iters):
    from entropice.espa import ESPAClassifier

    return ESPAClassifier(K, eps_C=1.0, eps_W=1.0, init=init, n_restarts=1, max_iter=iters,
                          tol=0.0, n_jobs=-1)


def kmeans(init, iters):
    from sklearn.cluster import KMeans

    return KMeans(K, init=init, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd")


def timed_fit(make, X, y, init, iters, repeats=3):
    """Best wall time of a fit and its iteration count."""
    best = np.inf
    for _ in range(repeats):
        model = make(init, iters)
        t0 = time.perf_counter()
        model.fit(X, y)
        best = min(best, time.perf_counter() - t0)
    return best, model.n_iter_


def per_iteration(make, X, y, init):
    iters = ITERS.get(len(X), DEFAULT_ITERS)
    (t1, n1), (t2, n2) = (timed_fit(make, X, y, init, i, repeats=5) for i in iters)
    return (t2 - t1) / max(n2 - n1, 1), t2, n2


def peak_memory(n, dtype):
    """Run one fit in a fresh process; return the size of X and the peak RSS growth.

    The peak is the kernel's high-water mark (VmHWM), reset just before the fit by
    writing 5 to /proc/self/clear_refs, so imports and compilation do not count.
    """
    code = f"""
import json, sys
sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r})
from espa_speed import data, espa
X, y, init = data({n}, {dtype!r})
espa(init, 2).fit(X[:2000], y[:2000])  # compile outside the measurement
def status(key):
    with open('/proc/self/status') as f:
        line = next(l for l in f if l.startswith(key))
    return int(line.split()[1]) * 1024
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')
before = status('VmRSS')
espa(init, 5).fit(X, y)
print(json.dumps({{"x_bytes": X.nbytes, "before": before, "peak": status('VmHWM')}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["x_bytes"], max(r["peak"] - r["before"], 0)


def readout_speed(repeats=5):
    """predict_proba seconds (best of ``repeats``) of the hard, soft and 4-member soft
    read-outs on READOUT_T float64 samples, the models fitted on READOUT_FIT_T of them."""
    from entropice.espa import REFERENCE

    X, y, init = data(READOUT_T, "float64")
    fitted = {
        "hard (REFERENCE)": espa(init, 100).set_params(**REFERENCE),
        "soft (default)": espa(init, 100),
        "soft, n_estimators=4": espa(init, 100).set_params(n_estimators=4),
    }
    for model in fitted.values():
        model.fit(X[:READOUT_FIT_T], y[:READOUT_FIT_T])
        model.predict_proba(X)  # warm-up
    best = dict.fromkeys(fitted, np.inf)
    for _ in range(repeats):
        for label, model in fitted.items():
            t0 = time.perf_counter()
            model.predict_proba(X)
            best[label] = min(best[label], time.perf_counter() - t0)
    return fitted, best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e5, 1e6])
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes]

    X, y, init = data(5000, "float64")
    for dtype in ("float64", "float32"):  # compile the kernels before timing
        espa(init, 2).fit(X.astype(dtype), y)

    print(f"D = {D}, K = {K}; seconds per iteration: the slope of fit time from 3 to 13 "
          "iterations (to 33 at T = 1e5, 63 at T = 1e4), best of 5")
    print("| T | dtype | eSPA+ s/iter | KMeans s/iter | ratio | eSPA+ fit s | KMeans fit s |")
    print("|---|---|---|---|---|---|---|")
    fit_times = {}
    for dtype in ("float64", "float32"):
        for n in sizes:
            X, y, init = data(n, dtype)
            e_it, e_fit, e_n = per_iteration(espa, X, y, init)
            k_it, k_fit, k_n = per_iteration(kmeans, X, y, init)
            fit_times[dtype, n] = e_it
            print(f"| {n:.0e} | {dtype} | {e_it:.4f} | {k_it:.4f} | {e_it / k_it:.2f} | "
                  f"{e_fit:.3f} ({e_n} it) | {k_fit:.3f} ({k_n} it) |", flush=True)
            del X
    print()
    for dtype in ("float64", "float32"):
        if (dtype, 100_000) in fit_times and (dtype, 1_000_000) in fit_times:
            growth = fit_times[dtype, 1_000_000] / fit_times[dtype, 100_000]
            print(f"fit time per iteration, growth 1e5 -> 1e6 ({dtype}): "
                  f"{growth:.1f}x (target <= 12x)")
    n = max(sizes)
    for dtype in ("float64", "float32"):
        x_bytes, extra = peak_memory(n, dtype)
        print(f"peak memory of a fit, T = {n:.0e} {dtype}: X {x_bytes / 2**20:.0f} MiB + "
              f"{extra / 2**20:.0f} MiB during the fit = {(x_bytes + extra) / x_bytes:.2f}x "
              "the size of X (target <= 2.5x)")

    print()
    print(f"predict_proba on T = {READOUT_T:.0e} float64 samples, models fitted on "
          f"{READOUT_FIT_T:,} of them; best of 5, interleaved")
    print("| read-out | boxes | temperature | seconds | ratio to hard |")
    print("|---|---|---|---|---|")
    fitted, secs = readout_speed()
    hard = secs["hard (REFERENCE)"]
    for label, model in fitted.items():
        taus = ", ".join(f"{m.temperature_:.3g}" for m in model.estimators_)
        boxes = ", ".join(str(m.boxes_.shape[0]) for m in model.estimators_)
        print(f"| {label} | {boxes} | {taus} | {secs[label]:.3f} | "
              f"{secs[label] / hard:.2f} |")
    ratio = secs["soft (default)"] / hard
    print(f"default predict_proba / hard: {ratio:.2f}x (target <= 2x): "
          f"{'met' if ratio <= 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
