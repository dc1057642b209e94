"""Training pieces on small groups built here: design matrix, spatial folds, metrics,
the triage curve, models saved as arrays, and the run store."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter
from sklearn import metrics as skm
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import KFold, cross_val_score

from entropice import design, runs
from entropice.espa import REFERENCE, ESPAClassifier
from entropice.grids import get_grid

GRID = get_grid("h3", 5)


def group(seed=0, years=(2021, 2022)):
    """Cells of a 10 x 30 deg box with clustered RTS classes and a few features."""
    cells = GRID.cells()
    box = (cells.lat.values > 62) & (cells.lat.values < 72) & (cells.lon.values > 100) & (
        cells.lon.values < 130)
    ds = cells.isel(cells=np.flatnonzero(box))
    rng = np.random.default_rng(seed)
    # a smooth random field on a lat/lon raster, read at the cell centres: clustered labels
    field = gaussian_filter(rng.standard_normal((50, 150)), 4)
    r = np.clip(((ds.lat.values - 62) * 5).astype(int), 0, 49)
    c = np.clip(((ds.lon.values - 100) * 5).astype(int), 0, 149)
    f = field[r, c] / field.std()
    n = ds.sizes["cells"]
    classes = np.digitize(f, [-0.3, 0.5, 1.2]).astype(float)
    classes[rng.random(n) < 0.1] = np.nan  # unmapped
    ds["rts_class"] = (("year", "cells"), np.tile(classes, (len(years), 1)),
                       {"units": "1", "long_name": "class",
                        "flag_meanings": "none low medium high"})
    ds["rts_count"] = (("year", "cells"), np.tile(np.nan_to_num(classes) * 2, (len(years), 1)),
                       {"units": "1", "long_name": "count"})
    ds["era5_tdd_sum"] = (("year", "cells"), 800 + 100 * f + rng.normal(0, 50, (len(years), n)),
                          {"units": "degC day", "long_name": "tdd"})
    slope = rng.gamma(2, 2, n)
    slope[:5] = np.nan
    ds["dem_slope_mean"] = ("cells", slope, {"units": "degree", "long_name": "slope"})
    ds["emb_pc01"] = (("year", "cells"), rng.normal(size=(len(years), n)),
                      {"units": "1", "long_name": "pc1"})
    return ds.assign_coords(year=list(years))


def test_design_matrix():
    ds = group()
    dm = design.design_matrix(ds)
    labelled = np.isfinite(ds.rts_class.values).sum()
    assert len(dm.y) == labelled == len(dm.X) == len(dm.cell_ids) == len(dm.years)
    assert list(dm.X.columns) == ["dem_slope_mean", "emb_pc01", "era5_tdd_sum",
                                  "dem_slope_mean_missing"]  # by name, flags last
    assert dm.classes == ["none", "low", "medium", "high"]
    # the flag carries no eSPA+ weight, and nor does a near-constant column
    assert dm.indicators() == [3]
    dm.X["dem_flat"] = np.where(np.arange(len(dm.X)) < 5, 1.0, 0.0)
    assert dm.indicators() == [3, 4]
    model = ESPAClassifier(6, eps_W=0.05, indicators=dm.indicators(), random_state=0)
    runs.make_model(model).fit(dm.X.to_numpy(), dm.y)
    assert model.feature_weights_[3] == model.feature_weights_[4] == 0.0
    assert model.feature_weights_[:3].sum() == pytest.approx(1.0)
    dm.X = dm.X.drop(columns="dem_flat")
    # yearly features follow the sample's year; static ones repeat
    k = np.flatnonzero(dm.years == 2022)[0]
    pos = int(np.searchsorted(ds.cell_ids.values, dm.cell_ids[k]))
    assert dm.X.era5_tdd_sum[k] == ds.era5_tdd_sum.sel(year=2022).values[pos]
    # the same samples read from the group a set of rows at a time
    rows = design.design_rows(ds)
    assert rows.columns == list(dm.X.columns) and rows.indicators() == [3]
    some = np.flatnonzero(dm.years == 2022)[::7]
    np.testing.assert_array_equal(rows.read(some), dm.X.to_numpy()[some])
    dropped = design.design_matrix(ds, missing="drop")
    assert len(dropped.y) < len(dm.y) and "dem_slope_mean_missing" not in dropped.X
    # the scan judges the indicators as the whole matrix does, gaps or none
    flat = np.where(np.arange(ds.sizes["cells"]) < 5, 1.0, 0.0)
    flat[7:9] = np.nan
    wide = ds.assign(dem_flat=("cells", flat))
    for missing in ("impute", "drop"):
        assert (design.design_rows(wide, missing=missing).indicators()
                == design.design_matrix(wide, missing=missing).indicators())
    assert design.design_rows(wide).indicators() == [0, 4, 5]  # dem_flat, the flags
    anyrts = design.design_matrix(ds, target="any")
    assert set(anyrts.y) == {0, 1}


def test_design_matrix_errors():
    ds = group()
    with pytest.raises(ValueError, match="no labels"):
        design.design_matrix(ds.drop_vars(["rts_class", "rts_count"]))
    with pytest.raises(ValueError, match="pattern 'sar_\\*' matches nothing"):
        design.design_matrix(ds, features=("era5_*", "sar_*"))
    lonely = ds.copy(deep=True)
    vals = lonely.rts_class.values
    vals[vals == 3] = 2
    vals[0, 0] = 3
    vals[1, 0] = np.nan
    with pytest.raises(ValueError, match="class 3 has a single labelled cell"):
        design.design_matrix(lonely)


def test_spatial_folds_keep_blocks_together():
    ds = group()
    dm = design.design_matrix(ds)
    folds = runs.spatial_folds(dm.cell_ids, GRID, n_folds=5)
    blocks = GRID.parents(dm.cell_ids, 3)
    for b in np.unique(blocks):
        assert len(set(folds[blocks == b])) == 1
    sizes = np.bincount(folds)
    assert len(sizes) == 5 and sizes.min() > 0.5 * sizes.max()
    with pytest.raises(ValueError, match="blocks at level 0 for 5 folds"):
        runs.spatial_folds(dm.cell_ids[:3], GRID, ancestor_level=0)


def test_spatial_folds_matter_on_clustered_labels():
    """Random folds flatter a model that learns places; spatial folds do not."""
    ds = group(seed=3)
    dm = design.design_matrix(ds, features=("era5_*",), years=[2021])
    lat, lon = GRID.centres(dm.cell_ids)
    X = np.column_stack([lat, lon])
    rf = RandomForestClassifier(100, random_state=0)
    random_cv = cross_val_score(rf, X, dm.y, cv=KFold(5, shuffle=True, random_state=0),
                                scoring="balanced_accuracy").mean()
    folds = runs.spatial_folds(dm.cell_ids, GRID, n_folds=5, ancestor_level=2)
    splits = [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in range(5)]
    spatial_cv = cross_val_score(rf, X, dm.y, cv=splits, scoring="balanced_accuracy").mean()
    assert random_cv > spatial_cv + 0.1, (random_cv, spatial_cv)


def test_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    proba = rng.dirichlet(np.ones(3), 200)
    m = runs.evaluate(y, proba, [0, 1, 2])
    pred = np.argmax(proba, axis=1)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    onehot = np.eye(3)[y]
    assert m["brier"] == pytest.approx(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    curve = runs.reliability_curve(y, proba, [0, 1, 2])
    assert sum(curve["count"]) == 200


@given(st.integers(2, 4), st.integers(4, 200), st.integers(1, 30), st.integers(0, 2**31))
def test_macro_roc_auc_is_scikit_learns(k, n, distinct, seed):
    """With ties (``distinct`` probability vectors) and classes missing from the samples."""
    rng = np.random.default_rng(seed)
    y, labels = rng.integers(0, k, n), np.arange(k)
    proba = rng.dirichlet(np.ones(k), distinct)[rng.integers(0, distinct, n)]
    present = np.isin(labels, y)
    got = runs.metrics.macro_roc_auc(y, proba, labels)
    if present.sum() < 2:
        assert np.isnan(got)
        return
    p = proba[:, present] / np.maximum(proba[:, present].sum(axis=1, keepdims=True), 1e-15)
    want = (skm.roc_auc_score(y == labels[present][1], p[:, 1]) if present.sum() == 2 else
            skm.roc_auc_score(y, p, multi_class="ovr", labels=labels[present]))
    assert got == pytest.approx(want, abs=1e-12)


def test_triage_curve():
    rng = np.random.default_rng(2)
    land = rng.uniform(50, 100, 1000)
    rts = np.where(rng.random(1000) < 0.1, rng.uniform(0.1, 1.0, 1000), 0.0)
    perfect = runs.triage_curve(rts / land, rts, land)
    assert perfect["rts_share"][-1] == pytest.approx(1.0)
    for r, share in perfect["land_share_needed"].items():
        assert share < perfect["random_land_share_needed"][r]
    assert perfect["land_share_needed"]["0.95"] < 0.12
    shuffled = runs.triage_curve(rng.random(1000), rts, land)
    assert shuffled["land_share_needed"]["0.50"] > perfect["land_share_needed"]["0.50"]


def test_a_large_groups_triage_curve_is_stored_thinned():
    rng = np.random.default_rng(5)
    land = rng.uniform(50, 100, 200_000)
    rts = rng.gamma(0.3, 1, 200_000) * (rng.random(200_000) < 0.2)
    score = rts / land + rng.normal(0, 1e-3, 200_000)
    curve = runs.triage_curve(score, rts, land)
    assert len(curve["land_share"]) <= runs.metrics.CURVE_POINTS + 2
    assert curve["land_share"][0] == curve["rts_share"][0] == 0.0
    assert curve["land_share"][-1] == pytest.approx(1.0)
    assert np.all(np.diff(curve["land_share"]) > 0) and np.all(np.diff(curve["rts_share"]) >= 0)
    # the shares needed come from every cell: the best cells by RTS density
    order = np.argsort(-score)
    k = np.searchsorted(np.cumsum(rts[order]) / rts.sum(), 0.9)
    assert curve["land_share_needed"]["0.90"] == pytest.approx(
        land[order][:k + 1].sum() / land.sum(), abs=1e-4)


def test_triage_curve_ties_are_scanned_in_random_order():
    """A score that ties every cell ranks no better than chance, whatever the row order."""
    rng = np.random.default_rng(3)
    land = rng.uniform(50, 100, 500)
    rts = np.where(np.arange(500) < 50, 1.0, 0.0)  # the RTS cells come first in the rows
    flat = runs.triage_curve(np.zeros(500), rts, land)
    for r, share in flat["land_share_needed"].items():
        assert share == pytest.approx(float(r))


@pytest.mark.parametrize("params", [{"n_estimators": 3}, {}, REFERENCE])
def test_saved_model_predicts_exactly_the_same(tmp_path, params):
    ds = group()
    dm = design.design_matrix(ds)
    model = runs.make_model(ESPAClassifier(6, random_state=0, eps_W=0.3, **params))
    model.fit(dm.X.to_numpy(), dm.y)
    runs.save_model(tmp_path / "run", model, list(dm.X.columns), {"grid": "h3", "level": 5})
    loaded = runs.load_model(tmp_path / "run")
    assert loaded.meta["grid"] == "h3"
    np.testing.assert_array_equal(loaded.predict_proba(dm.X.to_numpy()),
                                  model.predict_proba(dm.X.to_numpy()))
    np.testing.assert_array_equal(runs.predict_frame(loaded, dm.X),
                                  model.predict_proba(dm.X.to_numpy()))
    np.testing.assert_array_equal(loaded.apply(dm.X.to_numpy()),
                                  model[-1].apply(model[:-1].transform(dm.X.to_numpy())))
    assert not list((tmp_path / "run").glob("*.pkl"))
    with pytest.raises(ValueError, match="lack 1 feature.*'emb_pc01'"):
        runs.predict_frame(loaded, dm.X.drop(columns="emb_pc01"))
    doc = json.loads((tmp_path / "run" / "model.json").read_text())
    doc["schema_version"] = 0
    (tmp_path / "run" / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="written for cube schema 0"):
        runs.load_model(tmp_path / "run")


def test_predictions_by_chunks_of_cells_equal_one_pass(tmp_path, monkeypatch):
    """predict_group streams a year and a chunk of cells (PREDICT_ROWS) at a time, each
    year written as it is made; the result does not depend on the chunk."""
    from entropice.runs import cv

    ds = group()
    dm = design.design_matrix(ds)
    model = runs.make_model(ESPAClassifier(6, random_state=0, eps_W=0.3))
    model.fit(dm.X.to_numpy(), dm.y)
    runs.save_model(tmp_path / "run", model, list(dm.X.columns),
                    {"grid": "h3", "level": 5, "run_id": "r1", "labels": [0, 1, 2, 3],
                     "classes": ["none", "low", "medium", "high"]})
    loaded = runs.load_model(tmp_path / "run")
    whole = runs.predict_group(ds, loaded).load()
    monkeypatch.setattr(cv, "PREDICT_ROWS", 7)  # 7 cells a chunk
    parts = runs.predict_group(ds, loaded, store=tmp_path / "scratch")
    assert parts.pred_proba.chunks[0] == (1,) * ds.sizes["year"]
    assert ds.sizes["cells"] > 7
    xr.testing.assert_equal(whole, parts.load())
    np.testing.assert_allclose(whole.pred_proba.sum("class"), 1.0, rtol=1e-6)


def test_novelty_is_spread_on_the_training_data_and_one_far_outside_it(tmp_path):
    """A cell's novelty reads its distance to the nearest box against the training
    samples': uniform on those samples, 1 far beyond them; predictions carry it."""
    ds = group()
    dm = design.design_matrix(ds)
    X = dm.X.to_numpy()
    model = runs.make_model(ESPAClassifier(6, random_state=0, eps_W=0.3)).fit(X, dm.y)
    meta = {"grid": "h3", "level": 5, "run_id": "r1", "labels": [0, 1, 2, 3],
            "classes": ["none", "low", "medium", "high"]}
    runs.save_model(tmp_path / "plain", model, list(dm.X.columns), meta)
    assert runs.load_model(tmp_path / "plain").novelty(X) is None  # not kept: none
    assert "pred_novelty" not in runs.predict_group(ds, runs.load_model(tmp_path / "plain"))
    runs.save_model(tmp_path / "run", model, list(dm.X.columns),
                    {**meta, "novelty_reference": runs.novelty_reference(model, X)})
    loaded = runs.load_model(tmp_path / "run")
    nov = loaded.novelty(X)
    assert nov.min() >= 0 and nov.max() <= 1
    assert abs(nov.mean() - 0.5) < 0.05 and np.mean(nov > 0.99) < 0.03
    far = X.copy()
    far[:, :3] = far[:, :3] * 50 + 1e3  # features far beyond the training range
    assert np.all(loaded.novelty(far) == 1.0)
    pred = runs.predict_group(ds, loaded).load()
    assert pred.pred_novelty.dims == ("year", "cells")
    assert float(pred.pred_novelty.min()) >= 0 and float(pred.pred_novelty.max()) <= 1


def test_predictions_carry_the_members_spread_of_any_rts(tmp_path):
    """pred_spread is the standard deviation over the ensemble's members of P(any RTS),
    the members' probabilities computed one by one; the probabilities are unchanged."""
    ds = group()
    dm = design.design_matrix(ds)
    X = dm.X.to_numpy()
    model = runs.make_model(ESPAClassifier(6, n_estimators=3, random_state=0,
                                           eps_W=0.3)).fit(X, dm.y)
    runs.save_model(tmp_path / "run", model, list(dm.X.columns),
                    {"grid": "h3", "level": 5, "run_id": "r1", "labels": [0, 1, 2, 3],
                     "classes": ["none", "low", "medium", "high"]})
    pred = runs.predict_group(ds, runs.load_model(tmp_path / "run")).load()
    est, prep = model.named_steps["model"], model[:-1]
    cells = design.cell_features(ds.isel(year=0), list(dm.X.columns)).to_numpy(np.float64)
    Xt = prep.transform(cells)
    members = np.stack([1 - m.predict_proba(Xt)[:, 0] for m in est.estimators_])
    spread = pred.pred_spread.isel(year=0).values
    np.testing.assert_allclose(spread, members.std(axis=0), atol=1e-6)
    assert spread.max() > 0.01  # the members differ somewhere
    np.testing.assert_allclose(pred.pred_proba.isel(year=0).values,
                               est.predict_proba(Xt), atol=1e-6)
    assert pred.pred_spread.attrs["units"] == "1"


def test_predictions_carry_the_outer_folds_spread_of_any_rts(tmp_path):
    """A run that kept its outer folds' models predicts ``pred_fold_spread``: the
    standard deviation over them of P(any RTS), each fold's model asked through its own
    imputation and scaling; the run's own probabilities are unchanged by them."""
    ds = group()
    dm = design.design_matrix(ds)
    X, y = dm.X.to_numpy(), dm.y
    fit = lambda rows, seed: runs.make_model(  # noqa: E731
        ESPAClassifier(6, random_state=seed, eps_W=0.3)).fit(X[rows], y[rows])
    model = fit(slice(None), 0)
    third = np.arange(len(y)) % 3
    folds = {k: fit(third != k, k) for k in range(3)}
    meta = {"grid": "h3", "level": 5, "run_id": "r1", "labels": [0, 1, 2, 3],
            "classes": ["none", "low", "medium", "high"]}
    runs.save_model(tmp_path / "plain", model, list(dm.X.columns), meta)
    runs.save_model(tmp_path / "run", model, list(dm.X.columns), meta, fold_models=folds)
    plain = runs.predict_group(ds, runs.load_model(tmp_path / "plain")).load()
    assert "pred_fold_spread" not in plain
    loaded = runs.load_model(tmp_path / "run")
    assert loaded.meta["fold_models"] == [0, 1, 2] and len(loaded.folds) == 3
    assert loaded.folds[1].meta["fold"] == 1
    pred = runs.predict_group(ds, loaded).load()
    cells = design.cell_features(ds.isel(year=0), list(dm.X.columns)).to_numpy(np.float64)
    any_rts = np.stack([1 - m.predict_proba(cells)[:, 0] for m in folds.values()])
    spread = pred.pred_fold_spread.isel(year=0).values
    np.testing.assert_allclose(spread, any_rts.std(axis=0), atol=1e-6)
    assert spread.max() > 0.01  # the folds' models differ somewhere
    xr.testing.assert_equal(pred.pred_proba, plain.pred_proba)
    assert "3 outer folds" in pred.pred_fold_spread.attrs["long_name"]


def test_a_trained_run_keeps_its_outer_folds_models(tmp_path):
    """``train_group`` stores each outer fold's eSPA+ with the run: the models the
    out-of-fold scores came from, which ``predict`` reads for ``pred_fold_spread``."""
    ds = group()
    ds["land_fraction"] = ("cells", np.ones(ds.sizes["cells"]), {"units": "1"})
    ds["rts_area_km2"] = ds.rts_count * 0.1
    settings = {"n_folds": 3, "inner_folds": 2, "n_estimators": 2, "n_restarts": 1,
                "n_jobs": 1, "permutation_repeats": 1, "baselines": [],
                "grid": {"n_boxes": [4], "eps_C": [1.0], "eps_W": [1.0],
                         "class_weight": ["balanced"]}}
    store = runs.RunStore(tmp_path)
    run = runs.train_group(ds, settings, store=store)["run_id"]
    model = store.load(run)
    assert model.meta["fold_models"] == [0, 1, 2]
    assert [f.meta["fold"] for f in model.folds] == [0, 1, 2]
    assert all(f.meta["feature_names"] == model.meta["feature_names"] for f in model.folds)
    pred = runs.predict_group(ds, model).load()
    assert pred.pred_fold_spread.dims == ("year", "cells")
    assert np.isfinite(pred.pred_fold_spread.values).all()


def test_ranking_auc_scores_the_order_of_classes():
    """The inner search's scorer: 1 when the expected class orders the samples as their
    classes, 0 reversed, and it holds when a fold lacks a class."""
    from sklearn.dummy import DummyClassifier

    class Fixed(DummyClassifier):  # predicts given probabilities
        def predict_proba(self, X):
            return np.asarray(X)

    y = np.array([0, 0, 1, 1, 3, 3])
    est = Fixed().fit(np.zeros((6, 4)), np.array([0, 1, 2, 3, 0, 1]))
    onehot = np.eye(4)[y]
    assert runs.ranking_auc(est, onehot, y) == 1.0
    assert runs.ranking_auc(est, onehot[::-1], y) == 0.0
    assert runs.ranking_auc(est, onehot[:2], y[:2]) == 0.5  # one class: no ranking


def test_run_store_owns_runs(tmp_path):
    """Run ids, the current run of each group, what the store lists and refuses."""
    ds = group()
    dm = design.design_matrix(ds)
    model = runs.make_model(ESPAClassifier(4, random_state=0)).fit(dm.X.to_numpy(), dm.y)
    store = runs.RunStore(tmp_path / "models")
    assert store.ids() == [] and store.current(GRID) is None
    made = []
    for _ in range(2):  # two runs in the same second get distinct ids
        run_id = store.new_run(GRID, "abcdef123")
        store.save(run_id, model, list(dm.X.columns), {"grid": "h3", "level": 5})
        made.append(run_id)
    other = store.new_run(get_grid("healpix", 6), "abcdef123")
    store.save(other, model, list(dm.X.columns), {"grid": "healpix", "level": 6})
    assert made[0] != made[1] and made[0].startswith("h35-")
    assert store.ids(GRID) == made[::-1]  # newest first
    assert store.current(GRID) == made[1]  # no registry: the newest
    store.set_current(GRID, made[0], config_hash="x")
    assert store.current(GRID) == made[0] and store.entry(GRID)["config_hash"] == "x"
    assert store.ids(get_grid("healpix", 6)) == [other]
    assert store.load(made[0]).meta["run_id"] == made[0]
    for bad in ("../etc", "a/b", "", None):
        with pytest.raises(ValueError, match="not a run id"):
            store.path(bad)
    store.write_summary([{"grid": "h3", "level": 5, "model": "eSPA+", "roc_auc": 0.5}])
    assert "| h3 | 5 | eSPA+ | 0.500 |" in store.summary_markdown()
    assert list(store.summary().model) == ["eSPA+"]


def test_group_from_a_real_cube_layout(tmp_path):
    """The design matrix reads a group straight from the zarr cube."""
    from entropice.cube import Cube

    ds = group()
    cube = Cube.create(tmp_path / "cube.zarr")
    cube.write_group(ds, "h3", 5, stage="test")
    dm = design.design_matrix(cube.read("h3", 5))
    assert len(dm.y) == np.isfinite(ds.rts_class.values).sum()
    assert isinstance(dm.X.iloc[0, 0], float | np.floating)
    xr.testing.assert_equal(cube.read("h3", 5).rts_class.load(), ds.rts_class)


def test_stratified_sample_keeps_each_stratum_share():
    rng = np.random.default_rng(0)
    strata = rng.choice(5, 10_000, p=[0.6, 0.2, 0.1, 0.07, 0.03])
    rows = runs.stratified_sample(strata, 1000, random_state=1)
    assert np.all(np.diff(rows) > 0)
    # every stratum gives a tenth of its samples, rounded up or down
    np.testing.assert_allclose(np.bincount(strata[rows]), np.bincount(strata) / 10, atol=1)
    np.testing.assert_array_equal(rows, runs.stratified_sample(strata, 1000, random_state=1))
    assert not np.array_equal(rows, runs.stratified_sample(strata, 1000, random_state=2))
    np.testing.assert_array_equal(runs.stratified_sample(strata, None), np.arange(10_000))
    np.testing.assert_array_equal(runs.stratified_sample(strata, 10**6), np.arange(10_000))


@given(st.lists(st.integers(0, 6), min_size=1, max_size=300), st.integers(0, 400),
       st.integers(0, 2**31))
def test_stratified_sample_rounds_each_share(strata, n, seed):
    strata = np.asarray(strata)
    rows = runs.stratified_sample(strata, n, random_state=seed)
    assert len(np.unique(rows)) == len(rows) == min(n, len(strata))
    share = min(1.0, n / len(strata))
    got = np.bincount(strata[rows], minlength=7)
    want = np.bincount(strata, minlength=7) * share
    assert np.all((got >= np.floor(want)) & (got <= np.ceil(want)))


def test_median_imputer_is_scikit_learns():
    from sklearn.impute import SimpleImputer
    from sklearn.utils.estimator_checks import check_estimator

    from entropice.runs.impute import MedianImputer

    rng = np.random.default_rng(3)
    X = rng.normal(size=(501, 6))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:, 2] = np.nan  # no value: imputed by 0, kept
    X[:250, 4] = 1.5  # a tie in the middle
    ref = SimpleImputer(strategy="median", keep_empty_features=True).fit(X[:400])
    ours = MedianImputer().fit(X[:400])
    np.testing.assert_array_equal(ours.statistics_, ref.statistics_)
    np.testing.assert_array_equal(ours.transform(X[400:]), ref.transform(X[400:]))
    check_estimator(MedianImputer())


def test_design_matrix_keeps_a_float32_cube_exact():
    ds = group()
    for n in ("era5_tdd_sum", "dem_slope_mean", "emb_pc01"):
        ds[n] = ds[n].astype(np.float32)
    dm = design.design_matrix(ds)
    assert dm.X.to_numpy().dtype == np.float32
    wide = design.design_matrix(ds.assign(era5_tdd_sum=ds.era5_tdd_sum.astype(np.float64)))
    assert wide.X.to_numpy().dtype == np.float64
    np.testing.assert_array_equal(dm.X.to_numpy().astype(np.float64), wide.X.to_numpy())
    assert dm.indicators() == wide.indicators() == [3]


def count_reads(monkeypatch) -> list:
    """How many samples each read of a group's features asks for, from now on."""
    read, plain = [], design.DesignRows.read

    def watched(self, rows=None):
        read.append(len(self) if rows is None else len(rows))
        return plain(self, rows)

    monkeypatch.setattr(design.DesignRows, "read", watched)
    return read


def test_training_at_scale_searches_and_fits_on_samples(tmp_path, monkeypatch):
    """A group larger than search_rows, fit_rows and score_rows: the search sees a
    stratified sample, the chosen eSPA+ and the baselines a larger one, the scores
    another, and the run says so."""
    ds = group()
    ds["land_fraction"] = ("cells", np.ones(ds.sizes["cells"]), {"units": "1"})
    ds["rts_area_km2"] = ds.rts_count * 0.1
    small = {"n_folds": 3, "inner_folds": 2, "n_estimators": 1, "n_restarts": 1,
             "permutation_repeats": 1, "baselines": ["RandomForest", "Majority"],
             "grid": {"n_boxes": [4, 8], "eps_C": [1.0], "eps_W": [1.0],
                      "class_weight": ["balanced"]}}
    store = runs.RunStore(tmp_path)
    full = runs.train_group(ds, small, store=store)
    meta = store.meta(full["run_id"])
    assert (meta["search_samples"] == meta["fit_samples"] == meta["scored_samples"]
            == meta["n_samples"])
    read = count_reads(monkeypatch)
    scaled = runs.train_group(ds, {**small, "search_rows": 800, "fit_rows": 3000,
                                   "tree_rows": 500, "score_rows": 4000}, store=store)
    meta = store.meta(scaled["run_id"])
    assert meta["search_samples"] == 800 and meta["fit_samples"] == 3000
    assert meta["scored_samples"] == 4000 < meta["n_samples"]
    # out of core: every fold's samples (and the final model's) in one read, then each
    # scored sample once to be predicted
    assert len(read) == 2 and read[0] < meta["n_samples"] and read[1] == 4000
    for model in ("eSPA+", "RandomForest"):
        auc = scaled["metrics"][model]["roc_auc"]
        assert auc > 0.7 and abs(auc - full["metrics"][model]["roc_auc"]) < 0.05


def test_test_folds_read_in_chunks_give_the_same_run(tmp_path, monkeypatch):
    """A group larger than TEST_ROWS is read and predicted a slab of cells at a time,
    each sample once: the scores, triage and permutation importances are those of one
    read."""
    from entropice.runs import cv

    ds = group()
    ds["land_fraction"] = ("cells", np.ones(ds.sizes["cells"]), {"units": "1"})
    ds["rts_area_km2"] = ds.rts_count * 0.1
    small = {"n_folds": 3, "inner_folds": 2, "n_estimators": 1, "n_restarts": 1,
             "baselines": ["LogisticRegression"], "permutation_repeats": 1,
             "grid": {"n_boxes": [4], "eps_C": [1.0], "eps_W": [1.0],
                      "class_weight": ["balanced"]}}
    monkeypatch.setattr(cv, "PERMUTATION_ROWS", 300)
    store = runs.RunStore(tmp_path)
    whole = runs.train_group(ds, small, store=store)
    read = count_reads(monkeypatch)
    monkeypatch.setattr(cv, "TEST_ROWS", 700)
    chunked = runs.train_group(ds, small, store=store)
    n = store.meta(chunked["run_id"])["n_samples"]
    # the folds' samples and the final ones in one read, then slabs of at most 700
    slabs = read[1:]
    assert read[0] > 700 and max(slabs) <= 700 and sum(slabs) == n and len(slabs) >= n / 700
    assert chunked["metrics"] == whole["metrics"] and chunked["triage"] == whole["triage"]
    pd.testing.assert_frame_equal(store.relevance(chunked["run_id"]),
                                  store.relevance(whole["run_id"]))


def test_search_ranks_candidates_with_fewer_members(tmp_path, monkeypatch):
    """The inner search fits each candidate with ``search_estimators`` members; the
    chosen parameters are fitted with ``n_estimators``, as the stored model shows."""
    from entropice.espa import ESPAClassifier

    members, plain = [], ESPAClassifier.fit

    def fit(self, X, y, sample_weight=None):
        members.append(self.n_estimators)
        return plain(self, X, y, sample_weight)

    monkeypatch.setattr(ESPAClassifier, "fit", fit)
    ds = group()
    ds["land_fraction"] = ("cells", np.ones(ds.sizes["cells"]), {"units": "1"})
    ds["rts_area_km2"] = ds.rts_count * 0.1
    settings = {"n_folds": 3, "inner_folds": 2, "n_estimators": 3, "search_estimators": 1,
                "n_restarts": 1, "n_jobs": 1, "permutation_repeats": 1, "baselines": [],
                "grid": {"n_boxes": [4, 8], "eps_C": [1.0], "eps_W": [1.0],
                         "class_weight": ["balanced"]}}
    store = runs.RunStore(tmp_path)
    run = runs.train_group(ds, settings, store=store)["run_id"]
    # each of 3 outer folds and the final model: 2 candidates x 2 inner folds, then one
    assert members.count(1) == 4 * 2 * 2 and members.count(3) == 4 and len(members) == 20
    assert len(store.load(run).estimator.estimators_) == 3


def test_a_run_repeats_exactly_whatever_the_thread_count(tmp_path):
    """Every model of a run is seeded: trained again, on one thread or on all, the
    out-of-fold metrics of eSPA+ and of every baseline are the same numbers."""
    import small_cube
    from threadpoolctl import threadpool_limits

    ds = small_cube.group("h3", 3)
    section = {"n_folds": 3, "inner_folds": 2, "n_estimators": 2, "n_restarts": 1,
               "permutation_repeats": 1,
               "baselines": ["RandomForest", "HistGradientBoosting", "LogisticRegression",
                             "Majority"],
               "grid": {"n_boxes": [6], "eps_C": [1.0], "eps_W": [0.1, 1.0],
                        "class_weight": ["balanced"]}}
    first = runs.train_group(ds, section, store=runs.RunStore(tmp_path / "a"))
    with threadpool_limits(1):
        again = runs.train_group(ds, {**section, "n_jobs": 1},
                                 store=runs.RunStore(tmp_path / "b"))
    for model, metrics in first["metrics"].items():
        for name, value in metrics.items():
            assert again["metrics"][model][name] == value, (model, name)
    assert first["triage"] == again["triage"]


def fold_sample(n=3000, seed=0):
    """A training fold's samples as :func:`runs.cv._read_samples` gives them: features,
    four imbalanced classes, inner blocks, and the fit and search positions."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n, 8, n_informative=5, n_classes=4,
                               weights=[0.7, 0.1, 0.1, 0.1], random_state=seed)
    blocks = np.random.default_rng(seed).integers(0, 6, n)
    return X, y, blocks, np.arange(n), np.arange(0, n, 2)


def stepped_and_whole(make, sample, settings):
    """A model fitted by :func:`runs.estimators.fit_sample` with a progress bar's maker
    (in steps) and without (at once), their probabilities of the samples, and the count
    and total of the bar it made ((0, None) if none)."""
    import io

    from tqdm import tqdm

    from entropice.runs import estimators as est

    bars = []

    def progress(total):  # the bar a fit in steps makes (none for a fit at once)
        bars.append(tqdm(total=total, file=io.StringIO()))
        return bars[-1]

    stepped, _ = est.fit_sample(make, sample, settings, progress)
    done = (bars[0].n, bars[0].total) if bars else (0, None)
    whole, _ = est.fit_sample(make, sample, settings)
    X = sample[0]
    return est.ask(stepped, X), est.ask(whole, X), stepped, whole, done


def test_a_forest_grown_in_steps_is_the_forest_of_one_fit():
    """A forest's trees grown in warm-started batches (so that a bar shows the fit's
    progress) make the model of one fit: the same probabilities, bit for bit, and the
    same parameters; other models are fitted at once, whatever the bar."""
    from entropice.runs import estimators as est
    from entropice.runs.settings import train_settings

    s = train_settings({"tree_rows": 1000})
    stepped, whole, a, b, (n, total) = stepped_and_whole(
        lambda: est.baseline("RandomForest", 0), fold_sample(), s)
    np.testing.assert_array_equal(stepped, whole)
    assert a.get_params()["model"].get_params() == b.get_params()["model"].get_params()
    assert n == total == 200
    *_, (n, _) = stepped_and_whole(lambda: est.baseline("HistGradientBoosting", 0),
                                   fold_sample(), s)
    assert n == 0


def test_a_forest_on_more_samples_than_tree_rows_has_fewer_deeper_trees():
    """On more than tree_rows samples a forest's trees draw tree_rows each, and only as
    many as draw forest_rows in all (at most the baseline's 200); on fewer it is the full
    forest; other models are left as they are. Its bar counts the trees it grows."""
    from entropice.runs import estimators as est
    from entropice.runs.settings import train_settings

    def forest(n_rows, **settings):
        rf = est.cap_trees(est.baseline("RandomForest", 0), n_rows, train_settings(settings))
        return rf[-1].n_estimators, rf[-1].max_samples

    assert forest(100_000) == (75, 80_000)  # the defaults at fit_rows
    assert forest(80_000) == forest(3000) == (200, None)  # every sample: the full forest
    assert forest(3000, tree_rows=1000, forest_rows=50_000) == (50, 1000)
    assert forest(3000, tree_rows=1000, forest_rows=0) == (200, 1000)  # no budget
    assert forest(3000, tree_rows=1000, forest_rows=10**9) == (200, 1000)  # at most 200
    assert forest(3000, tree_rows=1000, forest_rows=10) == (1, 1000)
    assert forest(10**7, tree_rows=0) == (200, None)  # trees uncapped
    hgb = est.baseline("HistGradientBoosting", 0)
    before = hgb.get_params()["model"].get_params()
    assert est.cap_trees(hgb, 10**7, train_settings(None))[-1].get_params() == before
    s = train_settings({"tree_rows": 1000, "forest_rows": 40_000})
    stepped, whole, _, b, (n, total) = stepped_and_whole(
        lambda: est.baseline("RandomForest", 0), fold_sample(), s)
    np.testing.assert_array_equal(stepped, whole)
    assert n == total == len(b[-1].estimators_) == 40
    assert {t.tree_.n_node_samples[0] for t in b[-1].estimators_} <= set(range(400, 1001))


def test_a_runs_bar_ticks_through_a_step_without_a_bar_of_its_own():
    """The group's bar is redrawn while a long step runs (its elapsed time moves on), and
    the redrawing stops once the bar is closed."""
    import io
    import threading
    import time

    from tqdm import tqdm

    from entropice.runs import cv

    out = io.StringIO()
    bar = tqdm(total=3, desc="h3/5 run", file=out, mininterval=0)
    cv._tick(bar, every=0.05)
    time.sleep(0.6)  # a step with no progress of its own
    drawn = out.getvalue().count("\r")
    assert drawn >= 5, drawn
    bar.close()
    time.sleep(0.2)
    assert not any(t.name == "tick h3/5 run" for t in threading.enumerate())
