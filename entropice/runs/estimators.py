"""The models a run fits: eSPA+ and the baselines as the ``[train]`` settings make them,
fitted on a training fold's samples and asked, at any scale."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .backports import fast_weighted_binning
from .impute import MedianImputer
from .metrics import ranking_auc


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


def espa_search(s, indicators):
    """eSPA+'s hyper-parameters chosen on inner spatial folds, each candidate of
    ``search_estimators`` members."""
    from sklearn.model_selection import GroupKFold

    model = espa_model(s, indicators, n_estimators=s["search_estimators"])
    grid = {f"model__{k}": v for k, v in s["grid"].items()}
    return GridSearchCV(model, grid, cv=GroupKFold(s["inner_folds"]),
                        scoring=ranking_auc if s["search_scoring"] == "ranking"
                        else s["search_scoring"], n_jobs=s.get("n_jobs"),
                        error_score="raise", refit=False)


def baseline(name, random_state):
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


def fit_sample(make, sample, s, progress=None):
    """A model (``make()``) fitted on a training fold's samples; and, for a
    search, the parameters it chose and the samples it searched and fitted on.

    ``sample`` holds the samples drawn from the fold (``runs.cv._read_samples``): a
    search runs on those at positions ``search`` (at most ``search_rows``; candidates
    of ``search_estimators`` members) and the chosen parameters are then fitted on
    those at ``fit`` (at most ``fit_rows``; ``n_estimators`` members), as are the
    baselines; a random forest's trees draw at most ``tree_rows`` samples each. Small groups use
    every sample throughout. ``progress`` (a tqdm bar's maker, or None) shows a
    forest's trees (:func:`fit_in_steps`).
    """
    from sklearn.base import clone

    X, y, blocks, fit, search = sample
    model = make()
    if not hasattr(model, "param_grid"):
        return (fit_in_steps(cap_trees(model, len(fit), s), as_rows(X, fit), y[fit], progress),
                None)
    model.fit(as_rows(X, search), y[search], groups=blocks[search])
    # the chosen parameters with every member, on the fit samples (on every core when
    # they are more than the search saw)
    best = clone(model.estimator).set_params(**model.best_params_,
                                             model__n_estimators=s["n_estimators"])
    if len(search) < len(fit):
        best.set_params(model__n_jobs=s["n_jobs"])
    best.fit(as_rows(X, fit), y[fit])
    return best, {"params": {k.removeprefix("model__"): v
                             for k, v in model.best_params_.items()},
                  "search_samples": len(search), "fit_samples": len(fit)}


def as_rows(X, rows=None):
    """Rows of a design matrix (all by default) in float64 and row-major, as the models
    are fitted and asked."""
    return np.ascontiguousarray(X if rows is None else X[rows], dtype=np.float64)


ASK_ROWS = 4096
"""Rows a gradient-boosting model is asked at a time: it walks each tree over every row
asked before the next tree, so the rows should stay in the processor's cache between
trees (4096 x 113 float64: 3.7 MB); 1.6-2.3x faster than 65,536 rows at a time."""


def ask(model, X) -> np.ndarray:
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
