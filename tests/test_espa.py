"""ESPAClassifier: the eSPA+ invariants, the reference core, k-means equivalence, indicator
columns, the weight prior, the probabilistic read-out, inputs and errors."""

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans
from sklearn.utils._param_validation import InvalidParameterError

from entropice.espa import REFERENCE, ESPAClassifier, find_indicators

RNG = np.random.default_rng(0)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw, max_classes=3):
    """A small labelled data set with well-spread float64 features."""
    n = draw(st.integers(8, 60))
    d = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # spread and offset of the features; the spread stays at least 1e-4 of the
    # offset, so float64 keeps over 10 digits of each squared residual
    scale, offset = draw(st.sampled_from([(1e-3, 0.0), (1.0, 0.0), (1.0, 5.0), (1e3, 0.0),
                                          (1.0, -1e4), (1e3, 1e6)]))
    X = offset + scale * rng.standard_normal((n, d))
    n_classes = draw(st.integers(2, max_classes))
    y = rng.integers(0, n_classes, n)
    y[:n_classes] = np.arange(n_classes)  # every class present
    return X, y, rng


eps_values = st.sampled_from([0.0, 0.1, 1.0, 10.0])
eps_w_values = st.sampled_from([0.01, 0.5, 2.0, np.inf])


@SETTINGS
@given(problems(), st.integers(1, 6), eps_values, eps_w_values,
       st.sampled_from(["k-means++", "random"]), st.sampled_from([None, "balanced"]),
       st.sampled_from(["reference", "default", "ensemble", "prior"]))
def test_invariants(problem, n_boxes, eps_c, eps_w, init, class_weight, setting):
    X, y, rng = problem
    assume(n_boxes <= len(X))
    extra = {"reference": REFERENCE, "default": {}, "ensemble": {"n_estimators": 3},
             "prior": {"weight_prior": "corr", "alpha": 0.0}}[setting]
    model = ESPAClassifier(n_boxes, eps_C=eps_c, eps_W=eps_w, init=init, n_restarts=2,
                           class_weight=class_weight, random_state=int(rng.integers(1000)),
                           **extra)
    model.fit(X, y)
    curve = model.loss_curve_
    # the loss never increases from one iteration to the next (rounding aside: of the
    # residuals, and of eps_W times the entropy or KL terms, each of order 1, which
    # stand in the loss however small the residuals are)
    reg = 0.0 if np.isinf(eps_w) else eps_w
    assert np.all(np.diff(curve) <= 1e-10 * np.abs(curve[:-1]) + 1e-15 * X.var()
                  + 1e-13 * reg), curve
    W = model.feature_weights_
    assert np.all(W >= 0) and W.sum() == pytest.approx(1.0, abs=1e-12)
    P = model.box_label_proba_
    assert np.allclose(P.sum(axis=1), 1.0) and np.all(P >= 0)
    K = model.boxes_.shape[0]
    assert 1 <= K <= n_boxes and model.box_counts_.shape == (K,)
    if setting != "ensemble":  # a member of an ensemble sees its own part of the samples
        assert model.box_counts_.sum() == len(X)
    assert np.all(model.box_counts_ > 0)
    assert model.n_iter_ == len(curve) <= model.max_iter
    boxes = model.apply(X)
    assert boxes.min() >= 0 and boxes.max() < K
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    if setting == "reference":  # the label probabilities of the nearest box
        np.testing.assert_array_equal(proba, P[boxes])
    if model.alpha > 0:  # smoothing leaves no class impossible
        assert np.all(proba > 0) and np.all(P > 0)


@SETTINGS
@given(problems(), st.integers(1, 5), eps_values, eps_w_values)
def test_same_random_state_same_model(problem, n_boxes, eps_c, eps_w):
    X, y, _ = problem
    assume(n_boxes <= len(X))
    fits = [ESPAClassifier(n_boxes, eps_C=eps_c, eps_W=eps_w, random_state=7).fit(X, y)
            for _ in range(2)]
    for attr in ("boxes_", "feature_weights_", "box_label_proba_", "box_counts_",
                 "loss_curve_"):
        np.testing.assert_array_equal(getattr(fits[0], attr), getattr(fits[1], attr))


@SETTINGS
@given(problems(), st.integers(1, 6), st.integers(1, 30))
def test_equals_lloyd_kmeans(problem, n_boxes, max_iter):
    """eps_C=0, eps_W=inf and given boxes: exactly Lloyd's k-means."""
    X, y, rng = problem
    assume(n_boxes <= len(X))
    init = X[rng.choice(len(X), n_boxes, replace=False)]
    model = ESPAClassifier(n_boxes, eps_C=0.0, eps_W=np.inf, init=init, n_restarts=1,
                           max_iter=max_iter, tol=0.0, **REFERENCE).fit(X, y)
    # k-means relocates an emptied cluster where eSPA+ drops the box: compare only
    # runs in which no box emptied
    assume(model.boxes_.shape[0] == n_boxes)
    km = KMeans(n_boxes, init=init, n_init=1, algorithm="lloyd", tol=0,
                max_iter=max_iter).fit(X)
    scale = np.abs(X).max()
    np.testing.assert_allclose(model.boxes_, km.cluster_centers_, rtol=0, atol=1e-10 * scale)
    np.testing.assert_array_equal(model.apply(X), km.labels_)
    np.testing.assert_allclose(model.feature_weights_, 1.0 / X.shape[1])


def test_integer_weights_equal_repeated_rows():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 3))
    y = (X[:, 0] > 0).astype(int)
    reps = rng.integers(0, 4, 40)
    reps[:4] = 1
    init = X[:4]
    kw = dict(n_boxes=4, init=init, n_restarts=1, eps_C=0.5, eps_W=0.3)
    a = ESPAClassifier(**kw).fit(X, y, sample_weight=reps)
    b = ESPAClassifier(**kw).fit(np.repeat(X, reps, axis=0), np.repeat(y, reps))
    np.testing.assert_allclose(a.boxes_, b.boxes_, atol=1e-12)
    np.testing.assert_allclose(a.feature_weights_, b.feature_weights_, atol=1e-12)
    np.testing.assert_allclose(a.box_label_proba_, b.box_label_proba_, atol=1e-12)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-12)


def test_class_weight_is_a_sample_weight():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((90, 4))
    y = np.where(X[:, 1] > 0.8, "slump", "none")
    init = X[:5]
    kw = dict(n_boxes=5, init=init, n_restarts=1, alpha=0.0)
    a = ESPAClassifier(class_weight={"slump": 3.0, "none": 1.0}, weighted_proba=True,
                       **kw).fit(X, y)
    b = ESPAClassifier(**kw).fit(X, y, sample_weight=np.where(y == "slump", 3.0, 1.0))
    np.testing.assert_allclose(a.boxes_, b.boxes_)
    np.testing.assert_allclose(a.box_label_proba_, b.box_label_proba_)
    # weighted_proba=False: the class weights shape the boxes, and the probabilities
    # count the samples as they are (calibrated to the data's class frequencies)
    c = ESPAClassifier(class_weight={"slump": 3.0, "none": 1.0}, weighted_proba=False,
                       **kw).fit(X, y)
    np.testing.assert_allclose(c.boxes_, a.boxes_)
    box = c.apply(X)
    freq = [[np.mean(y[box == k] == cls) for cls in c.classes_] for k in range(len(c.boxes_))]
    np.testing.assert_allclose(c.box_label_proba_, freq)


def test_informative_feature_gets_the_weight():
    """A feature that separates the classes gets most of the weight; noise does not."""
    rng = np.random.default_rng(5)
    n = 600
    y = rng.integers(0, 2, n)
    X = rng.standard_normal((n, 6))
    X[:, 2] = 4.0 * y + 0.3 * rng.standard_normal(n)
    model = ESPAClassifier(4, eps_C=1.0, eps_W=0.2, random_state=0).fit(X, y)
    assert np.argmax(model.feature_weights_) == 2
    assert model.feature_weights_[2] > 0.5
    assert model.score(X, y) > 0.95


def test_threads_give_the_same_model():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((5000, 8))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    a = ESPAClassifier(6, random_state=1, n_jobs=1).fit(X, y)
    b = ESPAClassifier(6, random_state=1, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(a.boxes_, b.boxes_, rtol=1e-10)
    np.testing.assert_allclose(a.feature_weights_, b.feature_weights_, rtol=1e-10)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_strings_and_dataframes():
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.standard_normal((120, 3)), columns=["era5_tdd_sum", "dem_slope", "emb"])
    y = np.where(X["dem_slope"] > 0.5, "high", np.where(X["dem_slope"] < -0.5, "low", "none"))
    model = ESPAClassifier(6, random_state=0).fit(X, y)
    assert list(model.feature_names_in_) == list(X.columns)
    assert list(model.classes_) == ["high", "low", "none"]
    assert set(model.predict(X)) <= {"high", "low", "none"}
    assert model.score(X, y) > 0.8


def test_float32_is_not_copied_up():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((50_000, 64)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    model = ESPAClassifier(8, n_restarts=1, random_state=0, max_iter=5)
    model.fit(X[:1000], y[:1000]).predict_proba(X[:10])  # compile the float32 kernels
    tracemalloc.start()
    model.fit(X, y)
    proba = model.predict_proba(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 0.5 * X.nbytes, f"fit allocated {peak / X.nbytes:.2f}x the size of X"
    assert proba.shape == (len(X), 2)
    assert model.score(X, y) > 0.75


# -- the reference core, and what is built around it ---------------------------------


def test_reference_is_the_algorithm_bit_for_bit():
    """REFERENCE reproduces fits of the core as it stood before the read-out work
    (tests/data/espa_reference.npz, written by commit c515231): boxes, counts, label
    probabilities and predictions every bit; the loss and the feature weights (sums of
    many terms, and a softmax over them) to a few units in the last place, as numpy's
    summation kernels round differently on other processors and versions (1 ulp on the
    2-core machine with numpy 2.4)."""
    from sklearn.datasets import load_breast_cancer, load_wine
    from sklearn.preprocessing import StandardScaler

    ref = np.load(Path(__file__).parent / "data" / "espa_reference.npz")
    cases = {
        "wine": (load_wine, dict(n_boxes=6, eps_C=1.0, eps_W=0.5, n_restarts=3,
                                 random_state=0)),
        "cancer": (load_breast_cancer, dict(n_boxes=10, eps_C=3.0, eps_W=0.1, n_restarts=2,
                                            random_state=1, class_weight="balanced")),
    }
    for name, (load, kw) in cases.items():
        X, y = load(return_X_y=True)
        X = StandardScaler().fit_transform(X)
        model = ESPAClassifier(**kw, **REFERENCE).fit(X, y)
        for attr in ("boxes_", "box_label_proba_", "box_counts_"):
            np.testing.assert_array_equal(getattr(model, attr),
                                          ref[f"{name}_{attr.rstrip('_')}"], err_msg=attr)
        for attr in ("feature_weights_", "loss_curve_"):
            np.testing.assert_array_max_ulp(getattr(model, attr),
                                            ref[f"{name}_{attr.rstrip('_')}"], maxulp=16)
        np.testing.assert_array_equal(model.predict_proba(X), ref[f"{name}_proba"])


def flagged_problem(seed=0, n=4000):
    """The issue's trap: 3 informative and 4 noise features, a weak feature 1.5 % missing
    (median-imputed) with its 0/1 flag, standardised."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 8))
    y = (X[:, 0] + 0.8 * X[:, 1] - 0.6 * X[:, 2] + 0.3 * X[:, 7]
         + 0.5 * rng.standard_normal(n) > 0).astype(int)
    miss = rng.random(n) < 0.015
    X[miss, 7] = np.median(X[~miss, 7])
    X = np.column_stack([X, miss.astype(float)])
    return (X - X.mean(0)) / X.std(0), y


def test_indicator_columns_carry_no_weight():
    X, y = flagged_problem()
    assert find_indicators(X).tolist() == [False] * 8 + [True]
    for indicators in ("auto", [8], np.arange(9) == 8):
        model = ESPAClassifier(8, eps_W=0.05, indicators=indicators, random_state=0).fit(X, y)
        assert model.feature_weights_[8] == 0.0
        assert model.weighted_features_.tolist() == [True] * 8 + [False]
        # the top weights go to informative features (7 is the weak one), never to noise
        assert set(np.argsort(model.feature_weights_)[-3:]) <= {0, 1, 2, 7}
    # the reference gives the flag nearly all the weight at small eps_W
    collapsed = ESPAClassifier(8, eps_W=0.05, random_state=0, **REFERENCE).fit(X, y)
    assert collapsed.feature_weights_[8] > 0.9


def test_near_constant_and_named_indicators():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"tdd": rng.normal(size=400), "flat": np.where(np.arange(400) < 10,
                                                                     rng.normal(size=400), 0.0),
                      "binary": rng.integers(0, 2, 400).astype(float)})
    assert find_indicators(X.to_numpy()).tolist() == [False, True, True]
    # a weight of 0 counts as an absent sample
    w = np.where(np.arange(400) < 10, 0.0, 1.0)
    assert find_indicators(X.to_numpy()[:, :1], w).tolist() == [False]
    y = (X.tdd > 0).astype(int)
    model = ESPAClassifier(4, indicators=["flat"], random_state=0).fit(X, y)
    assert model.weighted_features_.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="'slope', which is not a feature"):
        ESPAClassifier(4, indicators=["slope"]).fit(X, y)
    with pytest.raises(ValueError, match="column index 5; X has 3 features"):
        ESPAClassifier(4, indicators=[5]).fit(X, y)
    with pytest.raises(ValueError, match="every feature"):
        ESPAClassifier(4, indicators=[0, 1, 2]).fit(X, y)


def test_held_out_selection_avoids_the_collapse():
    """Training-loss selection keeps the restart whose W collapsed; held-out selection
    does not, and predicts better."""
    from sklearn.metrics import roc_auc_score

    X, y = flagged_problem(seed=2, n=6000)
    Xt, yt = flagged_problem(seed=3, n=4000)
    kw = dict(n_boxes=8, eps_W=0.03, n_restarts=6, random_state=0, indicators=[8])
    by_loss = ESPAClassifier(selection="loss", **kw).fit(X, y)
    held = ESPAClassifier(selection="holdout", **kw).fit(X, y)
    assert held.validation_score_ > 0 and np.isnan(by_loss.validation_score_)
    auc = {m: roc_auc_score(yt, e.predict_proba(Xt)[:, 1]) for m, e in
           [("loss", by_loss), ("held", held)]}
    assert auc["held"] >= auc["loss"] - 0.01, auc


def test_weight_prior():
    X, y = flagged_problem()
    model = ESPAClassifier(8, eps_W=np.inf, weight_prior="corr", random_state=0).fit(X, y)
    ref = model.weight_prior_
    assert ref[8] == 0 and ref.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(model.feature_weights_, ref)  # eps_W = inf: W = W_ref
    assert np.argsort(ref)[-3:].tolist() == [2, 1, 0]  # corr^2 ranks the informative ones
    # W_ref is the largest squared correlation with a class's one-hot label, normalised
    r2 = np.array([max(np.corrcoef(X[:, d], y == c)[0, 1] ** 2 for c in np.unique(y))
                   for d in range(8)])
    floor = 0.01 / 8
    expected = np.maximum(r2 / r2.sum(), floor)
    np.testing.assert_allclose(ref[:8], expected / expected.sum(), rtol=1e-9)
    # given relevances, floored at 1 % of uniform
    given = np.r_[1.0, np.zeros(7), 0.0]
    model = ESPAClassifier(8, eps_W=np.inf, weight_prior=given, random_state=0).fit(X, y)
    floor = 0.01 / 8
    assert model.feature_weights_[1] == pytest.approx(floor / (1 + 7 * floor))
    # finite eps_W: W proportional to W_ref exp(-b / eps_W), the loss still descends
    model = ESPAClassifier(8, eps_W=0.5, weight_prior="mi", random_state=0).fit(X, y)
    assert np.all(np.diff(model.loss_curve_) <= 1e-10 * np.abs(model.loss_curve_[:-1]))
    with pytest.raises(ValueError, match="shape \\(3,\\); expected \\(9,\\)"):
        ESPAClassifier(8, weight_prior=[1.0, 2.0, 3.0]).fit(X, y)


def test_soft_smoothed_ensemble_readout():
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    hard = ESPAClassifier(20, random_state=0, **REFERENCE).fit(X[:1200], y[:1200])
    p_hard = hard.predict_proba(X[1200:])
    assert (p_hard[np.arange(len(p_hard)), y[1200:]] == 0).any()  # impossible classes
    assert len(np.unique(p_hard, axis=0)) <= hard.boxes_.shape[0]
    soft = ESPAClassifier(20, n_estimators=3, random_state=0).fit(X[:1200], y[:1200])
    p = soft.predict_proba(X[1200:])
    assert np.all(p > 0) and np.allclose(p.sum(axis=1), 1.0)
    assert len(np.unique(p.round(12), axis=0)) > 10 * soft.boxes_.shape[0]
    assert len(soft.estimators_) == 3 and all(m.temperature_ > 0 for m in soft.estimators_)
    members = np.mean([m.predict_proba(X[1200:]) for m in soft.estimators_], axis=0)
    np.testing.assert_allclose(p, members, rtol=1e-12)
    assert np.array_equal(soft.predict(X[1200:]), soft.classes_[np.argmax(p, axis=1)])
    from sklearn.metrics import log_loss

    assert log_loss(y[1200:], p) < 0.6 * log_loss(y[1200:], np.clip(p_hard, 1e-15, 1))
    # the shown member is the one with the best held-out score
    assert soft.validation_score_ == min(m.validation_score_ for m in soft.estimators_)
    # the members' disagreement on the probability of some classes, from the same pass
    p2, spread = soft.predict_proba_spread(X[1200:], [7, 8, 9])
    assert np.array_equal(p2, p)
    each = np.stack([m.predict_proba(X[1200:])[:, 7:].sum(axis=1) for m in soft.estimators_])
    np.testing.assert_allclose(spread, each.std(axis=0), atol=1e-7)
    assert spread.max() > 0.05
    assert not hard.predict_proba_spread(X[1200:], [1])[1].any()  # one member: none
    with pytest.raises(ValueError, match="none of classes"):
        soft.predict_proba_spread(X[1200:], [42])


def test_soft_readout_far_from_every_box_in_float32():
    """A sample far outside the data gets the nearest box's probabilities, not a crash."""
    rng = np.random.default_rng(9)
    X = rng.standard_normal((600, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    model = ESPAClassifier(100, random_state=0).fit(X, y)
    proba = model.predict_proba(X[:50] * 1e6)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0)


def test_indicator_names_from_a_pandas_index():
    X, y = flagged_problem()
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)] + ["x7_missing"])
    model = ESPAClassifier(4, indicators=df.columns[[8]], random_state=0).fit(df, y)
    assert model.feature_weights_[8] == 0.0


# -- bad input -------------------------------------------------------------------


def test_nan_names_the_first_bad_column():
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [0.0, 1.0, np.inf, 3.0],
                      "c": [np.nan, 1.0, 2.0, 3.0]})
    y = [0, 1, 0, 1]
    with pytest.raises(ValueError, match=r"NaN or infinity in column 1 \('b'\), first at row 2"):
        ESPAClassifier(2).fit(X, y)
    model = ESPAClassifier(2, random_state=0).fit(X.fillna(0).replace(np.inf, 0), y)
    with pytest.raises(ValueError, match=r"column 2 \('c'\), first at row 0"):
        model.predict(X.replace(np.inf, 0))


def test_single_class_is_an_error():
    with pytest.raises(ValueError, match="at least 2 classes.*only one class: 'x'"):
        ESPAClassifier(2).fit(RNG.random((10, 2)), ["x"] * 10)


def test_too_many_boxes_is_an_error():
    with pytest.raises(ValueError, match=r"n_boxes=20 is larger than the number of samples"):
        ESPAClassifier(20).fit(RNG.random((10, 2)), [0, 1] * 5)


@pytest.mark.parametrize("param", ["eps_C", "eps_W", "tol"])
def test_negative_parameters_are_errors(param):
    with pytest.raises(InvalidParameterError, match=param):
        ESPAClassifier(2, **{param: -1.0}).fit(RNG.random((10, 2)), [0, 1] * 5)


def test_wrong_feature_count_at_predict():
    model = ESPAClassifier(2, random_state=0).fit(RNG.random((10, 3)), [0, 1] * 5)
    with pytest.raises(ValueError, match="X has 2 features, but ESPAClassifier is expecting 3"):
        model.predict(RNG.random((4, 2)))


def test_init_of_wrong_shape():
    with pytest.raises(ValueError, match=r"init has shape \(2, 2\); expected .* \(3, 3\)"):
        ESPAClassifier(3, init=np.zeros((2, 2)), n_restarts=1).fit(RNG.random((10, 3)),
                                                                   [0, 1] * 5)
