"""The expected RTS density end to end: a run keeps each class's RTS density (area over
land of its labelled samples), its predictions weigh the class probabilities with them
(``pred_density``), a model file's densities are checked, an older run without them
still predicts, and the dashboard offers the layer."""

import json
import shutil
import types

import numpy as np
import pytest
import xarray as xr
from test_train import group

from entropice import design, runs
from entropice.dashboard.downloads import value_column
from entropice.dashboard.layers import describe, is_prediction, layer_menu, layer_names

SETTINGS = {"n_folds": 3, "inner_folds": 2, "n_estimators": 2, "n_restarts": 1,
            "n_jobs": 1, "permutation_repeats": 1, "baselines": [],
            "grid": {"n_boxes": [4], "eps_C": [1.0], "eps_W": [1.0],
                     "class_weight": ["balanced"]}}


def labelled_group():
    """The training tests' group with land (half of each cell) and RTS area that grows
    with the class (NaN where unmapped)."""
    ds = group()
    n = ds.sizes["cells"]
    ds["land_fraction"] = ("cells", np.full(n, 0.5), {"units": "1"})
    rng = np.random.default_rng(1)
    area = ds.rts_class.values * 0.1 * (1 + rng.random(ds.rts_class.shape))
    ds["rts_area_km2"] = (("year", "cells"), area, {"units": "km2"})
    return ds


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained on the group, its store and the group."""
    ds = labelled_group()
    store = runs.RunStore(tmp_path_factory.mktemp("density") / "models")
    run_id = runs.train_group(ds, SETTINGS, store=store)["run_id"]
    return ds, store, run_id


@pytest.fixture(scope="module")
def predicted(trained):
    ds, store, run_id = trained
    return runs.predict_group(ds, store.load(run_id)).load()


def test_a_run_keeps_each_class_density_on_its_labelled_samples(trained):
    ds, store, run_id = trained
    meta = store.meta(run_id)
    labels = meta["labels"]
    assert labels == [0, 1, 2, 3]
    # by hand: over every labelled cell and year, RTS area over land area per class
    land = np.broadcast_to(ds.land_fraction.values * ds.area_km2.values,
                           ds.rts_class.shape)
    cls, area = ds.rts_class.values, np.nan_to_num(ds.rts_area_km2.values)
    expected = [area[cls == c].sum() / land[cls == c].sum() for c in labels]
    np.testing.assert_allclose(meta["class_density"], expected, rtol=1e-12)
    assert meta["class_density"][0] == 0.0 and np.all(np.diff(expected) > 0)
    model = store.load(run_id)
    np.testing.assert_array_equal(model.class_density, meta["class_density"])
    assert not model.folds[0].meta.get("class_density")  # the run's, not its folds'


def test_predictions_carry_the_expected_density(trained, predicted):
    ds, store, run_id = trained
    model = store.load(run_id)
    dens = np.asarray(store.meta(run_id)["class_density"])
    pred = predicted
    assert pred.pred_density.dims == ("year", "cells")
    assert pred.pred_density.dtype == np.float32
    np.testing.assert_allclose(pred.pred_density.values,
                               pred.pred_proba.values.astype(np.float64) @ dens,
                               rtol=1e-5, atol=1e-9)
    assert float(pred.pred_density.max()) > 0
    attrs = pred.pred_density.attrs
    assert attrs["units"] == "1"  # as the cube's rts_density (RTS area over land area)
    assert attrs["long_name"] == "expected RTS density"
    assert "class_density" in attrs["description"] and attrs["run_id"] == run_id
    np.testing.assert_allclose(attrs["class_density"], dens)
    # the model's own helper agrees, from features or from probabilities
    cells = design.cell_features(ds.isel(year=0),
                                 model.meta["feature_names"]).to_numpy(np.float64)
    np.testing.assert_allclose(model.expected_density(cells),
                               model.predict_proba(cells) @ dens)
    np.testing.assert_allclose(pred.pred_density.isel(year=0).values,
                               model.expected_density(cells), rtol=1e-5, atol=1e-9)


def rewrite(run, change):
    doc = json.loads((run / "model.json").read_text())
    change(doc)
    (run / "model.json").write_text(json.dumps(doc))


@pytest.fixture
def copy(trained, tmp_path):
    """A copy of the trained run's model to tamper with."""
    _, store, run_id = trained
    return shutil.copytree(store.path(run_id), tmp_path / "run")


@pytest.mark.parametrize("bad, match", [
    ([0.0, -0.01, 0.02, 0.03], r"'class_density' is \[0.0, -0.01, 0.02, 0.03\]; "
                               r"expected a list of RTS densities from 0 to 1"),
    ([0.0, 1e39, 1e300, 1.7e308], r"'class_density' is \[0.0, 1e\+39"),  # overflows
    ([0.0, 0.01, 0.02, 1.5], r"'class_density' is \[0.0, 0.01, 0.02, 1.5\]"),
    ([0.0, float("nan"), 0.02, 0.03], r"'class_density' is \[0.0, NaN, 0.02, 0.03\]"),
    ([0.0, float("inf"), 0.02, 0.03], r"'class_density' is \[0.0, Infinity"),
    ([0.0, "0.01", 0.02, 0.03], r"'class_density' is"),
    ([0.0, True, 0.02, 0.03], r"'class_density' is"),
    (0.01, r"'class_density' is 0.01; expected a list"),
    ([0.0, 0.01, 0.02], r"'class_density' holds 3 densities; expected one per label \(4"),
])
def test_a_bad_class_density_is_refused(copy, bad, match):
    rewrite(copy, lambda d: d.update(class_density=bad))
    with pytest.raises(ValueError, match=match) as err:
        runs.load_model(copy)
    message = str(err.value)
    assert message.startswith(f"invalid model file {copy / 'model.json'}: 'class_density'")
    assert "\n" not in message


def test_an_older_run_without_densities_predicts_without_pred_density(trained, predicted,
                                                                       copy):
    ds = trained[0]
    rewrite(copy, lambda d: d.pop("class_density"))
    model = runs.load_model(copy)
    assert model.class_density is None and model.expected_density(np.zeros((1, 4))) is None
    pred = runs.predict_group(ds, model).load()
    assert "pred_density" not in pred
    xr.testing.assert_equal(pred.drop_vars("pred_density", errors="ignore"),
                            predicted.drop_vars("pred_density"))
    assert "pred_density" not in layer_names(ds.assign(pred.data_vars))


def test_the_dashboard_offers_the_expected_density(trained, predicted):
    ds = trained[0].assign(predicted.data_vars)
    menu = layer_menu(ds)["Predictions"]
    assert menu["expected RTS density"] == "pred_density"
    assert list(menu)[:2] == ["P(any RTS)", "expected RTS density"]  # next to P(any RTS)
    assert is_prediction("pred_density")
    assert describe(ds, "pred_density") == ("expected RTS density", "")
    selection = types.SimpleNamespace(dataset=ds, layer="pred_density",
                                      describe=lambda: describe(ds, "pred_density"))
    assert value_column(selection) == "expected RTS density"
