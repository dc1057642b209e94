"""The cross-validation that makes a run: eSPA+ and the baselines on one cube group,
nested spatial folds, the run stored in a :class:`RunStore`; and a run's predictions for
every cell.

Nested: the outer spatial folds report the metrics, the inner folds (blocks of the same
ancestor level, inside each outer training fold) choose eSPA+'s hyper-parameters.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import warnings
import weakref

import numpy as np
import pandas as pd
import xarray as xr

from ..cube import config_hash
from ..design import cell_features, design_rows
from ..grids import grid_of
from ..parts import concat_parts
from .estimators import as_rows, ask, baseline, espa_search, fit_sample
from .folds import spatial_folds, strata, stratified_samples
from .metrics import evaluate, macro_roc_auc, reliability_curve, triage_curve
from .model import StoredModel, novelty_reference
from .settings import train_settings
from .store import RunStore

log = logging.getLogger("entropice")

def fold_levels(grid, s) -> tuple[int, int]:
    """The ancestor levels whose cells make the outer spatial folds' blocks and the
    inner ones (one level finer, which the searches hold out in turn)."""
    anc = grid.fold_level() if s["ancestor_level"] is None else int(s["ancestor_level"])
    return anc, min(grid.level, anc + 1)


def _samples(rows, stratum, s):
    """The samples of the training rows ``rows`` (``stratum``: theirs, from
    :func:`~entropice.runs.folds.strata`) that models are fitted on (at most
    ``fit_rows``) and searched on (at most ``search_rows``), each stratified by inner
    block and class; drawn once per training fold, for every model."""
    fit, search = stratified_samples(stratum, [s["fit_rows"], s["search_rows"]],
                                     s["random_state"])
    return rows[fit], rows[search]


def _read_samples(design, blocks, samples):
    """The sample sets ``samples`` (a key, such as a fold, to the rows ``(fit, search)``
    of :func:`_samples`) read from the group in one pass: for each key its features,
    labels and inner blocks, and where its sets lie among them (the features one array
    shared by every key)."""
    need = np.unique(np.concatenate([np.concatenate(pair) for pair in samples.values()]))
    X, y, b = design.read(need), design.y[need], blocks[need]
    return {k: (X, y, b, np.searchsorted(need, fit), np.searchsorted(need, search))
            for k, (fit, search) in samples.items()}


def _predict_proba(models, X, labels) -> dict:
    """The probabilities of each of ``models`` (a name to a fitted pipeline; columns in
    ``labels`` order) for the rows of ``X``, a chunk of at most 2^23 values (64 MB in
    float64) at a time, so that no float64 copy of ``X`` is made. Pipelines that learned
    the same imputation and scaling (fitted on the same samples) transform a chunk once
    between them: :class:`~sklearn.pipeline.Pipeline`'s own steps, so their answers
    are those of ``predict_proba``."""
    out = {name: np.zeros((len(X), len(labels))) for name in models}
    cols = {name: np.searchsorted(labels, m.classes_) for name, m in models.items()}
    keys = {name: _preparation(m) for name, m in models.items()}
    step = max(1, 2**23 // max(1, X.shape[1]))
    for a in range(0, len(X), step):
        chunk, prepared = as_rows(X[a:a + step]), {}
        for name, m in models.items():
            if keys[name] not in prepared:
                prepared[keys[name]] = m[:-1].transform(chunk)
            out[name][a:a + step, cols[name]] = ask(m[-1], prepared[keys[name]])
    return out


def _preparation(pipeline) -> bytes:
    """What a pipeline's steps before the model learned (equal for equal transforms)."""
    return b"".join(np.ascontiguousarray(getattr(step, a)).tobytes()
                    for _, step in pipeline.steps[:-1]
                    for a in ("statistics_", "mean_", "scale_") if hasattr(step, a))


class _OutOfFold:
    """Each model's out-of-fold probabilities, kept in a scratch directory as each test
    chunk is predicted (memory holds a chunk's, not every model's for the group: 256 MB
    each at 8M samples) and taken back a model at a time."""

    def __init__(self, n, n_labels):
        import tempfile

        self.shape = (n, n_labels)
        self.dir = tempfile.TemporaryDirectory(prefix="entropice-oof-")
        self.parts = {}
        self.written = 0

    def add(self, name, rows, proba):
        """A model's probabilities of samples ``rows``."""
        self.written += 1
        path = f"{self.dir.name}/{self.written}.npy"
        np.save(path, proba)
        self.parts.setdefault(name, []).append((rows, path))

    def pop(self, name) -> np.ndarray:
        """A model's probabilities, its parts then deleted."""
        out = np.zeros(self.shape)
        for rows, path in self.parts.pop(name):
            out[rows] = np.load(path)
            os.remove(path)
        return out


PERMUTATION_ROWS = 1000
"""Test samples of each outer fold that permutation importance is measured on."""
TEST_ROWS = 2**20
"""Samples read and predicted at a time, a slab of cells with every year of them (474
MB of float32 features at 113 columns), so that memory holds a slab of the group,
however large the group."""


def _slabs(ci, max_rows):
    """The samples (rows, sorted) of consecutive slabs of cells (``ci``: each sample's
    cell position), each of at most ``max_rows`` samples unless one cell has more."""
    counts = np.bincount(ci)
    order = np.argsort(ci, kind="stable")
    ends = np.cumsum(counts)
    start = 0
    while start < len(ci):
        # the last cell whose samples still fit, at least one cell
        stop = max(int(np.searchsorted(ends, start + max_rows, side="right")),
                   int(np.searchsorted(ends, start, side="right")) + 1)
        end = int(ends[stop - 1])
        yield np.sort(order[start:end])
        start = end


def _fit_folds(makers, sample, folds, s, quiet, where):
    """Every model fitted on every outer training fold's samples (``sample``: from
    :func:`runs.cv._read_samples`), a model at a time: fold to name to (model, search)."""
    from tqdm.auto import tqdm

    fitted = {k: {} for k in np.unique(folds)}
    seconds = {}
    for name, make in makers.items():
        t0 = time.perf_counter()
        for k in _progress(fitted, quiet, f"{where} {name}"):
            progress = None if quiet else functools.partial(
                tqdm, desc=f"{where} {name} fold {k}", leave=False)
            fitted[k][name] = fit_sample(make, sample[k], s, progress)
        seconds[name] = time.perf_counter() - t0
    log.info("%s: fitted on %d folds in %s", where, len(fitted),
             ", ".join(f"{n} {sec:.0f} s" for n, sec in seconds.items()))
    return fitted


def _oof(fitted, design, scored, folds, labels, s, quiet, where):
    """Every model's out-of-fold probabilities of the samples ``scored`` (columns in
    ``labels`` order), the parameters each fold's search chose (empty for models
    without a search), and the relevance records (each fold's permutation importance on
    its scored samples, and for eSPA+ the feature weights of every ensemble member);
    ``fitted`` from :func:`_fit_folds`.

    The scored samples are read once, a slab of cells (``TEST_ROWS`` samples) at a
    time, and each asked of its own fold's models, so that memory holds a slab of the
    group's features, not the group; the samples of each fold's permutation importance
    are kept aside as they pass.
    """
    warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
    y, names, folds = design.y[scored], design.columns, folds[scored]
    names_of = list(next(iter(fitted.values())))
    seconds = dict.fromkeys(names_of, 0.0)
    proba = _OutOfFold(len(scored), len(labels))
    tests = {k: np.flatnonzero(folds == k) for k in fitted}  # positions in ``scored``
    kept = {}
    for k, te in tests.items():  # each fold's permutation samples
        sel, _ = _permutation_rows(len(te), PERMUTATION_ROWS, s["random_state"])
        kept[k] = (te[sel], np.empty((len(sel), len(names)), dtype=design.dtype))
    reading = 0.0
    slabs = list(_slabs(design.ci[scored], TEST_ROWS))
    for at in _progress(slabs, quiet, f"{where} test slabs"):
        t0 = time.perf_counter()
        X = design.read(scored[at])
        reading += time.perf_counter() - t0
        fold = folds[at]
        for k, models in fitted.items():
            here = np.flatnonzero(fold == k)
            if not len(here):
                continue
            aside, values = kept[k]
            hit = np.isin(at[here], aside)
            values[np.searchsorted(aside, at[here][hit])] = X[here[hit]]
            t0 = time.perf_counter()
            asked = _predict_proba({n: m for n, (m, _) in models.items()}, X[here], labels)
            share = (time.perf_counter() - t0) / len(models)
            for name, p in asked.items():
                proba.add(name, at[here], p)
                seconds[name] += share
        del X
    chosen = {name: [] for name in names_of}
    relevance = []
    for k, models in fitted.items():
        aside, values = kept[k]
        for name, (model, search) in models.items():
            t0 = time.perf_counter()
            if search is not None:
                chosen[name].append(_espa_params(model))
            _, rng = _permutation_rows(len(tests[k]), PERMUTATION_ROWS, s["random_state"])
            relevance.extend({"model": name, "fold": int(k), "member": -1,
                              "measure": "permutation", "feature": f, "value": v}
                             for f, v in _permutation_drops(
                                 model, as_rows(values), y[aside], labels,
                                 feature_groups(names), s["permutation_repeats"],
                                 rng).items())
            relevance.extend({"model": name, **r} for r in _weights(model, int(k), names))
            seconds[name] += time.perf_counter() - t0
    log.info("%s: %d scored samples read from the group in %.0f s; asked and permuted "
             "in %s", where, len(scored), reading,
             ", ".join(f"{n} {sec:.0f} s" for n, sec in seconds.items()))
    order = {name: i for i, name in enumerate(names_of)}  # the records model by model
    relevance.sort(key=lambda r: order[r["model"]])
    return proba, chosen, relevance


def _release_workers():
    """Stop the searches' idle worker processes (joblib's reusable process pool): each
    holds the libraries and its last samples (about 450 MB), memory the test pass needs
    more."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)


def _weights(model, fold, names):
    """Records of eSPA+'s feature weights, one per ensemble member (none for others)."""
    est = model.named_steps["model"]
    if not hasattr(est, "feature_weights_"):
        return []
    return [{"fold": fold, "member": i, "measure": "weight", "feature": n, "value": float(w)}
            for i, m in enumerate(est.estimators_) for n, w in zip(names, m.feature_weights_)]


def _permutation_rows(n, max_rows, seed):
    """The test samples (of ``n``) permutation importance is measured on, at most
    ``max_rows`` drawn with ``seed``, and the generator that then shuffles them."""
    rng = np.random.default_rng(seed)
    rows = np.arange(n)
    if n > max_rows:
        rows = np.sort(rng.choice(n, max_rows, replace=False))
    return rows, rng


def permutation_importance(model, X, y, labels, groups, repeats=2, seed=0, max_rows=1000,
                           rows=None):
    """Drop of macro ROC AUC when a feature (with its missing flag) is shuffled.

    ``groups`` maps a feature name to its columns; measured on at most ``max_rows`` of
    the test samples ``rows`` (all samples by default), ``repeats`` shuffles each.
    Model-agnostic: it checks eSPA+'s weights. All features' shuffled copies go to the
    model in one call per repeat.
    """
    rows = np.arange(len(y)) if rows is None else np.asarray(rows)
    sel, rng = _permutation_rows(len(rows), max_rows, seed)
    return _permutation_drops(model, as_rows(X, rows[sel]), np.asarray(y)[rows[sel]], labels,
                              groups, repeats, rng)


def _permutation_drops(model, X, y, labels, groups, repeats, rng):
    """:func:`permutation_importance` on the samples ``X``, shuffled by ``rng``."""
    cols = np.searchsorted(labels, model.classes_)

    def auc(p_model):
        p = np.zeros((len(y), len(labels)))
        p[:, cols] = p_model
        return macro_roc_auc(y, p, labels)

    base = auc(ask(model, X))
    drops = np.zeros((repeats, len(groups)))
    for r in range(repeats):
        stacked = np.tile(X, (len(groups), 1))
        for g, idx in enumerate(groups.values()):
            block = stacked[g * len(y):(g + 1) * len(y)]
            block[:, idx] = X[rng.permutation(len(y))][:, idx]
        proba = ask(model, stacked)
        for g in range(len(groups)):
            drops[r, g] = base - auc(proba[g * len(y):(g + 1) * len(y)])
    return dict(zip(groups, drops.mean(axis=0).tolist()))


def feature_groups(columns) -> dict[str, list[int]]:
    """Each feature and its missing flag, by the feature's name."""
    columns = list(columns)
    groups = {}
    for i, c in enumerate(columns):
        groups.setdefault(c.removesuffix("_missing"), []).append(i)
    return groups


def _class_density(y, area, land, labels, where=None) -> np.ndarray:
    """The RTS density of each class of ``labels``: the RTS area of its samples (those
    ``where`` marks, by default all) over their land area, in km2 of RTS per km2 of land
    (0 for a class without land); ``area`` and ``land`` without NaN."""
    out = np.zeros(len(labels))
    for k, lab in enumerate(labels):
        m = (y == lab) if where is None else where & (y == lab)
        out[k] = area[m].sum() / land[m].sum() if land[m].sum() > 0 else 0.0
    return out


def class_density(y, area, land, labels) -> np.ndarray:
    """The RTS density (area over land) of each class of ``labels`` on the samples
    (their labels ``y``, RTS area and land area in km2; a NaN counts 0), at most 1 (RTS
    mapped on cells of little land can sum to more than the land): what a run keeps
    (``class_density`` of ``model.json``) and its predictions' ``pred_density`` weighs
    the class probabilities with."""
    return np.minimum(_class_density(y, np.nan_to_num(area), np.nan_to_num(land), labels),
                      1.0)


def _fold_class_density(y, area, land, folds, labels, rows) -> np.ndarray:
    """For each sample of ``rows``, the RTS density (area over land) of each class,
    measured on the other folds' cells (all of them): a model's probabilities times it
    are its expected density, the score that finds the most RTS area in the least
    land."""
    area, land = np.nan_to_num(area), np.nan_to_num(land)
    fold_ids = np.unique(folds)
    table = np.array([_class_density(y, area, land, labels, folds != f)
                      for f in fold_ids]).reshape(len(fold_ids), len(labels))
    return table[np.searchsorted(fold_ids, folds[rows])]


def _espa_params(model) -> dict:
    """The hyper-parameters an outer fold's search chose."""
    est = model.named_steps["model"]
    return {k: getattr(est, k) for k in ("n_boxes", "eps_C", "eps_W", "class_weight")}


def _progress(items, quiet, desc):
    from tqdm.auto import tqdm

    items = list(items)
    return items if quiet else tqdm(items, desc=desc, leave=False)


TRAIN_STEPS = ("features scanned", "samples read", "final eSPA+ searched and fitted",
               "eSPA+ on the folds", "baselines on the folds", "out-of-fold scores",
               "scored and stored")
"""The steps of a run, each named on its group's progress bar as it starts."""


def _tick(bar, every=1.0):
    """Redraw ``bar`` every ``every`` seconds from a daemon thread until it is closed
    (or dropped), so that its elapsed time runs on through a step with no bar of its own
    (a gradient-boosting fold, an eSPA+ search): the wait shows it is alive."""
    ref = weakref.ref(bar)

    def tick():
        while True:
            time.sleep(every)
            live = ref()
            if live is None or live.disable:
                return
            live.refresh()
            del live

    threading.Thread(target=tick, daemon=True, name=f"tick {bar.desc}").start()


def _steps(quiet, where):
    """A group's progress bar over :data:`TRAIN_STEPS`, the first named; ``step()``
    marks the current one done and names the next (so that between the bars of the
    steps that have their own, a long step is never silent)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(TRAIN_STEPS), desc=f"{where} run", unit="step", leave=False,
               disable=quiet)
    names = iter(TRAIN_STEPS)
    bar.set_postfix_str(next(names))
    if not quiet:
        _tick(bar)

    def step():
        bar.update()
        name = next(names, None)
        if name is None:
            bar.close()
        else:
            bar.set_postfix_str(name)

    return step


def train_group(ds, section=None, *, store: RunStore, quiet=True) -> dict:
    """Train and evaluate on one cube group (its grid read from its ``cell_ids``); store
    the run in ``store``; return its id, metrics and triage curves.

    Parameters
    ----------
    ds : xarray.Dataset
        A cube group with labels and features.
    section : dict, optional
        The ``[train]`` settings (see :data:`entropice.runs.DEFAULTS`).
    store : RunStore
        Where the run is written.
    """
    grid = grid_of(ds)
    s = train_settings(section)
    where = f"{grid.name}/{grid.level}"
    step = _steps(quiet, where)
    t0 = time.perf_counter()
    design = design_rows(ds, s["features"], target=s["target"], missing=s["missing"])
    log.info("%s: %d samples, their features scanned in %.0f s", where, len(design),
             time.perf_counter() - t0)
    y = design.y
    labels = np.unique(y)
    anc, inner_level = fold_levels(grid, s)
    folds = spatial_folds(design.cell_ids, grid, s["n_folds"], ancestor_level=anc,
                          random_state=s["random_state"])
    blocks = grid.parents(design.cell_ids, inner_level)
    indicators = design.indicators()
    names = design.columns
    makers = {"eSPA+": lambda: espa_search(s, indicators),
              **{n: (lambda n=n: baseline(n, s["random_state"])) for n in s["baselines"]}}
    # every training fold's samples and the final model's, read in one pass
    whole = strata(y, blocks)
    samples = {k: _samples(tr, whole[tr], s)
               for k in np.unique(folds) for tr in [np.flatnonzero(folds != k)]}
    fit, search, scored = stratified_samples(
        whole, [s["fit_rows"], s["search_rows"], s["score_rows"]], s["random_state"])
    step()
    t0 = time.perf_counter()
    sample = _read_samples(design, blocks, {**samples, "final": (fit, search)})
    log.info("%s: training samples read from the group in %.0f s", where,
             time.perf_counter() - t0)
    # eSPA+'s searches first (the final one, then each fold's), their worker processes
    # then stopped, so that they are gone before the baselines' models pile up
    step()
    t0 = time.perf_counter()
    final_sample = sample.pop("final")
    final, search = fit_sample(makers["eSPA+"], final_sample, s)
    reference = novelty_reference(final, final_sample[0], final_sample[3])
    del final_sample
    log.info("%s: the final eSPA+ in %.0f s", where, time.perf_counter() - t0)
    step()
    fitted = _fit_folds({"eSPA+": makers["eSPA+"]}, sample, folds, s, quiet, where)
    _release_workers()
    step()
    baselines = {n: make for n, make in makers.items() if n != "eSPA+"}
    for k, models in _fit_folds(baselines, sample, folds, s, quiet, where).items():
        fitted[k].update(models)
    del sample
    step()
    results, chosen, relevance = _oof(fitted, design, scored, folds, labels, s, quiet,
                                      where)
    fold_models = {k: models["eSPA+"][0] for k, models in fitted.items()}  # kept: small
    del fitted
    # scores; triage: every model's out-of-fold expected RTS density ranks the cells
    step()
    t0 = time.perf_counter()
    pos = np.searchsorted(ds.cell_ids.values, design.cell_ids)
    year_idx = np.searchsorted(ds.year.values, design.years)
    area = ds.rts_area_km2.transpose("year", "cells").values[year_idx, pos]
    land = (ds.land_fraction.values * ds.area_km2.values)[pos]
    densities = np.nansum(area) > 0 and labels[0] == 0
    dens = _fold_class_density(y, area, land, folds, labels, scored) if densities else None
    # the final model's: each class's density on every sample the run trained on, which
    # its predictions weigh their probabilities with (pred_density)
    density = class_density(y, area, land, labels).tolist() if densities else None
    area, land, y_scored = area[scored], land[scored], y[scored]
    metrics, curves, triage = {}, {}, ({} if dens is not None else None)
    for name in makers:  # a model's probabilities at a time, freed once scored
        p = results.pop(name)
        metrics[name] = evaluate(y_scored, p, labels)
        curves[name] = reliability_curve(y_scored, p, labels)
        if dens is not None:
            triage[name] = triage_curve(np.einsum("ik,ik->i", p, dens), area, land)
        del p
    log.info("%s: scored in %.0f s", where, time.perf_counter() - t0)
    chash = config_hash({"train": s, "grid": grid.name, "level": grid.level})
    run_id = store.new_run(grid, chash)
    meta = {"grid": grid.name, "level": grid.level, "config_hash": chash,
            "target": s["target"], "classes": design.classes, "labels": labels.tolist(),
            "best_params": search["params"],
            "search_samples": search["search_samples"], "fit_samples": search["fit_samples"],
            "outer_fold_params": chosen["eSPA+"],
            "indicators": [names[i] for i in indicators],
            "n_samples": int(len(y)), "scored_samples": int(len(scored)),
            "ancestor_level": anc, "novelty_reference": reference,
            **({"class_density": density} if density is not None else {})}
    relevance.extend({"model": "eSPA+", **r}
                     for r in _weights(final, -1, names))
    store.save(run_id, final, names, meta,
               folds=pd.DataFrame({"cell_ids": design.cell_ids, "year": design.years,
                                   "fold": folds}),
               fold_models=fold_models, relevance=relevance,
               metrics={"metrics": metrics, "reliability": curves, "triage": triage,
                        "triage_score": "expected RTS density"})
    step()
    return {"run_id": run_id, "metrics": metrics, "triage": triage}


PREDICT_ROWS = 2**19
"""Cells predicted at a time, a year at a time: memory holds a chunk of one year, and
the cube's chunks (a year of every cell) are each read a few times, not once per chunk
of cells of every year (which grew with the square of the years)."""


def predict_group(ds, model: StoredModel, store=None) -> xr.Dataset:
    """Predictions of a stored run's model for every cell and year of a group (labelled
    or not): ``pred_proba`` (year, cells, class), ``pred_class``, ``pred_entropy``,
    ``pred_spread`` (how much the ensemble's members disagree on P(any RTS): the
    model's uncertainty); for a run that kept its training samples' box distances,
    ``pred_novelty`` (how far the cell's features lie outside the training data, see
    :meth:`StoredModel.novelty`); for a run that kept its outer folds' models,
    ``pred_fold_spread`` (how much they disagree on P(any RTS), see
    :meth:`StoredModel.fold_spread`); for a run that kept its classes' RTS densities,
    ``pred_density`` (the expected RTS density, see
    :meth:`StoredModel.expected_density`).
    (The class dimension is not named ``rts_class``: that is the labels' variable.)

    The cells are predicted a year and a chunk of cells at a time, each year written to
    ``store`` (a scratch directory, by default in memory) as soon as it is made; the
    result is lazy.
    """
    names = model.meta["feature_names"]
    base = [n for n in names if not n.endswith("_missing")]
    missing = [n for n in base if n not in ds]
    if missing:
        raise ValueError(f"the group lacks {len(missing)} feature(s) of run "
                         f"{model.meta['run_id']}, first {missing[0]!r}.")
    ds = ds[base]
    yearly = "year" in ds.dims
    years = ds.year.values if yearly else np.array([0])
    labels = np.asarray(model.meta["labels"])
    attrs = {"run_id": model.meta["run_id"], "source": "espa"}
    n = ds.sizes["cells"]

    scores = {"spread": ("pred_spread", "spread of P(any RTS) across the model's "
                         f"{model.meta.get('n_members', 1)} ensemble members (standard "
                         "deviation)", {})}
    if model.meta.get("novelty_reference"):
        scores["novelty"] = ("pred_novelty", "novelty of the cell's features (share of "
                             "the training samples nearer to their box; near 1: outside "
                             "the training data)", {})
    if len(model.folds) > 1:
        scores["fold_spread"] = ("pred_fold_spread", "spread of P(any RTS) across the "
                                 f"run's {len(model.folds)} outer folds' models, each "
                                 "fitted without one fold's land (standard deviation)", {})
    if model.class_density is not None:
        scores["density"] = ("pred_density", "expected RTS density", {
            "description": "RTS area expected per unit of land area: the sum over "
                           "classes of the predicted probability of the class times its "
                           "RTS density (the RTS area of the run's labelled samples of "
                           "that class over their land area, at most 1: class_density)",
            "class_density": [float(d) for d in model.class_density]})

    def year_part(k):
        one = ds.isel(year=k) if yearly else ds
        proba = np.empty((n, len(labels)), np.float32)
        score = {key: np.empty(n, np.float32) for key in scores}
        for a in range(0, n, PREDICT_ROWS):
            part = one.isel(cells=slice(a, a + PREDICT_ROWS)).load()
            # the model's columns, in its order
            out = model.predictions(cell_features(part, names).to_numpy(np.float64))
            proba[a:a + len(out["proba"])] = out["proba"]
            for key, values in score.items():
                values[a:a + len(out["proba"])] = out[key]
        extra = {var: (("year", "cells"), score[key][None],
                       {**attrs, "units": "1", "long_name": long_name, **more})
                 for key, (var, long_name, more) in scores.items()}
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.nansum(np.where(proba > 0, proba * np.log(proba), 0.0), axis=-1)
        return xr.Dataset(
            {"pred_proba": (("year", "cells", "class"), proba[None], {
                **attrs, "units": "1", "long_name": "predicted probability of each RTS class"}),
             "pred_class": (("year", "cells"), labels[np.argmax(proba, axis=-1)][None].astype(
                 np.float32), {**attrs, "units": "1", "long_name": "predicted RTS class",
                               "flag_meanings": " ".join(model.meta["classes"])}),
             "pred_entropy": (("year", "cells"), entropy[None].astype(np.float32), {
                 **attrs, "units": "nat", "long_name": "entropy of the predicted class "
                                                       "probabilities"}), **extra},
            coords={"cell_ids": ds.cell_ids, "year": [years[k]], "class": labels})

    return concat_parts((year_part(k) for k in range(len(years))), "year", store)
