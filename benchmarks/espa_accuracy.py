"""eSPA+ beside standard classifiers on scikit-learn's reference data sets.

Prints, per data set, the mean over 5 stratified folds of the macro one-vs-rest ROC
AUC, the balanced accuracy and the log loss (scikit-learn's "neg_log_loss", sign
flipped: lower is better). Every model sees standardised features. Two eSPA+ rows:
"eSPA+ (tuned)" with the default, probabilistic read-out (soft assignment, smoothed
box label probabilities, restarts chosen on held-out samples) and "eSPA+ reference
(tuned)" with ``entropice.espa.REFERENCE`` (the label frequencies of the nearest box).
Both pick n_boxes, eps_C and eps_W by the same 3-fold grid search inside each training
fold, scored by ROC AUC ("roc_auc_ovr": it gives the default eSPA+ a higher AUC than
"neg_log_loss" on breast_cancer and digits, for a slightly higher log loss; see
SEARCH_SCORING). Below the table: the verdicts and the grid points chosen.

    python benchmarks/espa_accuracy.py [--quick]

Targets for the default eSPA+: within 0.01 ROC AUC of the best model on every data
set, and not the worst log loss on any data set.
"""

import argparse
import time
from collections import Counter

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from entropice.espa import REFERENCE, ESPAClassifier

DATASETS = {"breast_cancer": load_breast_cancer, "wine": load_wine, "digits": load_digits}
SEARCH_SCORING = "roc_auc_ovr"
"""Score of the inner grid search, for both eSPA+ rows. Over this grid, the default
eSPA+ (weight_prior="corr") reached a mean ROC AUC of 0.988 / 0.992 / 0.995 (breast_cancer
/ wine / digits) searched by "roc_auc_ovr", against 0.979 / 0.993 / 0.994 by
"neg_log_loss", which misses the 0.01 target on breast_cancer; its log loss is higher
(0.14 / 0.19 / 0.35 against 0.14 / 0.16 / 0.28) but far from the worst."""
DEFAULT, REF = "eSPA+ (tuned)", "eSPA+ reference (tuned)"


class KMeansMajority(ClassifierMixin, BaseEstimator):
    """k-means boxes with the label frequencies of each cluster: eSPA+ without W or eps_C."""

    def __init__(self, n_clusters=20, random_state=0):
        self.n_clusters = n_clusters
        self.random_state = random_state

    def fit(self, X, y):
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        self.km_ = KMeans(self.n_clusters, n_init=4, random_state=self.random_state).fit(X)
        counts = np.zeros((self.n_clusters, len(self.classes_)))
        np.add.at(counts, (self.km_.labels_, y_enc), 1.0)
        self.proba_ = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        return self

    def predict_proba(self, X):
        return self.proba_[self.km_.predict(X)]

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def espa_grid(n_samples, quick):
    """The grid of both eSPA+ rows; at most a box per 4 samples of the data set."""
    boxes = [10, 40] if quick else [10, 30, 60, 100]
    return {
        "espaclassifier__n_boxes": [k for k in boxes if k <= n_samples // 4],
        "espaclassifier__eps_C": [0.3, 3.0] if quick else [0.01, 0.1, 1.0, 10.0],
        "espaclassifier__eps_W": [1.0, np.inf] if quick else [0.1, 1.0, np.inf],
    }


def espa_search(n_samples, quick, scoring=SEARCH_SCORING, **params):
    """eSPA+ (with ``params``, e.g. **REFERENCE) tuned by a grid search."""
    model = make_pipeline(StandardScaler(),
                          ESPAClassifier(random_state=0, n_restarts=4, **params))
    return GridSearchCV(model, espa_grid(n_samples, quick), scoring=scoring, cv=3,
                        n_jobs=-1)


def models(n_samples, quick):
    return {
        DEFAULT: espa_search(n_samples, quick),
        REF: espa_search(n_samples, quick, **REFERENCE),
        "RandomForest": RandomForestClassifier(300, random_state=0, n_jobs=-1),
        "HistGradientBoosting": HistGradientBoostingClassifier(random_state=0),
        "LogisticRegression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "KMeans+majority": make_pipeline(StandardScaler(), KMeansMajority(20)),
    }


def chosen(estimators):
    """The grid point each outer fold's search picked, most frequent first."""
    picks = Counter(
        ", ".join(f"{k.split('__')[1]}={v:g}" for k, v in sorted(est.best_params_.items()))
        for est in estimators)
    return "; ".join(f"{p} (x{n})" for p, n in picks.most_common())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller eSPA+ grid")
    args = parser.parse_args()
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    scoring = ["roc_auc_ovr", "balanced_accuracy", "neg_log_loss"]
    print(f"eSPA+ grid search scored by {SEARCH_SCORING}")
    print("| data set | model | ROC AUC (macro OvR) | balanced accuracy | log loss | seconds |")
    print("|---|---|---|---|---|---|")
    verdicts, picks = [], []
    for name, load in DATASETS.items():
        X, y = load(return_X_y=True)
        aucs, losses = {}, {}
        for label, model in models(len(X), args.quick).items():
            t0 = time.perf_counter()
            res = cross_validate(model, X, y, cv=cv, scoring=scoring,
                                 return_estimator=label in (DEFAULT, REF))
            secs = time.perf_counter() - t0
            auc, bacc = res["test_roc_auc_ovr"].mean(), res["test_balanced_accuracy"].mean()
            loss = -res["test_neg_log_loss"].mean()
            aucs[label], losses[label] = auc, loss
            print(f"| {name} | {label} | {auc:.4f} | {bacc:.4f} | {loss:.4f} | {secs:.1f} |",
                  flush=True)
            if "estimator" in res:
                picks.append(f"{name}, {label}: {chosen(res['estimator'])}")
        best = max(aucs, key=aucs.get)
        gap = aucs[best] - aucs[DEFAULT]
        verdicts.append(f"{name}: eSPA+ is {gap:.4f} AUC below the best ({best}); "
                        f"target <= 0.01: {'met' if gap <= 0.01 else 'MISSED'}")
        worst = max(losses, key=losses.get)
        rank = sorted(losses, key=losses.get).index(DEFAULT) + 1
        verdicts.append(f"{name}: eSPA+ log loss {losses[DEFAULT]:.4f} is #{rank} of "
                        f"{len(losses)} (worst: {worst}, {losses[worst]:.4f}); target not "
                        f"the worst: {'met' if worst != DEFAULT else 'MISSED'}")
    print()
    print("\n".join(verdicts))
    print()
    print("grid points chosen in the 5 outer folds:")
    print("\n".join(picks))


if __name__ == "__main__":
    main()
