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
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ..cube import config_hash
from ..design import cell_features, design_rows
from ..grids import grid_of
from ..parts import concat_parts
from .backports import fast_weighted_binning
from .folds import spatial_folds, stratified_samples
from .impute import MedianImputer
from .metrics import evaluate, macro_roc_auc, ranking_auc, reliability_curve, triage_curve
from .model import StoredModel, novelty_reference
from .store import RunStore

log = logging.getLogger("entropice")

DEFAULTS = {
    "features": ["era5_*", "dem_*", "emb_pc*"],
    "target": "rts_class",
    "missing": "impute",
    "n_folds": 5,
    "inner_folds": 3,
    "ancestor_level": None,
    "grid": {"n_boxes": [10, 30], "eps_C": [0.3, 3.0], "eps_W": [0.1, 1.0],
             "class_weight": ["balanced"]},
    # what the inner search maximises: "ranking" (ranking_auc: the ranking the triage
    # uses) or any scikit-learn scorer name ("balanced_accuracy", ...)
    "search_scoring": "ranking",
    "n_restarts": 2,
    "n_estimators": 4,  # ensemble members: the probabilities' average, W's spread
    # members of each candidate in the search: ranking candidates needs fewer members
    # than the probabilities do (the chosen parameters are fitted with n_estimators)
    "search_estimators": 1,
    "weight_prior": "corr",  # KL(W || W_ref), W_ref from corr^2 ("mi", or "none")
    # eSPA+'s probabilities count the cells as they are: class_weight shapes the boxes,
    # the probabilities stay calibrated to the classes' frequencies
    "weighted_proba": False,
    "permutation_repeats": 2,  # permutation importance on the outer test folds
    "baselines": ["RandomForest", "HistGradientBoosting", "LogisticRegression", "Majority"],
    "random_state": 0,
    "n_jobs": -1,  # the search's workers (joblib processes; on a dask cluster with --scheduler)
    # at scale: the inner search runs on a sample of each training fold, stratified by
    # inner block and class; the chosen eSPA+ and the baselines are fitted on at most
    # fit_rows of it, and a random forest's trees draw at most tree_rows each (0 or
    # None: all); a forest whose trees are so capped has as many trees as draw
    # forest_rows samples in all (75; 0 or None: the baseline's 200), the trees' count
    # traded for their depth at the same cost (cap_trees)
    "search_rows": 20_000,
    "fit_rows": 100_000,
    "tree_rows": 80_000,
    "forest_rows": 6_000_000,
    # the out-of-fold scores (metrics, calibration, triage, permutation importance) of a
    # larger group are measured on a sample of its samples, stratified by inner block
    # and class (0 or None: all)
    "score_rows": 2_000_000,
}


def _settings(section):
    s = {**DEFAULTS, **(section or {})}
    for key in ("search_rows", "fit_rows", "tree_rows", "score_rows"):  # 0 (TOML has no None): all
        s[key] = None if s[key] is None else (int(s[key]) or None)
    s["grid"] = {k: [float(v) if v in ("inf", "-inf") else v for v in vals]
                 for k, vals in {**DEFAULTS["grid"], **s.get("grid", {})}.items()}
    return s


def make_model(estimator) -> Pipeline:
    """Median imputation and standardisation (fitted inside each training fold), then the
    estimator."""
    return Pipeline([("impute", MedianImputer()),
                     ("scale", StandardScaler()), ("model", estimator)])


def espa_model(s, indicators, n_estimators=None, **params) -> Pipeline:
    """eSPA+ as the settings ``s`` configure it (members, restarts, prior, seed), behind
    :func:`make_model`; ``indicators`` (the flag and near-constant columns) carry no
    feature weight; ``params`` are its hyper-parameters (``"inf"`` as text, as TOML
    writes it)."""
    from ..espa import ESPAClassifier

    params = {k: (float(v) if v in ("inf", "-inf") else v) for k, v in params.items()}
    return make_model(ESPAClassifier(
        **params, n_estimators=n_estimators or s["n_estimators"], n_restarts=s["n_restarts"],
        indicators=indicators, weighted_proba=s["weighted_proba"],
        weight_prior=None if s["weight_prior"] == "none" else s["weight_prior"],
        random_state=s["random_state"]))


def cap_trees(model, n_rows, s):
    """A random forest fitted on ``n_rows`` samples, its cost bounded at scale (other
    models as they are): on more than ``tree_rows`` samples its trees draw ``tree_rows``
    each (a bootstrap sample, as the full forest's trees draw ``n_rows``), and only as
    many of them as draw ``forest_rows`` in all (at most the baseline's trees; all of
    them if ``forest_rows`` is 0 or None). On fewer samples it is the full forest.

    Fewer, deeper trees: the AUC gap to the full forest is mostly the trees' depth,
    which grows with the samples each draws (benchmarks/train_scale.py; README)."""
    est = model.named_steps["model"]
    tree_rows = s["tree_rows"]
    if "max_samples" in est.get_params() and tree_rows and n_rows > tree_rows:
        model.set_params(model__max_samples=int(tree_rows))
        if s.get("forest_rows"):
            model.set_params(model__n_estimators=max(1, min(
                est.n_estimators, int(s["forest_rows"]) // int(tree_rows))))
    return model


def _espa_search(s, indicators):
    """eSPA+'s hyper-parameters chosen on inner spatial folds, each candidate of
    ``search_estimators`` members."""
    from sklearn.model_selection import GroupKFold

    model = espa_model(s, indicators, n_estimators=s["search_estimators"])
    grid = {f"model__{k}": v for k, v in s["grid"].items()}
    return GridSearchCV(model, grid, cv=GroupKFold(s["inner_folds"]),
                        scoring=ranking_auc if s["search_scoring"] == "ranking"
                        else s["search_scoring"], n_jobs=s.get("n_jobs"),
                        error_score="raise", refit=False)


def _baseline(name, random_state):
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    est = {
        "RandomForest": lambda: RandomForestClassifier(200, min_samples_leaf=2, n_jobs=-1,
                                                       random_state=random_state,
                                                       class_weight="balanced"),
        "HistGradientBoosting": lambda: HistGradientBoostingClassifier(
            random_state=random_state, class_weight="balanced"),
        # newton-cholesky converges in a few steps where lbfgs needs thousands here
        "LogisticRegression": lambda: LogisticRegression(solver="newton-cholesky",
                                                         class_weight="balanced"),
        "Majority": lambda: DummyClassifier(strategy="prior"),
    }
    if name not in est:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(est)}.")
    if name == "HistGradientBoosting":  # class weights: 15x faster binning, same bins
        fast_weighted_binning()
    return make_model(est[name]())


def fold_levels(grid, s) -> tuple[int, int]:
    """The ancestor levels whose cells make the outer spatial folds' blocks and the
    inner ones (one level finer, which the searches hold out in turn)."""
    anc = grid.fold_level() if s["ancestor_level"] is None else int(s["ancestor_level"])
    return anc, min(grid.level, anc + 1)


def _samples(rows, strata, s):
    """The samples of the training rows ``rows`` (``strata``: theirs, from
    :func:`_strata`) that models are fitted on (at most ``fit_rows``) and searched on
    (at most ``search_rows``), each stratified by inner block and class; drawn once per
    training fold, for every model."""
    fit, search = stratified_samples(strata, [s["fit_rows"], s["search_rows"]],
                                     s["random_state"])
    return rows[fit], rows[search]


def _strata(y, blocks) -> np.ndarray:
    """Each sample's stratum: its inner block and class (the same strata, in the same
    order, as those of any subset of the samples)."""
    _, block = np.unique(blocks, return_inverse=True)
    return block * (int(y.max()) + 1) + y


def _read_samples(design, blocks, samples):
    """The sample sets ``samples`` (a key, such as a fold, to the rows ``(fit, search)``
    of :func:`_samples`) read from the group in one pass: for each key its features,
    labels and inner blocks, and where its sets lie among them (the features one array
    shared by every key)."""
    need = np.unique(np.concatenate([np.concatenate(pair) for pair in samples.values()]))
    X, y, b = design.read(need), design.y[need], blocks[need]
    return {k: (X, y, b, np.searchsorted(need, fit), np.searchsorted(need, search))
            for k, (fit, search) in samples.items()}


FOREST_STEPS = 10
"""Batches a random forest's trees are grown in when its fit shows progress. Only a
forest's fit is shown in steps: grown in warm-started batches it draws the same trees
for the same CPU time, where a gradient-boosting model's batches cost 1.2x (each bins
the samples again and predicts them with every tree so far) and an eSPA+ search's
1.0-1.6x the wall time (each batch waits for its slowest fit); those stay one step of
the folds' bar."""


def fit_in_steps(model, X, y, progress=None):
    """``model.fit(X, y)`` (a pipeline of :func:`make_model`); with ``progress`` (a tqdm
    bar's maker, called with ``total``) a random forest's trees are grown in
    :data:`FOREST_STEPS` warm-started batches, each a step of the bar it makes: the trees
    a single fit draws, from the same seeds (tests/test_train.py). Other models are
    fitted at once, with no bar."""
    from sklearn.ensemble import RandomForestClassifier

    est = model[-1]
    if progress is None or not isinstance(est, RandomForestClassifier):
        return model.fit(X, y)
    total = est.n_estimators
    Xt = model[:-1].fit_transform(X, y)
    with progress(total=total) as bar, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "class_weight presets", UserWarning)  # same samples
        for end in np.unique(np.linspace(0, total, FOREST_STEPS + 1).round().astype(int))[1:]:
            est.set_params(n_estimators=int(end), warm_start=True).fit(Xt, y)
            bar.update(int(end) - bar.n)
    est.set_params(n_estimators=total, warm_start=False)
    return model


def _fit(make, sample, s, progress=None):
    """A model (``make()``) fitted on a training fold's samples; and, for a
    search, the parameters it chose and the samples it searched and fitted on.

    ``sample`` holds the samples drawn from the fold (:func:`_read_samples`): a search
    runs on those at positions ``search`` (at most ``search_rows``; candidates of
    ``search_estimators`` members) and the chosen parameters are then fitted on those
    at ``fit`` (at most ``fit_rows``; ``n_estimators`` members), as are the baselines;
    a random forest's trees draw at most ``tree_rows`` samples each. Small groups use
    every sample throughout. ``progress`` (a tqdm bar's maker, or None) shows a
    forest's trees (:func:`fit_in_steps`).
    """
    from sklearn.base import clone

    X, y, blocks, fit, search = sample
    model = make()
    if not hasattr(model, "param_grid"):
        return (fit_in_steps(cap_trees(model, len(fit), s), _rows(X, fit), y[fit], progress),
                None)
    model.fit(_rows(X, search), y[search], groups=blocks[search])
    # the chosen parameters with every member, on the fit samples (on every core when
    # they are more than the search saw)
    best = clone(model.estimator).set_params(**model.best_params_,
                                             model__n_estimators=s["n_estimators"])
    if len(search) < len(fit):
        best.set_params(model__n_jobs=s["n_jobs"])
    best.fit(_rows(X, fit), y[fit])
    return best, {"params": {k.removeprefix("model__"): v
                             for k, v in model.best_params_.items()},
                  "search_samples": len(search), "fit_samples": len(fit)}


def _rows(X, rows=None):
    """Rows of a design matrix (all by default) in float64 and row-major, as the models
    are fitted and asked."""
    return np.ascontiguousarray(X if rows is None else X[rows], dtype=np.float64)


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
        chunk, prepared = _rows(X[a:a + step]), {}
        for name, m in models.items():
            if keys[name] not in prepared:
                prepared[keys[name]] = m[:-1].transform(chunk)
            out[name][a:a + step, cols[name]] = _ask(m[-1], prepared[keys[name]])
    return out


ASK_ROWS = 4096
"""Rows a gradient-boosting model is asked at a time: it walks each tree over every row
asked before the next tree, so the rows should stay in the processor's cache between
trees (4096 x 113 float64: 3.7 MB); 1.6-2.3x faster than 65,536 rows at a time."""


def _ask(model, X) -> np.ndarray:
    """``model.predict_proba(X)`` (a pipeline or its estimator); a HistGradientBoosting
    model asked ``ASK_ROWS`` rows at a time (the same answers, sooner), a random forest's
    trees summed in their order (:func:`forest_proba`)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    est = model[-1] if isinstance(model, Pipeline) else model
    forest = isinstance(est, RandomForestClassifier)
    if not (forest or isinstance(est, HistGradientBoostingClassifier) and len(X) > ASK_ROWS):
        return model.predict_proba(X)
    if est is not model:
        X = model[:-1].transform(X)
    if forest:
        return forest_proba(est, X)
    return np.concatenate([est.predict_proba(X[a:a + ASK_ROWS])
                           for a in range(0, len(X), ASK_ROWS)])


def forest_proba(forest, X) -> np.ndarray:
    """A fitted random forest's ``predict_proba(X)`` with its trees summed in their
    order, the rows shared between threads. scikit-learn shares the trees between
    threads and adds each one's answer as it comes, so the last digits (and a tie's
    class, a ROC AUC's seventh digit) change from one run to the next; here a run
    repeats exactly, whatever the number of threads."""
    from concurrent.futures import ThreadPoolExecutor

    from joblib import effective_n_jobs

    X = forest._validate_X_predict(X)
    n = max(1, min(effective_n_jobs(forest.n_jobs), -(-len(X) // 1024)))
    bounds = np.linspace(0, len(X), n + 1).astype(int)
    out = np.zeros((len(X), forest.n_classes_))

    def rows(k):
        part = out[bounds[k]:bounds[k + 1]]
        for tree in forest.estimators_:  # the trees release the GIL
            part += tree.predict_proba(X[bounds[k]:bounds[k + 1]], check_input=False)
        part /= len(forest.estimators_)

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(rows, range(n)))
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
    :func:`_read_samples`), a model at a time: fold to name to (model, search)."""
    from tqdm.auto import tqdm

    fitted = {k: {} for k in np.unique(folds)}
    seconds = {}
    for name, make in makers.items():
        t0 = time.perf_counter()
        for k in _progress(fitted, quiet, f"{where} {name}"):
            progress = None if quiet else functools.partial(
                tqdm, desc=f"{where} {name} fold {k}", leave=False)
            fitted[k][name] = _fit(make, sample[k], s, progress)
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
                                 model, _rows(values), y[aside], labels,
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
    return _permutation_drops(model, _rows(X, rows[sel]), np.asarray(y)[rows[sel]], labels,
                              groups, repeats, rng)


def _permutation_drops(model, X, y, labels, groups, repeats, rng):
    """:func:`permutation_importance` on the samples ``X``, shuffled by ``rng``."""
    cols = np.searchsorted(labels, model.classes_)

    def auc(p_model):
        p = np.zeros((len(y), len(labels)))
        p[:, cols] = p_model
        return macro_roc_auc(y, p, labels)

    base = auc(_ask(model, X))
    drops = np.zeros((repeats, len(groups)))
    for r in range(repeats):
        stacked = np.tile(X, (len(groups), 1))
        for g, idx in enumerate(groups.values()):
            block = stacked[g * len(y):(g + 1) * len(y)]
            block[:, idx] = X[rng.permutation(len(y))][:, idx]
        proba = _ask(model, stacked)
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


def _fold_class_density(y, area, land, folds, labels, rows) -> np.ndarray:
    """For each sample of ``rows``, the RTS density (area over land) of each class,
    measured on the other folds' cells (all of them): a model's probabilities times it
    are its expected density, the score that finds the most RTS area in the least
    land."""
    area, land = np.nan_to_num(area), np.nan_to_num(land)
    fold_ids = np.unique(folds)
    table = np.zeros((len(fold_ids), len(labels)))
    for i, f in enumerate(fold_ids):
        train_ = folds != f
        for k, lab in enumerate(labels):
            m = train_ & (y == lab)
            table[i, k] = area[m].sum() / land[m].sum() if land[m].sum() > 0 else 0.0
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
        The ``[train]`` settings (see ``DEFAULTS``).
    store : RunStore
        Where the run is written.
    """
    grid = grid_of(ds)
    s = _settings(section)
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
    makers = {"eSPA+": lambda: _espa_search(s, indicators),
              **{n: (lambda n=n: _baseline(n, s["random_state"])) for n in s["baselines"]}}
    # every training fold's samples and the final model's, read in one pass
    whole = _strata(y, blocks)
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
    final, search = _fit(makers["eSPA+"], final_sample, s)
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
    dens = (_fold_class_density(y, area, land, folds, labels, scored)
            if np.nansum(area) > 0 and labels[0] == 0 else None)
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
            "ancestor_level": anc, "novelty_reference": reference}
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
    :meth:`StoredModel.fold_spread`).
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
                         "deviation)")}
    if model.meta.get("novelty_reference"):
        scores["novelty"] = ("pred_novelty", "novelty of the cell's features (share of "
                             "the training samples nearer to their box; near 1: outside "
                             "the training data)")
    if len(model.folds) > 1:
        scores["fold_spread"] = ("pred_fold_spread", "spread of P(any RTS) across the "
                                 f"run's {len(model.folds)} outer folds' models, each "
                                 "fitted without one fold's land (standard deviation)")

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
                       {**attrs, "units": "1", "long_name": long_name})
                 for key, (var, long_name) in scores.items()}
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
