"""Training pieces: design matrices from cube groups, spatial folds, metrics, the triage
curve, and models stored as arrays and JSON (never pickled).

Geospatial data leak across neighbouring cells, so folds are blocks of cells that share
a coarse ancestor: a block is wholly in one fold.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from . import __version__
from .cube import SCHEMA_VERSION
from .grids import get_grid

DEFAULT_FEATURES = ("era5_*", "dem_*", "emb_*")
MODEL_FORMAT = 2
MODEL_ARRAYS = ("boxes", "feature_weights", "box_label_proba", "box_counts")


@dataclass
class DesignMatrix:
    """Samples (a cell in a year) with their features and label."""

    X: pd.DataFrame
    y: np.ndarray
    cell_ids: np.ndarray
    years: np.ndarray
    classes: list

    @property
    def flags(self) -> list[str]:
        """The missing-value flag columns."""
        return [c for c in self.X.columns if c.endswith("_missing")]

    def indicators(self) -> list[int]:
        """Columns that carry no eSPA+ feature weight: the missing-value flags, and binary
        or near-constant columns (median-imputed, as inside the training folds)."""
        from .espa import find_indicators

        filled = self.X.fillna(self.X.median()).fillna(0.0).to_numpy(dtype=np.float64)
        mask = find_indicators(filled) | self.X.columns.isin(self.flags)
        return np.flatnonzero(mask).tolist()


def select_features(ds, patterns=DEFAULT_FEATURES) -> list[str]:
    """Variables of a group matching any of the glob ``patterns``, sorted by name (the
    group's order depends on the order its stages ran; a model's must not)."""
    names = sorted(n for n in ds.data_vars if any(fnmatch.fnmatch(n, p) for p in patterns))
    for p in patterns:
        if not any(fnmatch.fnmatch(n, p) for n in ds.data_vars):
            raise ValueError(f"the feature pattern {p!r} matches nothing in the group "
                             f"(variables: {', '.join(sorted(ds.data_vars))}).")
    return names


def design_matrix(ds, features=DEFAULT_FEATURES, *, target="rts_class", missing="impute",
                  years=None) -> DesignMatrix:
    """Samples of a cube group: one per labelled (year, cell).

    Parameters
    ----------
    ds : xarray.Dataset
        A cube group with labels (``rts_class``, ``rts_count``) and features.
    features : sequence of str
        Glob patterns of feature names (each must match something).
    target : {"rts_class", "any"}
        The density class, or whether the cell has any RTS (0/1).
    missing : {"impute", "drop"}
        "impute" keeps NaN (imputed inside the training folds) and adds a 0/1
        ``<feature>_missing`` column for every feature with missing values; "drop"
        drops the samples with any missing feature.
    years : sequence of int, optional
        Only these years.
    """
    if "rts_class" not in ds or "rts_count" not in ds:
        raise ValueError("the group has no labels (rts_class, rts_count): run the labels "
                         "stage first.")
    if target not in ("rts_class", "any"):
        raise ValueError(f"target must be 'rts_class' or 'any'; got {target!r}.")
    if missing not in ("impute", "drop"):
        raise ValueError(f"missing must be 'impute' or 'drop'; got {missing!r}.")
    names = select_features(ds, features)
    ds = ds[names + ["rts_class", "rts_count"]].load()
    if years is not None:
        ds = ds.sel(year=list(years))
    label = ds.rts_class.transpose("year", "cells").values
    yi, ci = np.nonzero(np.isfinite(label))
    cols = {}
    for n in names:
        v = ds[n]
        vals = v.transpose("year", "cells").values[yi, ci] if "year" in v.dims else \
            v.values[ci]
        cols[n] = vals.astype(np.float64)
    X = pd.DataFrame(cols)
    if target == "any":
        y = (ds.rts_count.transpose("year", "cells").values[yi, ci] > 0).astype(int)
        classes = ["no RTS", "RTS"]
    else:
        y = label[yi, ci].astype(int)
        meanings = ds.rts_class.attrs.get("flag_meanings", "").split()
        classes = meanings or [str(c) for c in np.unique(y)]
    if missing == "drop":
        keep = X.notna().all(axis=1).values
        X, y, yi, ci = X[keep].reset_index(drop=True), y[keep], yi[keep], ci[keep]
    else:
        for n in names:
            if X[n].isna().any():
                X[f"{n}_missing"] = X[n].isna().astype(float)
    if len(y) == 0:
        raise ValueError("no labelled cell has its features: nothing to train on.")
    values, counts = np.unique(y, return_counts=True)
    lonely = values[counts < 2]
    if len(lonely):
        raise ValueError(f"class {lonely[0]} has a single labelled cell: too few to train and "
                         "test on; merge it into a neighbouring class (bin_edges).")
    return DesignMatrix(X, y, ds.cell_ids.values[ci], ds.year.values[yi], classes)


def default_ancestor_level(grid_name: str, level: int) -> int:
    """Blocks of 49 H3 cells (two levels up) or 64 HEALPix cells (three levels up)."""
    return max(0, level - (2 if grid_name == "h3" else 3))


def spatial_folds(cell_ids, grid_name: str, level: int, n_folds=5, *, ancestor_level=None,
                  random_state=0) -> np.ndarray:
    """Fold of each sample: blocks of cells sharing an ancestor go to one fold.

    Blocks are shuffled, then dealt largest first to the fold with the fewest samples,
    so that folds hold about the same number of samples.
    """
    level_up = default_ancestor_level(grid_name, level) if ancestor_level is None else \
        ancestor_level
    blocks = get_grid(grid_name, level).parents(np.asarray(cell_ids, dtype=np.uint64), level_up)
    uniq, inverse, counts = np.unique(blocks, return_inverse=True, return_counts=True)
    if len(uniq) < n_folds:
        raise ValueError(f"{len(uniq)} blocks at level {level_up} for {n_folds} folds: use a "
                         "finer ancestor_level or fewer folds.")
    rng = np.random.default_rng(random_state)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-counts[order], kind="stable")]
    fold_of_block = np.empty(len(uniq), dtype=np.int64)
    load = np.zeros(n_folds)
    for b in order:
        f = int(np.argmin(load))
        fold_of_block[b] = f
        load[f] += counts[b]
    return fold_of_block[inverse]


def make_model(estimator) -> Pipeline:
    """Median imputation and standardisation (fitted inside each training fold), then the
    estimator."""
    return Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                     ("scale", StandardScaler()), ("model", estimator)])


def evaluate(y_true, proba, labels) -> dict:
    """The metrics of a model's class probabilities on test samples."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(labels)
    pred = labels[np.argmax(proba, axis=1)]
    onehot = (y_true[:, None] == labels[None, :]).astype(float)
    out = {
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, pred)),
        "macro_f1": float(skm.f1_score(y_true, pred, average="macro", labels=labels,
                                       zero_division=0)),
        "log_loss": float(skm.log_loss(y_true, np.clip(proba, 1e-15, 1), labels=labels)),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
        "confusion_matrix": skm.confusion_matrix(y_true, pred, labels=labels).tolist(),
    }
    present = np.isin(labels, y_true)
    if present.sum() >= 2:
        p = proba[:, present] / np.maximum(proba[:, present].sum(axis=1, keepdims=True), 1e-15)
        if present.sum() == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y_true == labels[present][1], p[:, 1]))
        else:
            out["roc_auc"] = float(skm.roc_auc_score(y_true, p, multi_class="ovr",
                                                     average="macro", labels=labels[present]))
    else:
        out["roc_auc"] = float("nan")
    return out


def reliability_curve(y_true, proba, labels, n_bins=10) -> dict:
    """Calibration: in bins of the predicted probability of each sample's predicted class,
    the mean prediction against the observed accuracy."""
    labels = np.asarray(labels)
    conf = np.max(proba, axis=1)
    correct = labels[np.argmax(proba, axis=1)] == np.asarray(y_true)
    edges = np.linspace(0, 1, n_bins + 1)
    b = np.clip(np.digitize(conf, edges) - 1, 0, n_bins - 1)
    n = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / n
        accuracy = np.bincount(b, weights=correct, minlength=n_bins) / n
    return {"bin_edges": edges.tolist(), "count": n.tolist(),
            "mean_predicted": mean_conf.tolist(), "observed": accuracy.tolist()}


def triage_curve(score, rts_area, land_area, recalls=(0.5, 0.8, 0.9, 0.95)) -> dict:
    """How much land must be scanned, cells ranked by ``score``, to find the RTS area.

    Returns the curve (cumulative share of land area, of RTS area) and, for each
    recall, the share of land area needed, beside the same for a random ranking
    (whose expected curve is the diagonal). Cells of equal score are scanned in random
    order, so the curve is the expected one: a straight line across each tie (eSPA+'s
    probabilities take one value per box, so its ties are many).
    """
    score = np.asarray(score, dtype=np.float64)
    rts = np.nan_to_num(np.asarray(rts_area, dtype=np.float64))
    land = np.nan_to_num(np.asarray(land_area, dtype=np.float64))
    if rts.sum() <= 0:
        raise ValueError("no mapped RTS area: the triage curve needs some.")
    order = np.argsort(-score, kind="stable")
    s = score[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each tie
    land_share = np.r_[0.0, np.cumsum(land[order])[ends] / land.sum()]
    rts_share = np.r_[0.0, np.cumsum(rts[order])[ends] / rts.sum()]
    needed = {}
    for r in recalls:  # the first point reaching r, linear inside its tie
        k = min(int(np.searchsorted(rts_share, r * (1 - 1e-12))), len(rts_share) - 1)
        r0, r1, l0, l1 = rts_share[k - 1], rts_share[k], land_share[k - 1], land_share[k]
        frac = 1.0 if r1 <= r0 else min(1.0, (r - r0) / (r1 - r0))
        needed[f"{r:.2f}"] = float(l0 + (l1 - l0) * frac)
    return {"land_share": land_share.tolist(), "rts_share": rts_share.tolist(),
            "land_share_needed": needed,
            "random_land_share_needed": {f"{r:.2f}": float(r) for r in recalls}}


# -- models as arrays and JSON ----------------------------------------------------------------


def save_model(path, model: Pipeline, feature_names, meta=None):
    """Write an imputer + scaler + ESPAClassifier pipeline as ``arrays.npz`` and
    ``model.json`` in the directory ``path`` (nothing is pickled): the shown member's
    boxes, weights and box label probabilities, and every ensemble member's."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    imp, sc, est = (model.named_steps[k] for k in ("impute", "scale", "model"))
    members = {f"member{i}_{a}": getattr(m, a + "_")
               for i, m in enumerate(est.estimators_) for a in MODEL_ARRAYS}
    np.savez(path / "arrays.npz", impute_statistics=imp.statistics_, scale_mean=sc.mean_,
             scale_scale=sc.scale_, classes=np.asarray(est.classes_),
             weighted_features=est.weighted_features_,
             temperatures=np.array([m.temperature_ for m in est.estimators_]),
             **{a: getattr(est, a + "_") for a in MODEL_ARRAYS}, **members)
    doc = {"format": MODEL_FORMAT, "schema_version": SCHEMA_VERSION,
           "entropice_version": __version__, "feature_names": list(feature_names),
           "params": {k: (v if not isinstance(v, float) or np.isfinite(v) else str(v))
                      for k, v in est.get_params().items()
                      if k not in ("init", "indicators", "weight_prior")},
           "temperature": est.temperature_, "n_members": len(est.estimators_),
           **(meta or {})}
    (path / "model.json").write_text(json.dumps(doc, indent=2, default=str))


class StoredModel:
    """A trained pipeline rebuilt from arrays: median imputation, standardisation and
    eSPA+, applied with the same arithmetic as the scikit-learn pipeline it came from."""

    def __init__(self, statistics, mean, scale, estimator, meta):
        self.statistics, self.mean, self.scale = statistics, mean, scale
        self.estimator = estimator
        self.meta = meta
        self.classes_ = estimator.classes_

    def transform(self, X):
        X = np.array(X, dtype=np.float64)
        nan = np.isnan(X)
        X[nan] = np.broadcast_to(self.statistics, X.shape)[nan]
        X -= self.mean
        X /= self.scale
        return X

    def predict_proba(self, X):
        return self.estimator.predict_proba(self.transform(X))

    def predict(self, X):
        return self.estimator.predict(self.transform(X))

    def apply(self, X):
        return self.estimator.apply(self.transform(X))


def load_model(path) -> StoredModel:
    """Rebuild a model saved by :func:`save_model`; it predicts exactly as before."""
    from .espa import ESPAClassifier

    path = Path(path)
    meta_path = path / "model.json"
    if not meta_path.exists():
        raise ValueError(f"no model at {path} (model.json is missing).")
    meta = json.loads(meta_path.read_text())
    if meta.get("schema_version") != SCHEMA_VERSION or meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"the model at {path} was written for cube schema "
                         f"{meta.get('schema_version')} (model format {meta.get('format')}); "
                         f"this entropice reads schema {SCHEMA_VERSION} and model format "
                         f"{MODEL_FORMAT}: train it again (`entropice train --force`).")
    with np.load(path / "arrays.npz", allow_pickle=False) as a:
        arrays = {k: a[k] for k in a.files}
    params = {k: (float(v) if v in ("inf", "nan") else v) for k, v in meta["params"].items()}

    def rebuilt(prefix, temperature, n_members):
        est = ESPAClassifier(**{**params, "n_estimators": n_members})
        for a in MODEL_ARRAYS:
            setattr(est, a + "_", arrays[prefix + a])
        est.temperature_ = float(temperature)
        est.classes_ = arrays["classes"]
        est.n_features_in_ = len(meta["feature_names"])
        est.weighted_features_ = arrays["weighted_features"]
        return est

    temps = arrays["temperatures"]
    est = rebuilt("", meta["temperature"], len(temps))
    est.estimators_ = [rebuilt(f"member{i}_", t, 1) for i, t in enumerate(temps)]
    return StoredModel(arrays["impute_statistics"], arrays["scale_mean"], arrays["scale_scale"],
                       est, meta)


def cell_features(ds, names, year=None) -> pd.DataFrame:
    """A model's features for every cell of a group in one year (static features as they
    are; ``<name>_missing`` flags rebuilt from the data), in the model's column order."""
    cols = {}
    for n in names:
        base = n.removesuffix("_missing")
        if base not in ds:
            raise ValueError(f"the group lacks the model's feature {base!r}.")
        da = ds[base]
        if "year" in da.dims:
            if year is None:
                raise ValueError(f"{base!r} is yearly: say which year.")
            da = da.sel(year=year)
        v = np.asarray(da.values, dtype=np.float64)
        cols[n] = np.isnan(v).astype(float) if n != base else v
    return pd.DataFrame(cols)


def predict_frame(model: StoredModel, X: pd.DataFrame) -> np.ndarray:
    """Class probabilities for a feature table, checked against the model's features."""
    names = model.meta["feature_names"]
    missing = [n for n in names if n not in X.columns]
    if missing:
        raise ValueError(f"the data lack {len(missing)} feature(s) the model was trained on, "
                         f"first {missing[0]!r}.")
    return model.predict_proba(X[names].to_numpy(dtype=np.float64))
