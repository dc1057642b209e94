"""Model runs: train eSPA+ and the baselines on one cube group with spatial
cross-validation, store the run in ``models/<run_id>/``, and write predictions back.

Nested: the outer spatial folds report the metrics, the inner folds (blocks of the same
ancestor level, inside each outer training fold) choose eSPA+'s hyper-parameters.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import train
from .cube import config_hash
from .grids import get_grid

log = logging.getLogger("entropice")

DEFAULTS = {
    "features": ["era5_*", "dem_*", "emb_pc*"],
    "target": "rts_class",
    "missing": "impute",
    "n_folds": 5,
    "inner_folds": 3,
    "ancestor_level": None,
    "grid": {"n_boxes": [10, 30], "eps_C": [0.3, 3.0], "eps_W": [0.3, "inf"],
             "class_weight": ["balanced"]},
    "n_restarts": 1,
    "baselines": ["RandomForest", "HistGradientBoosting", "LogisticRegression", "Majority"],
    "random_state": 0,
    "n_jobs": None,  # the search's workers (joblib; on a dask cluster with --scheduler)
}


def _settings(section):
    s = {**DEFAULTS, **(section or {})}
    s["grid"] = {k: [float(v) if v in ("inf", "-inf") else v for v in vals]
                 for k, vals in {**DEFAULTS["grid"], **s.get("grid", {})}.items()}
    return s


def _espa_search(s, groups_level):
    from sklearn.model_selection import GridSearchCV, GroupKFold

    from .espa import ESPAClassifier

    model = train.make_model(ESPAClassifier(n_restarts=s["n_restarts"],
                                            random_state=s["random_state"]))
    grid = {f"model__{k}": v for k, v in s["grid"].items()}
    return GridSearchCV(model, grid, cv=GroupKFold(s["inner_folds"]),
                        scoring="balanced_accuracy", n_jobs=s.get("n_jobs"),
                        error_score="raise")


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
    return train.make_model(est[name]())


def _oof(make, X, y, folds, blocks, labels):
    """Out-of-fold probabilities (columns in ``labels`` order) and the fitted searches."""
    import warnings

    warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
    proba = np.zeros((len(y), len(labels)))
    chosen = []
    for k in np.unique(folds):
        tr, te = folds != k, folds == k
        model = make()
        if hasattr(model, "param_grid"):
            model.fit(X[tr], y[tr], groups=blocks[tr])
            chosen.append(model.best_params_)
        else:
            model.fit(X[tr], y[tr])
        p = model.predict_proba(X[te])
        cols = np.searchsorted(labels, model.classes_)
        proba[np.ix_(te, cols)] = p
    return proba, chosen


def train_group(ds, grid_name, level, section=None, *, models_dir="models", quiet=True):
    """Train and evaluate on one group; store the run; return its summary."""
    s = _settings(section)
    dm = train.design_matrix(ds, s["features"], target=s["target"], missing=s["missing"])
    X = dm.X.to_numpy(dtype=np.float64)
    y = dm.y
    labels = np.unique(y)
    anc = s["ancestor_level"]
    anc = train.default_ancestor_level(grid_name, level) if anc is None else int(anc)
    folds = train.spatial_folds(dm.cell_ids, grid_name, level, s["n_folds"],
                                ancestor_level=anc, random_state=s["random_state"])
    inner_level = min(level, anc + 1)
    blocks = get_grid(grid_name, level).parents(dm.cell_ids, inner_level)
    results = {}
    proba_espa, chosen = _oof(lambda: _espa_search(s, inner_level), X, y, folds, blocks,
                              labels)
    results["eSPA+"] = proba_espa
    for name in s["baselines"]:
        results[name], _ = _oof(lambda n=name: _baseline(n, s["random_state"]), X, y, folds,
                                blocks, labels)
    metrics = {name: train.evaluate(y, p, labels) for name, p in results.items()}
    # triage: every model's out-of-fold probability of any RTS ranks the cells
    pos = np.searchsorted(ds.cell_ids.values, dm.cell_ids)
    year_idx = np.searchsorted(ds.year.values, dm.years)
    area = ds.rts_area_km2.transpose("year", "cells").values[year_idx, pos]
    land = (ds.land_fraction.values * ds.area_km2.values)[pos]
    triage = None
    if np.nansum(area) > 0 and labels[0] == 0:
        triage = {name: train.triage_curve(1.0 - p[:, 0], area, land)
                  for name, p in results.items()}
    # the final model: the search on every sample
    final = _espa_search(s, inner_level).fit(X, y, groups=blocks)
    chash = config_hash({"train": s, "grid": grid_name, "level": level})
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    run_id = f"{grid_name}{level}-{stamp}-{chash[:6]}"
    run_dir = Path(models_dir) / run_id
    meta = {"run_id": run_id, "grid": grid_name, "level": level, "config_hash": chash,
            "target": s["target"], "classes": dm.classes, "labels": labels.tolist(),
            "best_params": {k.removeprefix("model__"): v for k, v in
                            final.best_params_.items()},
            "outer_fold_params": [{k.removeprefix("model__"): v for k, v in c.items()}
                                  for c in chosen],
            "n_samples": int(len(y)), "ancestor_level": anc}
    train.save_model(run_dir, final.best_estimator_, list(dm.X.columns), meta)
    pd.DataFrame({"cell_ids": dm.cell_ids, "year": dm.years, "fold": folds}).to_csv(
        run_dir / "folds.csv", index=False)
    curves = {name: train.reliability_curve(y, p, labels) for name, p in results.items()}
    (run_dir / "metrics.json").write_text(json.dumps(
        {"metrics": metrics, "reliability": curves, "triage": triage}, indent=2))
    return {"run_id": run_id, "run_dir": str(run_dir), "metrics": metrics, "triage": triage}


def predict_group(ds, run_dir):
    """Predictions of a stored run for every cell and year of a group (labelled or not):
    ``pred_proba`` (year, cells, class), ``pred_class`` and ``pred_entropy``. (The
    class dimension is not named ``rts_class``: that is the labels' variable.)"""
    model = train.load_model(run_dir)
    names = model.meta["feature_names"]
    base = [n for n in names if not n.endswith("_missing")]
    missing = [n for n in base if n not in ds]
    if missing:
        raise ValueError(f"the group lacks {len(missing)} feature(s) of run "
                         f"{model.meta['run_id']}, first {missing[0]!r}.")
    ds = ds[base].load()
    yearly = "year" in ds.dims
    years = ds.year.values if yearly else np.array([0])
    frame = pd.concat([train.cell_features(ds, names, y if yearly else None) for y in years],
                      ignore_index=True)
    proba = train.predict_frame(model, frame).reshape(len(years), ds.sizes["cells"], -1)
    labels = np.asarray(model.meta["labels"])
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(proba > 0, proba * np.log(proba), 0.0), axis=-1)
    attrs = {"run_id": model.meta["run_id"], "source": "espa"}
    out = xr.Dataset(
        {"pred_proba": (("year", "cells", "class"), proba, {
            **attrs, "units": "1", "long_name": "predicted probability of each RTS class"}),
         "pred_class": (("year", "cells"), labels[np.argmax(proba, axis=-1)].astype(float), {
             **attrs, "units": "1", "long_name": "predicted RTS class",
             "flag_meanings": " ".join(model.meta["classes"])}),
         "pred_entropy": (("year", "cells"), entropy, {
             **attrs, "units": "nat", "long_name": "entropy of the predicted class "
                                                   "probabilities"})},
        coords={"cell_ids": ds.cell_ids, "year": years, "class": labels})
    return out
