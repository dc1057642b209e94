"""The eSPA+ classifier as a scikit-learn estimator."""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.cluster import kmeans_plusplus
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)
from threadpoolctl import threadpool_limits

from . import _kernels
from ._core import Threads, WeightRule, assign_all, centre, distance_terms, fit_one, n_threads
from ._features import resolve_indicators, weight_prior
from ._readout import Readout, fit_temperature, log_loss, smoothed

REFERENCE = {"indicators": None, "weight_prior": None, "readout": "hard", "alpha": 0.0,
             "n_estimators": 1, "selection": "loss"}
"""Parameters that give the reference eSPA+ (Horenko's SPACL, eps_C per sample) bit for
bit: every feature weighted, entropy regularisation, restarts chosen by training loss,
one fit, the label frequencies of the nearest box. ``ESPAClassifier(**REFERENCE, ...)``."""


@dataclass
class _Member:
    """One fitted member: the restart kept, its read-out and its held-out score."""

    fit: object  # _core.Fit
    label_proba: np.ndarray
    temperature: float
    score: float  # held-out log loss (nan without a held-out part)

    def readout(self):
        return (self.fit.boxes, self.fit.weights, centre(self.fit.boxes, self.fit.counts),
                self.label_proba, self.temperature)


class ESPAClassifier(ClassifierMixin, BaseEstimator):
    """Entropy-optimal Scalable Probabilistic Approximation classifier (eSPA+).

    Partitions the feature space into ``n_boxes`` boxes, learns one weight per
    feature (on the simplex, entropy-regularised) and, for every box, the
    probability of each class. A sample belongs to its nearest box under the
    feature-weighted distance, so the whole model is a short table a researcher
    can read.

    The fit minimises, per sample mean,

        L = sum_d W_d (x_d - S_kd)^2 - eps_W H(W) + eps_C (-log Lambda_{y,k})

    by alternating closed-form steps: assign samples to boxes, drop empty boxes,
    W = softmax(-b / eps_W) with ``b`` the mean squared residual per feature,
    S = box means, Lambda = label frequencies per box; until the relative loss
    change is at most ``tol``. Then samples are re-assigned without the label
    term and Lambda re-estimated. With ``eps_C=0``, ``eps_W=inf`` and given
    initial boxes, one restart of the reference setting is Lloyd's k-means.

    Around that exact core: indicator columns carry no weight, restarts are chosen
    on held-out samples, an optional prior replaces -H(W) by KL(W || W_ref), and the
    probabilities are smoothed, soft and averaged over an ensemble. ``REFERENCE``
    (``ESPAClassifier(**REFERENCE)``) switches all of that off.

    Parameters
    ----------
    n_boxes : int, default=8
        Number of boxes K. Boxes that end up empty are dropped, so the fitted
        model may have fewer.
    eps_C : float, default=1.0
        Weight of the classification term; 0 gives unsupervised boxes.
    eps_W : float, default=1.0
        Entropy regularisation of the feature weights: small values concentrate
        the weight on few features, ``np.inf`` keeps the weights uniform (or equal
        to the prior).
    indicators : "auto", None or array-like, default="auto"
        Columns kept out of the weighted distance (their weight is exactly 0; the
        boxes still hold their means). "auto": columns with at most two distinct
        values or one value in at least 95 % of the sample weight (missing-value
        flags, binary and near-constant columns). An array gives column indices, a
        boolean mask or feature names, and turns the detection off. None: every
        column carries weight.
    weight_prior : {"corr", "mi"}, array-like or None, default="corr"
        Replace -H(W) by KL(W || W_ref), so that W is proportional to
        W_ref exp(-b / eps_W). W_ref from the squared correlation of each feature
        with the label (one-hot, the largest over the classes: the share of its
        variance the feature explains linearly; "corr"), its mutual information with
        the label ("mi"), or given relevances; floored at 1 % of the uniform weight.
        Without a prior (None) W measures how tightly the boxes hold each feature,
        which the boxes can do for a noise feature as well as for a relevant one
        (``benchmarks/espa_relevance.py``).
    readout : {"soft", "hard"}, default="soft"
        "hard": the label probabilities of the nearest box. "soft": those of every
        box, weighted by softmax(-distance / tau), with the temperature tau fitted
        on the training samples by log loss.
    alpha : float, default=0.5
        Dirichlet smoothing of the box label probabilities: ``alpha`` pseudo-samples
        (in units of sample weight) of every class in every box, so no class gets
        probability 0.
    weighted_proba : bool, default=True
        Whether the box label probabilities (and the temperature, and the held-out
        scores) count the samples with ``class_weight`` (scikit-learn's convention and
        the reference: probabilities of a re-balanced population, so predictions lean
        to the up-weighted classes) or without (False: probabilities calibrated to the
        classes' frequencies in the data). ``class_weight`` shapes the boxes and
        weights either way.
    n_estimators : int, default=1
        Members averaged by ``predict_proba``. Each member is fitted on the samples a
        hash of their features does not hold out (a ``validation_fraction`` of them,
        different for each member: equal samples always fall together, so weights
        and repeated samples fit the same). With 1, the kept restart is refined on
        all samples. An ensemble lowers the log loss a little (0.31 against 0.32 on
        digits with 4 members) and costs a member's time at every prediction.
    n_restarts : int, default=4
        Restarts per member from different initial boxes.
    selection : {"holdout", "loss"}, default="holdout"
        How the restart of a member, and the member whose boxes and weights are
        shown (``boxes_``, ``feature_weights_``), are chosen: by the log loss on the
        held-out samples, or by the training loss (collapsed solutions, all weight
        on one column, have the lower training loss).
    validation_fraction : float, default=0.2
        Share of the samples held out for ``selection="holdout"`` and the ensemble.
    max_iter : int, default=100
        Most iterations per restart.
    tol : float, default=1e-6
        Stop when ``|L_prev - L| <= tol * |L_prev|``.
    init : {"k-means++", "random"} or array of shape (n_boxes, n_features), default="k-means++"
        Initial boxes: k-means++ seeding (under the initial, uniform feature
        weights), ``n_boxes`` distinct random samples, or given boxes.
    class_weight : dict, "balanced" or None, default=None
        Weights per class, multiplied into the sample weights; they weigh every
        term of the loss.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial boxes of every restart and the held-out parts.
    n_jobs : int or None, default=None
        Threads: restarts run in parallel, and a single restart spreads its
        passes over the data on the threads left. None means 1, -1 all cores.

    Attributes
    ----------
    boxes_ : ndarray of shape (n_boxes_, n_features_in_)
        Box centres S of the shown member.
    feature_weights_ : ndarray of shape (n_features_in_,)
        Feature weights W (non-negative, summing to 1, zero on indicator columns).
    box_label_proba_ : ndarray of shape (n_boxes_, n_classes)
        Probability of each class in each box (Lambda transposed, smoothed by
        ``alpha``); rows sum to 1.
    box_counts_ : ndarray of shape (n_boxes_,)
        Training samples (with positive weight) in each box.
    temperature_ : float
        Temperature of the soft read-out (0 for the hard one).
    weighted_features_ : ndarray of bool, shape (n_features_in_,)
        The features that carry weight (not indicators).
    weight_prior_ : ndarray of shape (n_features_in_,) or None
        W_ref, when ``weight_prior`` is set.
    estimators_ : list of ESPAClassifier
        The members, each a fitted single-member model (``n_estimators=1``).
    validation_score_ : float
        Held-out log loss of the shown member (nan when nothing was held out).
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    loss_curve_ : ndarray of shape (n_iter_,)
        Loss after each iteration of the shown member's kept restart.
    loss_ : float
        Its loss at convergence.
    n_iter_ : int
        Its iterations.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names, when ``X`` has string column names.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.preprocessing import StandardScaler
    >>> from entropice.espa import ESPAClassifier
    >>> X, y = load_wine(return_X_y=True)
    >>> clf = ESPAClassifier(n_boxes=6, random_state=0).fit(StandardScaler().fit_transform(X), y)
    >>> clf.box_label_proba_.shape[1]
    3
    """

    _parameter_constraints: dict = {
        "n_boxes": [Interval(Integral, 1, None, closed="left")],
        "eps_C": [Interval(Real, 0, None, closed="left")],
        "eps_W": [Interval(Real, 0, None, closed="both")],
        "indicators": [StrOptions({"auto"}), "array-like", None],
        "weight_prior": [StrOptions({"corr", "mi"}), "array-like", None],
        "readout": [StrOptions({"soft", "hard"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "weighted_proba": ["boolean"],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "n_restarts": [Interval(Integral, 1, None, closed="left")],
        "selection": [StrOptions({"holdout", "loss"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "init": [StrOptions({"k-means++", "random"}), "array-like"],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        n_boxes=8,
        *,
        eps_C=1.0,
        eps_W=1.0,
        indicators="auto",
        weight_prior="corr",
        readout="soft",
        alpha=0.5,
        weighted_proba=True,
        n_estimators=1,
        n_restarts=4,
        selection="holdout",
        validation_fraction=0.2,
        max_iter=100,
        tol=1e-6,
        init="k-means++",
        class_weight=None,
        random_state=None,
        n_jobs=None,
    ):
        self.n_boxes = n_boxes
        self.eps_C = eps_C
        self.eps_W = eps_W
        self.indicators = indicators
        self.weight_prior = weight_prior
        self.readout = readout
        self.alpha = alpha
        self.weighted_proba = weighted_proba
        self.n_estimators = n_estimators
        self.n_restarts = n_restarts
        self.selection = selection
        self.validation_fraction = validation_fraction
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- input checks ------------------------------------------------------

    def _check_X(self, X, y="no_validation", reset=False):
        """Validate X (and y when given); NaN or inf in X is an error naming the column."""
        kw = dict(reset=reset, dtype=[np.float64, np.float32], order="C",
                  ensure_all_finite=False)
        fit = not (isinstance(y, str) and y == "no_validation")
        if fit:
            X, y = validate_data(self, X, y, **kw)  # y: 1d (warns on a column), finite
        else:
            X = validate_data(self, X, **kw)
        col, row = _kernels.first_nonfinite_column(X)
        if col >= 0:
            names = getattr(self, "feature_names_in_", None)
            label = f"column {col}" + (f" ({names[col]!r})" if names is not None else "")
            raise ValueError(
                f"Input X contains NaN or infinity in {label}, first at row {row}. "
                f"{type(self).__name__} needs finite features: impute or drop the "
                "missing values first."
            )
        return (X, y) if fit else X

    def _initial_boxes(self, X, w, rng):
        if isinstance(self.init, str) and self.init == "k-means++":
            boxes, _ = kmeans_plusplus(X, self.n_boxes, sample_weight=w, random_state=rng)
            return boxes.astype(np.float64)
        if isinstance(self.init, str) and self.init == "random":
            p = w / w.sum()
            if np.count_nonzero(p) < self.n_boxes:
                raise ValueError(
                    f"init='random' needs at least n_boxes={self.n_boxes} samples with "
                    f"positive weight; got {np.count_nonzero(p)}."
                )
            idx = rng.choice(X.shape[0], self.n_boxes, replace=False, p=p)
            return X[np.sort(idx)].astype(np.float64)
        boxes = np.asarray(self.init, dtype=np.float64)
        expected = (self.n_boxes, X.shape[1])
        if boxes.shape != expected:
            raise ValueError(
                f"init has shape {boxes.shape}; expected (n_boxes, n_features) = {expected}."
            )
        if not np.isfinite(boxes).all():
            raise ValueError("init contains NaN or infinity.")
        return boxes

    def _held_out(self, X, w, seed):
        """The samples a member holds out (bool), or None when it holds out nothing.

        A hash of each sample's features and ``seed`` decides, so equal samples fall
        together. Nothing is held out when too few samples would remain for the boxes.
        """
        bits = X.view(np.uint64 if X.dtype == np.float64 else np.uint32)
        negative_zero = np.array([-0.0], dtype=X.dtype).view(bits.dtype)[0]
        u = _kernels.row_hash_uniform(bits, np.uint64(negative_zero), np.uint64(seed))
        held = (u < self.validation_fraction) & (w > 0)
        if not held.any() or np.count_nonzero(~held & (w > 0)) < max(self.n_boxes, 2):
            return None
        return held

    # -- fitting ---------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the members: boxes, feature weights, box label probabilities, read-out.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; float32 is used as is, other types become float64.
        y : array-like of shape (n_samples,)
            Class labels (strings or integers).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; they weigh every term of the loss.

        Returns
        -------
        self : ESPAClassifier
        """
        X, y = self._check_X(X, y, reset=True)
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        y_enc = y_enc.astype(np.intp)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes; y has only "
                f"one class: {np.asarray(self.classes_[0]).item()!r}."
            )
        n_samples = X.shape[0]
        if self.n_boxes > n_samples:
            raise ValueError(
                f"n_boxes={self.n_boxes} is larger than the number of samples "
                f"(n_samples={n_samples}); use at most {n_samples} boxes."
            )
        w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        w_base = w
        if self.class_weight is not None:
            w = w * compute_sample_weight(self.class_weight, y)
        # the weights the probabilities count
        w_read = w if self.weighted_proba or w is w_base else np.where(w > 0, w_base, 0.0)
        if not w.sum() > 0:
            raise ValueError("sample_weight sums to 0: no sample to fit.")

        n_restarts = self.n_restarts
        if not isinstance(self.init, str) and n_restarts != 1:
            warnings.warn(
                f"init is an array of boxes, so all restarts would be identical; doing 1 "
                f"instead of n_restarts={n_restarts}.",
                RuntimeWarning,
                stacklevel=2,
            )
            n_restarts = 1
        rng = check_random_state(self.random_state)
        weighted = resolve_indicators(self.indicators, X, w,
                                      getattr(self, "feature_names_in_", None))
        prior = weight_prior(self.weight_prior, X, y_enc, w, n_classes, weighted, rng)
        rule = WeightRule(float(self.eps_W), weighted, prior)
        # the reference draws its restarts' seeds first: keep that order
        seeds = [rng.randint(np.iinfo(np.int32).max, size=n_restarts)
                 for _ in range(self.n_estimators)]
        hash_seeds = rng.randint(np.iinfo(np.int32).max, size=self.n_estimators)
        ensemble = self.n_estimators > 1
        holds = ensemble or (self.selection == "holdout" and n_restarts > 1)
        held = [self._held_out(X, w, s) if holds else None for s in hash_seeds]
        w_fit = [w if h is None else np.where(h, 0.0, w) for h in held]  # restarts' weights
        # centre of the data, so that the matrix-product distances lose few digits
        mu = (w.astype(X.dtype) @ X).astype(np.float64) / w.sum()
        eps_c = float(self.eps_C)
        threads_total = n_threads(self.n_jobs)
        tasks = [(m, s) for m in range(self.n_estimators) for s in seeds[m]]
        parallel = min(threads_total, len(tasks))
        inner = max(1, threads_total // parallel)

        def run(task):
            m, seed = task
            boxes = self._initial_boxes(X, w_fit[m], np.random.RandomState(seed))
            with Threads(inner) as threads:
                return fit_one(X, w_fit[m], y_enc, n_classes, boxes, mu, eps_c, rule,
                               self.max_iter, self.tol, threads)

        blas = threadpool_limits(limits=1, user_api="blas") if threads_total > 1 else \
            nullcontext()
        with blas:
            if parallel > 1:
                with ThreadPoolExecutor(parallel) as pool:
                    fits = list(pool.map(run, tasks))
            else:
                fits = [run(t) for t in tasks]
            with Threads(threads_total) as threads:
                members = []
                for m in range(self.n_estimators):
                    candidates = fits[m * n_restarts:(m + 1) * n_restarts]
                    members.append(self._member(X, y_enc, w, w_read, held[m], candidates,
                                                n_classes, mu, eps_c, rule, ensemble,
                                                rng, threads))
        on = np.ones(X.shape[1], bool) if weighted is None else weighted
        self._set_members(members, on, prior)
        return self

    def _member(self, X, y, w, w_read, held, candidates, n_classes, mu, eps_c, rule,
                ensemble, rng, threads):
        """Choose a member's restart, refine it on all samples (single model), and fit
        its read-out. ``w`` weighs the fit, ``w_read`` the probabilities."""
        own = w_read is w  # the probabilities count the fit's own weights
        read_fit = w_read if held is None else np.where(held, 0.0, w_read)

        def readout_of(fit, reads):
            mid = centre(fit.boxes, fit.counts)
            if own:
                counts, total = fit.label_counts, fit.wcount
            else:
                boxes = assign_all(X, fit.boxes, fit.weights, mid, threads)
                counts = np.zeros_like(fit.label_counts)
                np.add.at(counts, (boxes, y), reads)
                total = np.maximum(counts.sum(axis=1), np.finfo(float).tiny)
            lam = smoothed(counts, total, self.alpha)
            tau = 0.0
            if self.readout == "soft":
                tau = fit_temperature(X, y, reads, fit.boxes, fit.weights, mid, lam, rng)
            return _Member(fit, lam, tau, math.nan)

        def scored(member):
            rows = np.flatnonzero(held)
            proba = Readout([member.readout()], X.dtype).proba(X, threads, rows)
            member.score = log_loss(proba, y[rows], w_read[rows])
            return member

        if held is not None and self.selection == "holdout":
            options = [scored(readout_of(f, read_fit)) for f in candidates]
            best = min(options, key=lambda o: o.score)  # first on ties
        else:
            best = min(candidates, key=lambda f: f.loss)  # first on ties
            best = readout_of(best, read_fit)
            if held is not None:
                best = scored(best)
        if held is not None and not ensemble:
            refined = fit_one(X, w, y, n_classes, best.fit.boxes, mu, eps_c, rule,
                              self.max_iter, self.tol, threads, init_weights=best.fit.weights)
            score = best.score
            best = readout_of(refined, w_read)
            best.score = score
        return best

    def _set_members(self, members, weighted, prior):
        """Store the members, and the shown one's attributes on the estimator itself."""
        if self.selection == "holdout" and all(not math.isnan(m.score) for m in members):
            shown = min(range(len(members)), key=lambda i: members[i].score)
        else:
            shown = min(range(len(members)), key=lambda i: members[i].fit.loss)
        self.estimators_ = []
        for m in members:
            est = clone(self).set_params(n_estimators=1)
            est._set_fitted(m, self, weighted, prior)
            self.estimators_.append(est)
        self._set_fitted(members[shown], self, weighted, prior)

    def _set_fitted(self, member, parent, weighted, prior):
        fit = member.fit
        self.boxes_ = fit.boxes
        self.feature_weights_ = fit.weights
        self.box_label_proba_ = member.label_proba
        self.box_counts_ = fit.counts
        self.temperature_ = member.temperature
        self.validation_score_ = member.score
        self.loss_curve_ = np.asarray(fit.loss_curve)
        self.loss_ = fit.loss
        self.n_iter_ = len(fit.loss_curve)
        self.classes_ = parent.classes_
        self.n_features_in_ = parent.n_features_in_
        if hasattr(parent, "feature_names_in_"):
            self.feature_names_in_ = parent.feature_names_in_
        self.weighted_features_ = weighted
        self.weight_prior_ = prior

    # -- prediction ---------------------------------------------------------------

    def _threads(self):
        n = n_threads(self.n_jobs)
        limits = threadpool_limits(limits=1, user_api="blas") if n > 1 else nullcontext()
        return limits, Threads(n)

    def apply(self, X):
        """Index of each sample's box in the shown member: the nearest box under the
        feature weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        boxes : ndarray of shape (n_samples,)
            Row index into ``boxes_``.
        """
        check_is_fitted(self)
        X = self._check_X(X)
        limits, threads = self._threads()
        with limits, threads:
            return assign_all(X, self.boxes_, self.feature_weights_, self._centre(), threads)

    def box_distance(self, X):
        """W-weighted squared distance of each sample to its nearest box (of the shown
        member): how far a sample lies from every region of feature space the boxes
        describe. Far beyond the training samples' distances, a prediction is an
        extrapolation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        distance : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        X = self._check_X(X)
        mu, W = self._centre(), self.feature_weights_
        A_t, cost0 = distance_terms(self.boxes_, W, mu, np.float64)
        out = np.empty(X.shape[0])
        for a in range(0, X.shape[0], 2**16):  # a chunk's (samples x boxes) at a time
            x = X[a:a + 2**16].astype(np.float64)
            # |x - S_k|_W^2 = |x - mu|_W^2 + cost0_k - 2 x . A_k (see distance_terms)
            out[a:a + len(x)] = ((x - mu) ** 2 @ W
                                 + np.min(cost0[None, :] - 2.0 * (x @ A_t), axis=1))
        return np.maximum(out, 0.0)

    def _centre(self):
        return centre(self.boxes_, self.box_counts_)

    def _readout_members(self):
        members = getattr(self, "estimators_", None) or [self]
        return [(m.boxes_, m.feature_weights_, m._centre(), m.box_label_proba_,
                 m.temperature_) for m in members]

    def predict_proba(self, X):
        """Class probabilities, averaged over the members.

        With ``readout="hard"`` a member gives the label probabilities of the
        sample's nearest box; with "soft" those of all boxes, weighted by
        softmax(-distance / temperature_).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        check_is_fitted(self)
        members = self._readout_members()
        if len(members) == 1 and members[0][4] == 0:  # the reference read-out
            return self.box_label_proba_[self.apply(X)]
        X = self._check_X(X)
        limits, threads = self._threads()
        with limits, threads:
            return Readout(members, X.dtype).proba(X, threads)

    def predict_proba_spread(self, X, classes):
        """Class probabilities and how much the members disagree on them.

        The members are fitted on different hold-outs of the samples, so their spread
        is the model's uncertainty where the data leave it free: small where every
        member reads the same boxes, large between and beyond them.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        classes : array-like
            The classes (of ``classes_``) whose summed probability is compared, for
            example every class but "none" for the probability of any RTS.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Exactly :meth:`predict_proba`.
        spread : ndarray of shape (n_samples,)
            The standard deviation over the members of each sample's probability of
            ``classes`` (0 for a single member).
        """
        check_is_fitted(self)
        score = np.isin(self.classes_, np.asarray(classes)).astype(np.float64)
        if not score.any():
            raise ValueError(f"none of classes={np.asarray(classes).tolist()!r} is one of the "
                             f"model's classes {self.classes_.tolist()}.")
        members = self._readout_members()
        if len(members) == 1 and members[0][4] == 0:  # the reference read-out
            proba = self.predict_proba(X)
            return proba, np.zeros(len(proba))
        X = self._check_X(X)
        limits, threads = self._threads()
        with limits, threads:
            return Readout(members, X.dtype).proba(X, threads, score=score)

    def predict(self, X):
        """The most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
