"""The ``[train]`` section's defaults, and a section read against them."""

from __future__ import annotations

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


def train_settings(section) -> dict:
    """The ``[train]`` settings: ``section`` (a dict, or None) over :data:`DEFAULTS`, a
    row cap of 0 read as None (all rows), ``"inf"`` in the search grid as a float."""
    s = {**DEFAULTS, **(section or {})}
    for key in ("search_rows", "fit_rows", "tree_rows", "score_rows"):  # 0 (TOML has no None): all
        s[key] = None if s[key] is None else (int(s[key]) or None)
    s["grid"] = {k: [float(v) if v in ("inf", "-inf") else v for v in vals]
                 for k, vals in {**DEFAULTS["grid"], **s.get("grid", {})}.items()}
    return s
