"""Transfer to unseen regions, learning curves by labelled area and temporal validation
(entropice.runs.transfer, `entropice evaluate`)."""

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import small_cube
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box
from typer.testing import CliRunner

from entropice.cli import app
from entropice.grids import get_grid
from entropice.runs import RunStore
from entropice.runs import transfer as T

FAST = {"features": ["era5_*"], "baselines": ["LogisticRegression", "Majority"],
        "n_estimators": 1, "n_restarts": 2, "weight_prior": "none"}
ESPA = {"n_boxes": 8, "eps_C": 1.0, "eps_W": 1.0, "class_weight": "balanced"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["", "a", "b", "c", "d"]), min_size=1, max_size=60))
def test_leave_one_region_out_never_trains_on_the_held_out_region(regions):
    r = np.array(regions, dtype=object)
    splits = T.region_splits(r)
    assert [name for name, *_ in splits] == sorted(set(regions) - {""})
    for name, train, test in splits:
        assert (r[test] == name).all() and not (r[train] == name).any()
        assert not (r[train] == "").any()  # unlabelled cells train nothing
        assert len(train) + len(test) == (r != "").sum()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(list("abcdefgh")), min_size=8, max_size=80),
       st.integers(1, 3), st.integers(0, 2**16))
def test_learning_curves_train_on_nested_regions_never_held_out(regions, n_test, seed):
    r = np.array(regions, dtype=object)
    if len(set(regions)) < n_test + 1:
        with pytest.raises(ValueError, match="learning curves need at least"):
            T.learning_splits(r, n_test, 2, seed)
        return
    splits = T.learning_splits(r, n_test, 2, seed)
    for rep in (0, 1):
        draw = [s for s in splits if s["repeat"] == rep]
        sizes = [len(s["train_regions"]) for s in draw]
        pool = len(set(regions)) - n_test
        assert sizes[0] == 1 and sizes[-1] == pool and sizes == sorted(set(sizes))
        for small, large in zip(draw, draw[1:]):  # nested
            assert set(small["train"]) <= set(large["train"])
        for s in draw:
            assert not set(r[s["train"]]) & set(s["test_regions"])
            assert set(r[s["test"]]) == set(s["test_regions"])


@given(st.lists(st.integers(2015, 2024), min_size=1, max_size=50))
def test_temporal_validation_never_trains_on_the_year_it_predicts_or_later(years):
    y = np.array(years)
    splits = T.temporal_splits(y)
    assert [year for year, *_ in splits] == sorted(set(years))[1:]
    for year, train, test in splits:
        assert (y[train] < year).all() and (y[test] == year).all()
        assert len(train) == (y < year).sum()


def test_persistence_and_change_skip_the_years_a_cell_was_not_mapped():
    nan = np.nan
    labels = np.array([[0, 1, nan, nan],
                       [nan, 1, 2, nan],
                       [1, nan, nan, nan]])
    np.testing.assert_array_equal(T.last_known(labels), [1, 1, 2, nan])
    # cell 0: 0 -> 1 (changed), cell 1: 1 -> 1 (kept); cells 2, 3: one label or none
    assert T.label_change(labels) == 0.5
    assert np.isnan(T.label_change(np.array([[0, nan], [nan, 1]])))


def learnable(seed=0, n_regions=8):
    """An H3 level-3 group whose eight longitude sectors each see a different window of
    the one feature that sets the label (RTS in a band of it), so a model learns the
    band's two edges only from enough regions."""
    ds = get_grid("h3", 3).cells(min_lat=50.0)
    rng = np.random.default_rng(seed)
    n = ds.sizes["cells"]
    sector = ((ds.lon.values + 180) // (360 / n_regions)).astype(int) % n_regions
    x = 0.45 * sector + rng.uniform(0, 2.0, n)
    any_rts = (x > 1.6) & (x < 3.2)
    z = rng.normal(size=n)
    cls = np.where(any_rts, 1 + (z > -0.4) + (z > 0.4), 0).astype(float)
    cls[rng.random(n) < 0.1] = np.nan  # some cells not mapped
    year = lambda v: np.stack([v, v])  # noqa: E731
    ds["land_fraction"] = ("cells", np.ones(n))
    ds["rts_class"] = (("year", "cells"), year(cls), {"flag_meanings": "none low medium high"})
    ds["rts_count"] = (("year", "cells"), year(np.where(np.isnan(cls), np.nan, cls)))
    ds["rts_area_km2"] = (("year", "cells"), year(np.where(np.isnan(cls), np.nan, cls * 0.1)))
    ds["era5_x"] = (("year", "cells"), year(x) + rng.normal(0, 0.05, (2, n)))
    ds["era5_z"] = (("year", "cells"), year(z))
    ds["era5_noise"] = (("year", "cells"), rng.normal(size=(2, n)))
    regions = np.where(np.isfinite(cls), np.array([f"sector {k}" for k in range(8)])[sector],
                       T.UNLABELLED).astype(object)
    return ds.assign_coords(year=[2021, 2022]), regions


def test_learning_curves_rise_with_the_labelled_area():
    """Monotone in expectation: mean ROC AUC over draws and seeds never falls by more
    than a little from one training size to the next, and all regions beat one."""
    curves = []
    for seed in (0, 1):
        ds, regions = learnable(seed)
        lc = T.learning_curve(ds, regions, {**FAST, "random_state": seed}, ESPA, repeats=3)
        curves.append(lc)
    lc = pd.concat(curves)
    m = lc[lc.model == "eSPA+"].groupby("train_regions").roc_auc.mean()
    assert (np.diff(m.values) > -0.03).all(), m
    assert m.values[-1] > m.values[0] + 0.05, m
    # a linear model cannot learn a band: more regions do not help it
    lr = lc[lc.model == "LogisticRegression"].groupby("train_regions").roc_auc.mean()
    assert lr.values[-1] < m.values[-1] - 0.1
    assert (lc[lc.model == "Majority"].roc_auc == 0.5).all()
    land = lc[lc.model == "eSPA+"].groupby(["repeat", "train_regions"]).train_land_km2.first()
    assert (land.groupby("repeat").diff().dropna() > 0).all()  # more regions, more land


def test_leave_one_region_out_table():
    ds, regions = learnable()
    t = T.leave_one_region_out(ds, regions, FAST, ESPA)
    assert set(t.region) == {f"sector {k}" for k in range(8)}
    assert set(t.model) == {"eSPA+", "LogisticRegression", "Majority"}
    n = (regions != T.UNLABELLED).sum() * 2  # two years
    assert ((t.train_samples + t.test_samples) == n).all()
    espa = t[t.model == "eSPA+"].set_index("region")
    # the middle sectors see both edges of the band around them: they transfer best
    assert espa.roc_auc.max() > 0.8 and espa.roc_auc.notna().all()
    assert ((t.land_for_90pct_rts > 0) & (t.land_for_90pct_rts <= 1)).all()


def test_temporal_validation_beside_persistence_and_says_when_labels_are_static():
    ds, _ = learnable()
    tv, changed = T.temporal_validation(ds, FAST, ESPA)
    assert changed == 0.0  # the same labels in both years
    assert set(tv.year) == {2022}
    assert {"persistence", "climatology", "eSPA+"} <= set(tv.model)
    # static labels: persistence is perfect, which says nothing about time
    assert tv.set_index("model").loc["persistence", "roc_auc"] == 1.0
    # labels that change: the next year's differ from persistence
    cls = ds.rts_class.values.copy()
    cls[1, ::7] = np.where(np.isfinite(cls[1, ::7]), 3 - cls[1, ::7], np.nan)
    ds["rts_class"] = (("year", "cells"), cls, ds.rts_class.attrs)
    tv, changed = T.temporal_validation(ds, FAST, ESPA)
    assert 0.05 < changed < 0.3
    assert tv.set_index("model").loc["persistence", "roc_auc"] < 1.0


def test_regions_from_the_inventorys_coverage():
    ds, _ = learnable()
    lon, lat = ds.lon.values, ds.lat.values
    coverage = gpd.GeoDataFrame({"region": ["west", "east"]},
                                geometry=[box(-120, 60, -100, 75), box(100, 60, 120, 75)],
                                crs=4326)
    r = T.cell_regions(ds, coverage)
    labelled = np.isfinite(ds.rts_class.values).any(axis=0)
    assert (r[~labelled] == T.UNLABELLED).all()
    inside_west = labelled & (lon > -119) & (lon < -101) & (lat > 61) & (lat < 74)
    assert inside_west.any() and (r[inside_west] == "west").all()
    assert set(r[labelled]) == {"west", "east"}  # every labelled cell: the nearest one
    # without coverage: spatial clusters
    k = T.cell_regions(ds, None, n_regions=5)
    assert len(set(k[labelled])) == 5 and (k[~labelled] == T.UNLABELLED).all()


def test_entropice_evaluate_writes_into_the_run(tmp_path):
    run_id = small_cube.build(tmp_path / "cube.zarr")
    (tmp_path / "config.toml").write_text(
        'cube = "cube.zarr"\n[grids]\nh3 = [3]\n[train]\nmodels = "models"\n'
        'baselines = ["LogisticRegression", "Majority"]\nn_estimators = 1\n'
        'n_restarts = 1\n')
    res = CliRunner().invoke(app, ["evaluate", "-c", str(tmp_path / "config.toml"), "-q",
                                   "--repeats", "2"])
    assert res.exit_code == 0, res.output
    assert f"h3/3, run {run_id}" in res.output and "leave-one-region-out" in res.output
    assert "labels do not change from year to year" in res.output  # the small cube's
    tables, info = RunStore(tmp_path / "models").evaluation(run_id)
    assert set(tables) == {"transfer", "learning_curve", "temporal"}
    assert info["regions_from"] == "k-means" and len(info["regions"]) == 8
    assert json.loads((tmp_path / "models" / run_id / "evaluation.json").read_text())
    res = CliRunner().invoke(app, ["evaluate", "-c", str(tmp_path / "config.toml"),
                                   "--group", "h3/2", "-q"])
    assert res.exit_code == 1 and "no trained run for h3/2" in res.output


def test_each_fit_is_a_step_of_a_bar_whose_total_is_known_first():
    """`entropice evaluate` shows a step per fit (split x model): the fits each measure
    counts before it starts are those it makes."""
    import io

    from tqdm import tqdm

    ds, regions = learnable()
    d = T.Samples(ds, FAST, regions)
    planned = T.planned_fits(d, repeats=1)
    assert planned == {"transfer": 8 * 3, "learning_curve": 4 * 3, "temporal": 1 * 3}
    measures = {"transfer": lambda bar: T.leave_one_region_out(ds, regions, FAST, ESPA,
                                                               samples=d, bar=bar),
                "learning_curve": lambda bar: T.learning_curve(ds, regions, FAST, ESPA,
                                                               repeats=1, samples=d, bar=bar),
                "temporal": lambda bar: T.temporal_validation(ds, FAST, ESPA, samples=d,
                                                              bar=bar)}
    for what, measure in measures.items():
        with tqdm(total=planned[what], file=io.StringIO()) as bar:
            measure(bar)
            assert bar.n == planned[what], what


def test_a_search_in_each_split_sees_its_training_samples_alone(monkeypatch):
    """With ``SEARCH`` eSPA+'s parameters are searched in each split (as training
    searches, on inner spatial blocks), on samples of the regions trained on alone."""
    ds, regions = learnable()
    section = {**FAST, "n_jobs": 1, "inner_folds": 2, "search_rows": 1000,
               "grid": {"n_boxes": [4, 8], "eps_C": [1.0], "eps_W": [1.0],
                        "class_weight": ["balanced"]}}
    d = T.Samples(ds, section, regions)
    searched, plain = [], T.fit_sample

    def fit(make, sample, s, bar=None):
        model, search = plain(make, sample, s, bar)
        if search is not None:
            searched.append((set(d.regions[sample[4]]), len(sample[4]), search["params"]))
        return model, search

    monkeypatch.setattr(T, "fit_sample", fit)
    t = T.leave_one_region_out(ds, regions, section, T.SEARCH, samples=d)
    held_out = sorted(set(t.region))
    assert len(searched) == len(held_out) == 8
    for region, (seen, n, params) in zip(held_out, searched):
        assert region not in seen and len(seen) == 7 and n == 1000
        assert params["n_boxes"] in (4, 8)
    assert t[t.model == "eSPA+"].roc_auc.notna().all()


def test_a_split_with_fewer_inner_blocks_than_folds_still_searches():
    """A split of few coarse regions holds fewer inner blocks than ``inner_folds``: its
    search holds out as many as it has (GroupKFold would refuse), and a split of one
    block fits the grid's first candidate; evaluate never stops there."""
    ds, regions = learnable()
    section = {**FAST, "n_jobs": 1, "inner_folds": 3, "search_rows": 1000,
               "grid": {"n_boxes": [4, 8], "eps_C": [1.0], "eps_W": [1.0],
                        "class_weight": ["balanced"]}}
    d = T.Samples(ds, section, regions)
    models = {"eSPA+": T._models(d.s, T.SEARCH, d.indicators)["eSPA+"]}
    for n_blocks in (1, 2):
        blocks = np.unique(d.blocks)[:n_blocks]
        train = np.flatnonzero(np.isin(d.blocks, blocks))
        test = np.flatnonzero(~np.isin(d.blocks, blocks))
        assert len(np.unique(d.y[train])) > 1
        scores = d.fit_score(models, train, test)
        assert np.isfinite(scores["eSPA+"]["roc_auc"]), n_blocks
    made = T._within(models["eSPA+"], 2, d.s)
    assert made.cv.get_n_splits() == 2
    assert not hasattr(T._within(models["eSPA+"], 1, d.s), "param_grid")
