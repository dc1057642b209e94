"""Model files are checked before use: a damaged or forged ``model.json`` or
``arrays.npz`` gives one ValueError naming the file and the field, never a raw error,
and a forged ``.npy`` header cannot make the loader allocate what the file does not
hold."""

import io
import json
import resource
import shutil
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from entropice import design, runs
from entropice.cube import Cube
from entropice.espa import ESPAClassifier
from entropice.grids import get_grid
from entropice.runs import model_check


def training_data(n=300, seed=0):
    """Four features (one with missing values) and three classes that depend on them."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = np.digitize(X[:, 0] + 0.5 * X[:, 1] + rng.normal(0, 0.3, n), [-0.5, 0.5])
    X[rng.random(n) < 0.05, 2] = np.nan
    return X, y


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A two-member eSPA+ pipeline, its training features and its saved directory."""
    X, y = training_data()
    model = runs.make_model(ESPAClassifier(5, n_estimators=2, random_state=0)).fit(X, y)
    path = tmp_path_factory.mktemp("saved") / "run"
    runs.save_model(path, model, ["a", "b", "c", "d"],
                    {"labels": [0, 1, 2], "classes": ["none", "low", "high"]})
    return model, X, path


@pytest.fixture
def run(saved, tmp_path):
    """A copy of the saved model to tamper with."""
    return shutil.copytree(saved[2], tmp_path / "run")


def arrays_of(run):
    with np.load(run / "arrays.npz") as a:
        return dict(a)


def rewrite_arrays(run, change):
    """Apply ``change`` to the model's arrays (a dict) and save them as save_model does."""
    arrays = arrays_of(run)
    change(arrays)
    np.savez(run / "arrays.npz", **arrays)


def rewrite_meta(run, change):
    doc = json.loads((run / "model.json").read_text())
    change(doc)
    (run / "model.json").write_text(json.dumps(doc))


def replace_entry(run, name, data: bytes):
    """Put ``data`` as the archive's entry of array ``name``, the other entries kept."""
    file = run / "arrays.npz"
    with zipfile.ZipFile(file) as z:
        entries = {i.filename: z.read(i) for i in z.infolist()}
    entries[name + ".npy"] = data
    with zipfile.ZipFile(file, "w") as z:
        for filename, content in entries.items():
            z.writestr(filename, content)


def refused(run, match):
    """The ValueError loading ``run`` gives: one line, naming the file, matching ``match``."""
    with pytest.raises(ValueError, match=match) as err:
        runs.load_model(run)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_an_untouched_model_predicts_exactly_as_fitted(saved):
    model, X, path = saved
    loaded = runs.load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.apply(X), model[-1].apply(model[:-1].transform(X)))


@pytest.mark.parametrize("text, match", [
    ("{not json", r"model\.json: the file is not valid JSON"),
    ("[1, 2, 3]", r"model\.json: the document is \[1, 2, 3\]; expected a JSON object"),
    (b"\xff\xfe\x00", r"model\.json: the file is not valid JSON"),
])
def test_model_json_that_is_no_json_object(run, text, match):
    file = run / "model.json"
    file.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert str(file) in refused(run, match)


@pytest.mark.parametrize("change, match", [
    (lambda d: d.pop("feature_names"), r"'feature_names' is missing; expected a non-empty "
                                       r"list of feature names"),
    (lambda d: d.update(feature_names="abcd"), r"'feature_names' is \"abcd\""),
    (lambda d: d.update(feature_names=["a", "b", 3, "d"]), r"'feature_names' is"),
    (lambda d: d.update(params=[4]), r"'params' is \[4\]; expected an object"),
    (lambda d: d.pop("temperature"), r"'temperature' is missing"),
    (lambda d: d.update(temperature=float("nan")), r"'temperature' is NaN; expected a "
                                                   r"finite number >= 0"),
    (lambda d: d.update(temperature=10**400), r"'temperature' is 1000"),
    (lambda d: d.update(n_members=0), r"'n_members' is 0; expected an integer >= 1"),
    (lambda d: d.update(n_members=True), r"'n_members' is true"),
    (lambda d: d.update(n_members=10**12), r"'member2_boxes' is missing"),
    (lambda d: d["params"].update(n_boxes="five"), r"'params' are not eSPA\+'s: The "
                                                   r"'n_boxes' parameter"),
    (lambda d: d["params"].update(surprise=1), r"'params' holds 'surprise'"),
    (lambda d: d["params"].update(n_jobs=10**6), r"n_jobs is 1000000; expected at most"),
    (lambda d: d.update(labels=[0, 1]), r"'labels' holds 2 labels; expected one per class"),
    (lambda d: d.update(novelty_reference=[0.1, "far"]), r"'novelty_reference' is"),
])
def test_model_json_fields(run, change, match):
    rewrite_meta(run, change)
    message = refused(run, match)
    where = "arrays.npz" if "member2_" in match else "model.json"
    assert f"invalid model file {run / where}: " in message


def test_a_model_of_another_format_says_train_again(run):
    rewrite_meta(run, lambda d: d.update(format=1))
    refused(run, r"model format 1.*train it again")


def drop(name):
    return lambda a: a.pop(name)


def setter(name, index, value):
    def change(a):
        a[name] = a[name].astype(np.float64)
        a[name][index] = value
    return change


def half_first_row(a):
    a["box_label_proba"][0] *= 0.5


def extra_column(a):
    a["boxes"] = np.hstack([a["boxes"], a["boxes"][:, :1]])


def more_boxes_than_fitted(a):
    for prefix in ("", "member0_"):
        k = 6  # params n_boxes is 5
        a[prefix + "boxes"] = np.resize(a[prefix + "boxes"], (k, 4))
        a[prefix + "box_label_proba"] = np.full((k, 3), 1 / 3)
        a[prefix + "box_counts"] = np.ones(k, int)


@pytest.mark.parametrize("change, match", [
    (drop("feature_weights"), r"'feature_weights' is missing"),
    (drop("member1_box_counts"), r"'member1_box_counts' is missing; expected every array "
                                 r"of a model of 2 member"),
    (drop("classes"), r"'classes' is missing"),
    (lambda a: a.update(extra=np.zeros(3)), r"'extra\.npy' is not an array of the model"),
    (extra_column, r"'boxes' has shape \(\d+, 5\); expected \(\d+, 4\) \(one column per "
                   r"feature"),
    (lambda a: a.update(scale_mean=np.zeros(3)), r"'scale_mean' has shape \(3,\); expected "
                                                 r"\(4,\)"),
    (lambda a: a.update(member0_box_counts=a["member0_box_counts"][:-1]),
     r"'member0_box_counts' has shape"),
    (lambda a: a.update(box_label_proba=a["box_label_proba"].T),
     r"'box_label_proba' has shape \(3, \d+\); expected \(\d+, 3\)"),
    (lambda a: a.update(temperatures=np.zeros(3)), r"'temperatures' has shape \(3,\); "
                                                   r"expected \(2,\)"),
    (lambda a: a.update(classes=np.array([1])), r"'classes' has shape \(1,\); expected "
                                                r"\(n_classes,\) with at least 2"),
    (more_boxes_than_fitted, r"'boxes' has shape \(6, 4\); expected \(n_boxes, 4\) with 1 "
                             r"to 5 boxes"),
    (lambda a: a.update(boxes=a["boxes"].astype(np.complex128)),
     r"'boxes' holds complex128 values"),
    (lambda a: a.update(classes=np.array([0, 1, 2], dtype=object)),
     r"'classes' holds object values; expected numbers \(objects are never loaded\)"),
    (lambda a: a.update(weighted_features=a["weighted_features"].astype(float)),
     r"'weighted_features' holds float64 values; expected dtype kind b"),
    (setter("boxes", (0, 1), np.nan), r"'boxes' holds NaN or infinity; expected finite"),
    (setter("member1_boxes", (1, 0), np.inf), r"'member1_boxes' holds NaN or infinity"),
    (setter("feature_weights", 0, np.nan), r"'feature_weights' holds NaN or infinity"),
    (setter("box_label_proba", (0, 0), np.nan), r"'box_label_proba' holds NaN or infinity"),
    (setter("member0_box_label_proba", (1, 2), np.nan), r"'member0_box_label_proba' holds "
                                                        r"NaN"),
    (half_first_row, r"'box_label_proba' has a box whose probabilities do not sum to 1"),
    (setter("member1_box_label_proba", (0, 0), 1.5), r"'member1_box_label_proba' holds a "
                                                     r"value outside \[0, 1\]"),
    (lambda a: a.update(feature_weights=a["feature_weights"] * 2),
     r"'feature_weights' sums to 2; expected weights summing to 1"),
    (lambda a: a.update(member0_feature_weights=np.array([1.5, -0.5, 0.0, 0.0])),
     r"'member0_feature_weights' holds a negative weight"),
    (lambda a: a.update(scale_scale=np.zeros(4)), r"'scale_scale' holds a scale <= 0"),
    (setter("impute_statistics", 2, np.nan), r"'impute_statistics' holds NaN"),
    (setter("temperatures", 0, -1.0), r"'temperatures' holds a negative temperature"),
    (lambda a: a.update(box_counts=np.zeros_like(a["box_counts"])),
     r"'box_counts' holds a box without samples"),
    (lambda a: a.update(classes=np.array([0, 1, 1])), r"'classes' repeats a class"),
    (lambda a: a.update(weighted_features=np.zeros(4, bool)), r"'weighted_features' "
                                                              r"marks no feature"),
])
def test_arrays_npz_fields(run, change, match):
    rewrite_arrays(run, change)
    assert f"invalid model file {run / 'arrays.npz'}: " in refused(run, match)


def test_indicator_columns_carry_no_weight(run):
    """A model with an indicator column keeps its weight at 0; a forged weight there is
    refused."""
    X, y = training_data()
    X = np.column_stack([X, np.isnan(X[:, 2])])
    model = runs.make_model(ESPAClassifier(5, random_state=0, indicators=[4])).fit(X, y)
    runs.save_model(run, model, ["a", "b", "c", "d", "flag"])
    np.testing.assert_array_equal(runs.load_model(run).predict_proba(X), model.predict_proba(X))

    def weigh_the_flag(a):
        a["feature_weights"] = np.full(5, 0.2)
    rewrite_arrays(run, weigh_the_flag)
    refused(run, r"'feature_weights' weighs a feature weighted_features leaves out")


def test_arrays_npz_that_is_no_archive(run):
    (run / "arrays.npz").write_bytes(b"not a zip file at all")
    refused(run, r"arrays\.npz: the file is not a readable zip archive")
    (run / "arrays.npz").unlink()
    refused(run, r"arrays\.npz: the file is missing")


def test_a_truncated_entry_is_refused_before_it_is_read(run, saved):
    data = io.BytesIO()
    np.lib.format.write_array(data, arrays_of(run)["boxes"])
    replace_entry(run, "boxes", data.getvalue()[:-8])
    refused(run, r"'boxes' states shape \(\d+, 4\) of float64 \(\d+ bytes\) but holds \d+ "
                 r"bytes")
    replace_entry(run, "boxes", b"\x93NUMPY")
    refused(run, r"'boxes' has no readable \.npy header")


def test_a_forged_npy_header_allocates_nothing(run):
    """A header stating shape (10^7, 10^7) (800 TB) over a few bytes of data is refused
    from the header, quickly, and the process's memory does not grow."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**7, 10**7)})
    replace_entry(run, "boxes", header.getvalue() + arrays_of(run)["boxes"].tobytes())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    start = time.perf_counter()
    message = refused(run, r"'boxes' states shape \(10000000, 10000000\) of float64 "
                           r"\(800000000000000 bytes\) but holds \d+ bytes")
    assert time.perf_counter() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000
    assert str(run / "arrays.npz") in message
    # a negative size is no size
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (-1, 4)})
    replace_entry(run, "boxes", header.getvalue())
    refused(run, r"'boxes' states shape \(-1, 4\); expected sizes >= 0")


def test_the_arrays_together_are_bounded(run, monkeypatch):
    """Arrays whose headers the archive backs but that are far larger than any model are
    refused before they are loaded."""
    monkeypatch.setattr(model_check, "MAX_ELEMENTS", 50)
    refused(run, r"the arrays hold \d+ numbers; expected at most 50")


def test_the_run_store_loads_through_the_same_checks(run):
    store = runs.RunStore(run.parent)
    assert store.load("run").meta["labels"] == [0, 1, 2]
    rewrite_arrays(run, setter("box_label_proba", (0, 0), np.nan))
    with pytest.raises(ValueError, match=r"arrays\.npz: 'box_label_proba' holds NaN"):
        store.load("run")


def test_predict_with_a_tampered_model_prints_one_error_line(tmp_path):
    """`entropice predict` with a current run whose model was tampered with stops with
    exit code 1 and one `error:` line naming the file, without a traceback."""
    import small_cube

    ds = small_cube.group("h3", 2)
    Cube.create(tmp_path / "cube.zarr").write_group(ds, "h3", 2, stage="test")
    dm = design.design_matrix(ds)
    model = runs.make_model(ESPAClassifier(4, random_state=0)).fit(dm.X.to_numpy(), dm.y)
    store = runs.RunStore(tmp_path / "models")
    store.save("r1", model, list(dm.X.columns),
               {"grid": "h3", "level": 2, "run_id": "r1", "labels": [0, 1, 2, 3],
                "classes": ["none", "low", "medium", "high"]})
    store.set_current(get_grid("h3", 2), "r1")
    config = tmp_path / "config.toml"
    config.write_text('cube = "cube.zarr"\n[grids]\nh3 = [2]\n')

    def predict():
        return subprocess.run([sys.executable, "-m", "entropice", "predict", "--config",
                               str(config), "--quiet", "--force"],
                              capture_output=True, text=True, timeout=300)

    ok = predict()
    assert ok.returncode == 0, ok.stderr
    rewrite_arrays(store.path("r1"), setter("member0_boxes", (0, 0), np.nan))
    out = predict()
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0] == (f"error: invalid model file {store.path('r1') / 'arrays.npz'}: "
                        "'member0_boxes' holds NaN or infinity; expected finite numbers.")


@pytest.fixture
def run_with_folds(tmp_path):
    """A saved model with two outer folds' models."""
    X, y = training_data()
    fit = lambda rows: runs.make_model(  # noqa: E731
        ESPAClassifier(5, random_state=0)).fit(X[rows], y[rows])
    half = np.arange(len(y)) % 2
    runs.save_model(tmp_path / "run", fit(slice(None)), ["a", "b", "c", "d"],
                    {"labels": [0, 1, 2], "classes": ["none", "low", "medium"]},
                    fold_models={0: fit(half != 0), 1: fit(half != 1)})
    return tmp_path / "run"


def test_outer_folds_models_are_checked_like_the_run(run_with_folds):
    """Each outer fold's model goes through the run's checks (a damaged one is named
    by its file); a fold listed but missing, a list that is no list of fold numbers,
    and a fold reading other features are refused with the file named."""
    assert len(runs.load_model(run_with_folds).folds) == 2
    doc = json.loads((run_with_folds / "model.json").read_text())
    fold = run_with_folds / "folds" / "1"
    fold_doc = json.loads((fold / "model.json").read_text())
    (fold / "model.json").write_text(json.dumps({**fold_doc, "temperature": -1}))
    with pytest.raises(ValueError, match=r"folds/1/model\.json: 'temperature'"):
        runs.load_model(run_with_folds)
    (fold / "model.json").write_text(json.dumps({**fold_doc, "feature_names": list("abce")}))
    with pytest.raises(ValueError, match=r"folds/1/model\.json: 'feature_names' differ"):
        runs.load_model(run_with_folds)
    for listed in ([0, 1, 1], "all", [0, True], list(range(101))):
        (run_with_folds / "model.json").write_text(json.dumps({**doc,
                                                               "fold_models": listed}))
        with pytest.raises(ValueError, match=r"model\.json: 'fold_models' is .* expected a"
                                             " list of distinct fold numbers"):
            runs.load_model(run_with_folds)
    (run_with_folds / "model.json").write_text(json.dumps({**doc, "fold_models": [0, 2]}))
    with pytest.raises(ValueError, match=r"lists outer fold 2's model, but .*folds/2/"
                                         r"model\.json is missing"):
        runs.load_model(run_with_folds)


def test_a_fold_without_a_class_loads_and_the_folds_share_the_bound(tmp_path, monkeypatch):
    """A fold's model keeps the labels it saw (a rare class may live in one fold's land
    only): the run loads and its fold spread reads P(any RTS) of each; a fold stating a
    label the run lacks is refused; the run's and its folds' arrays share one bound."""
    X, y = training_data()
    fit = lambda rows: runs.make_model(  # noqa: E731
        ESPAClassifier(5, random_state=0)).fit(X[rows], y[rows])
    path = tmp_path / "run"
    runs.save_model(path, fit(slice(None)), ["a", "b", "c", "d"],
                    {"labels": [0, 1, 2], "classes": ["none", "low", "medium"]},
                    fold_models={0: fit(y != 2), 1: fit(slice(None))})
    fold_doc = json.loads((path / "folds" / "0" / "model.json").read_text())
    assert fold_doc["labels"] == [0, 1] and fold_doc["classes"] == ["none", "low"]
    model = runs.load_model(path)
    assert model.folds[0].classes_.tolist() == [0, 1]
    assert model.fold_spread(X).shape == (len(X),)
    alone = model_check.checked_files(path / "folds" / "1", share=1)[2]
    n = sum(a.size for a in alone.values())
    monkeypatch.setattr(model_check, "MAX_ELEMENTS", 2 * n)  # one fits, three do not
    model_check.checked_files(path / "folds" / "1", share=1)
    with pytest.raises(ValueError, match=r"the arrays hold \d+ numbers; expected at most"):
        runs.load_model(path)
    monkeypatch.undo()
    (path / "folds" / "0" / "model.json").write_text(json.dumps({**fold_doc,
                                                                "labels": [0, 7]}))
    with pytest.raises(ValueError, match=r"folds/0/model\.json: 'labels' are \[0, 7\]; "
                                         "expected some of the run's labels"):
        runs.load_model(path)
