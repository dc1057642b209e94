"""A trained model stored as arrays and JSON (never pickled: a model file from a stranger
cannot run code), and rebuilt to predict exactly as it did."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from .. import __version__
from ..cube import SCHEMA_VERSION

MODEL_FORMAT = 2
MODEL_ARRAYS = ("boxes", "feature_weights", "box_label_proba", "box_counts")
FOLDS = "folds"
"""The subdirectory of a run's model holding its outer folds' models (``folds/<k>/``)."""


def save_model(path, model: Pipeline, feature_names, meta=None, fold_models=None):
    """Write an imputer + scaler + ESPAClassifier pipeline as ``arrays.npz`` and
    ``model.json`` in the directory ``path`` (nothing is pickled): the shown member's
    boxes, weights and box label probabilities, and every ensemble member's; and
    ``fold_models`` (outer fold -> such a pipeline, fitted without that fold's land)
    each the same way in ``folds/<k>/`` with the labels it saw (a fold may lack a
    class), listed in ``model.json`` as ``fold_models``."""
    path = Path(path)
    meta = dict(meta or {})
    if fold_models:
        shared = {k: v for k, v in meta.items() if k in ("run_id", "grid", "level", "target")}
        for k, fold_model in fold_models.items():
            seen = fold_model.named_steps["model"].classes_.tolist()
            names = dict(zip(meta.get("labels", []), meta.get("classes", [])))
            save_model(path / FOLDS / str(int(k)), fold_model, feature_names, {
                **shared, "fold": int(k), "labels": seen,
                **({"classes": [names[c] for c in seen]} if names else {})})
        meta["fold_models"] = sorted(int(k) for k in fold_models)
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
           **meta}
    (path / "model.json").write_text(json.dumps(doc, indent=2, default=str))


class StoredModel:
    """A trained pipeline rebuilt from arrays: median imputation, standardisation and
    eSPA+, applied with the same arithmetic as the scikit-learn pipeline it came from;
    ``folds``, the run's outer folds' models (each a ``StoredModel``, empty for a run
    stored without them)."""

    def __init__(self, statistics, mean, scale, estimator, meta, folds=()):
        self.statistics, self.mean, self.scale = statistics, mean, scale
        self.estimator = estimator
        self.meta = meta
        self.classes_ = estimator.classes_
        self.folds = list(folds)

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

    def novelty(self, X):
        """How far each sample lies outside the training data, in [0, 1]: the share of
        the final model's training samples nearer to their box than it is (1: farther
        than all of them); None for a model trained before this was stored."""
        return self._novelty(self.transform(X))

    def any_rts(self) -> np.ndarray:
        """The model's labels that are some RTS (every label but 0, "none")."""
        labels = np.asarray(self.meta["labels"])
        return labels[labels != 0]

    def p_any(self, X) -> np.ndarray:
        """P(any RTS): the summed probability of every class but "none"."""
        return self.predict_proba(X)[:, np.isin(self.classes_, self.any_rts())].sum(axis=1)

    @property
    def class_density(self) -> np.ndarray | None:
        """Each class's RTS density in training, in the order of the model's labels (its
        outputs): the RTS area of the run's labelled samples of the class over their land
        area (km2 of RTS per km2 of land, at most 1); None for a run stored without it
        (``class_density`` of ``model.json``)."""
        dens = self.meta.get("class_density")
        return None if dens is None else np.asarray(dens, dtype=np.float64)

    def expected_density(self, X=None, proba=None):
        """The expected RTS density of the samples ``X`` (or of their class
        probabilities ``proba``): the sum over classes of P(class) times the class's RTS
        density (:attr:`class_density`): the triage's score, there measured out of fold.
        None for a run stored without the densities."""
        dens = self.class_density
        if dens is None:
            return None
        return (self.predict_proba(X) if proba is None else np.asarray(proba)) @ dens

    def fold_spread(self, X):
        """The standard deviation of P(any RTS) across the run's outer folds' models,
        each fitted without one fold's blocks of land: how much the answer hangs on
        which land was mapped (larger than the members' spread far from the mapped
        regions); None for a run stored with fewer than two of them."""
        if len(self.folds) < 2:
            return None
        return np.std([fold.p_any(X) for fold in self.folds], axis=0)

    def predictions(self, X) -> dict:
        """Everything ``predict`` writes of the samples ``X``, from one imputation and
        standardisation for the model's own: the class probabilities (``proba``), the
        members' spread of P(any RTS) (``spread``, see
        :meth:`ESPAClassifier.predict_proba_spread`), :meth:`novelty`,
        :meth:`fold_spread` and :meth:`expected_density` (``density``; None where the
        run lacks what they need)."""
        Xt = self.transform(X)
        proba, spread = self.estimator.predict_proba_spread(Xt, self.any_rts())
        novelty = self._novelty(Xt)
        del Xt  # each fold's model makes its own
        return {"proba": proba, "spread": spread, "novelty": novelty,
                "fold_spread": self.fold_spread(X),
                "density": self.expected_density(proba=proba)}

    def _novelty(self, Xt):
        ref = self.meta.get("novelty_reference")
        if not ref:
            return None
        d = self.estimator.box_distance(Xt)
        # a distance that many samples share (tied quantiles) reads the middle of their
        # share, not its top; beyond the farthest sample, 1
        ref = np.asarray(ref, dtype=np.float64)
        values, first, n = np.unique(ref, return_index=True, return_counts=True)
        share = (first + (n - 1) / 2) / max(len(ref) - 1, 1)
        out = np.interp(d, values, share)
        out[d > values[-1]] = 1.0
        out[d < values[0]] = 0.0
        return out


NOVELTY_QUANTILES = 201
"""Quantiles of the training samples' box distances kept with a model (every half
percent), against which a cell's novelty is read."""


def novelty_reference(model: Pipeline, X, rows=None) -> list[float]:
    """Quantiles of the W-weighted distance of the training samples (``X``, or its
    ``rows``) of a fitted imputer + scaler + ESPAClassifier pipeline to their nearest
    boxes: what :meth:`StoredModel.novelty` reads a cell's distance against. Read
    2^16 rows at a time."""
    rows = np.arange(len(X)) if rows is None else np.asarray(rows)
    est, prep = model.named_steps["model"], model[:-1]
    d = np.concatenate([est.box_distance(prep.transform(
        np.asarray(X[rows[a:a + 2**16]], dtype=np.float64)))
        for a in range(0, len(rows), 2**16)] or [np.zeros(0)])
    return np.quantile(d, np.linspace(0.0, 1.0, NOVELTY_QUANTILES)).tolist()


def load_model(path) -> StoredModel:
    """Rebuild a model saved by :func:`save_model`; it predicts exactly as before.

    Both files are checked before the model is used, so that a damaged or forged model
    gives one ``ValueError`` naming the file, the field and what was expected: the
    fields of ``model.json``; the arrays of ``arrays.npz``, their shapes read from
    their ``.npy`` headers and checked against ``model.json`` and the archive's sizes
    before anything is allocated; then their values (finite, weights and box label
    probabilities on the simplex). The outer folds' models its ``fold_models`` lists
    are checked the same way, and must read the same features and some of its classes;
    the run's and its folds' arrays together hold at most ``MAX_ELEMENTS`` numbers.
    """
    path = Path(path)
    from .model_check import checked_files, checked_folds

    meta, params, arrays = checked_files(path)
    folds = [_rebuilt(f_arrays, f_meta, f_params)
             for f_meta, f_params, f_arrays in checked_folds(path, meta)]
    return _rebuilt(arrays, meta, params, folds)


def _rebuilt(arrays, meta, params, folds=()) -> StoredModel:
    """The stored model of checked arrays and ``model.json``."""
    from ..espa import ESPAClassifier

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
                       est, meta, folds)


def predict_frame(model: StoredModel, X: pd.DataFrame) -> np.ndarray:
    """Class probabilities for a feature table, checked against the model's features."""
    names = model.meta["feature_names"]
    missing = [n for n in names if n not in X.columns]
    if missing:
        raise ValueError(f"the data lack {len(missing)} feature(s) the model was trained on, "
                         f"first {missing[0]!r}.")
    return model.predict_proba(X[names].to_numpy(dtype=np.float64))
