"""The mission's claims, measured: how a model trained on some labelled regions does on
regions it never saw (leave-one-region-out), how that grows with the labelled area
(learning curves), and how a model trained on past years predicts the next one
(temporal validation).

Each measure is split into the samples' assignment (``*_splits``: which samples train
and which test, returned so that a test can check that no held-out region or future
year is ever trained on) and the fits and scores on those splits.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import pandas as pd

from ..design import design_matrix
from ..grids import grid_of
from .cv import fold_levels
from .estimators import ask, baseline, espa_model, espa_search, fit_sample
from .folds import strata, stratified_sample, stratified_samples
from .metrics import triage_curve
from .settings import train_settings

log = logging.getLogger(__name__)

UNLABELLED = ""
"""The region of a cell no footprint maps."""

N_TEST = 2
"""The regions a learning curve holds out in each draw (it needs one more to train on)."""
SEARCH = "search"
"""``espa_params`` that search eSPA+'s parameters in each split, on its training samples
alone (the run's grid, as training searches them), so that no held-out region or
later year chooses them."""


def cell_regions(ds, coverage=None, n_regions=8, random_state=0) -> np.ndarray:
    """The labelled region of every cell of a group (``""`` for cells never labelled).

    With ``coverage`` (a GeoDataFrame of the inventory's mapped footprints), a region is
    a footprint's ``region`` (each footprint its own region without that column), and
    a labelled cell belongs to the nearest footprint (its centre may lie just outside
    the one that maps it). Without, the labelled cells are split into ``n_regions``
    spatial clusters (k-means of their centres on the unit sphere), named ``region 1``
    and on.
    """
    lat, lon = np.radians(ds.lat.values), np.radians(ds.lon.values)
    labelled = np.isfinite(ds.rts_class.values).any(
        axis=tuple(i for i, d in enumerate(ds.rts_class.dims) if d != "cells"))
    out = np.full(len(lat), UNLABELLED, dtype=object)
    if not labelled.any():
        return out
    if coverage is not None:
        import geopandas as gpd

        names = (coverage["region"].astype(str).values if "region" in coverage.columns
                 else np.array([f"footprint {i + 1}" for i in range(len(coverage))]))
        foot = gpd.GeoDataFrame({"region": names}, geometry=coverage.geometry.values,
                                crs=coverage.crs).to_crs(3413)
        pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(ds.lon.values[labelled],
                                                           ds.lat.values[labelled]),
                               crs=4326).to_crs(3413)
        near = gpd.sjoin_nearest(pts, foot, how="left")
        near = near[~near.index.duplicated()]  # a point equally near two footprints
        out[np.flatnonzero(labelled)] = near["region"].reindex(pts.index).values
        return out
    from sklearn.cluster import KMeans

    xyz = np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon),
                           np.sin(lat)])[labelled]
    k = min(n_regions, int(labelled.sum()))
    km = KMeans(k, n_init=4, random_state=random_state).fit(xyz)
    out[labelled] = np.array([f"region {i + 1}" for i in range(k)])[km.labels_]
    return out


def region_splits(sample_regions) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Leave one region out: for each region, (region, training rows, test rows), the
    test rows being the region's samples and the training rows every other region's."""
    r = np.asarray(sample_regions, dtype=object)
    return [(name, np.flatnonzero((r != name) & (r != UNLABELLED)), np.flatnonzero(r == name))
            for name in sorted(set(r) - {UNLABELLED})]


def learning_splits(sample_regions, n_test=N_TEST, repeats=3, random_state=0):
    """Learning curves by labelled area: in each of ``repeats`` draws, ``n_test``
    regions are held out and the others added to training one region at a time in a
    random order, at 1, 2, 4, ... and all of them; a list of dicts (repeat, training
    regions, training rows, test regions, test rows). The training sets of a draw are
    nested and never hold a test region's sample."""
    r = np.asarray(sample_regions, dtype=object)
    names = sorted(set(r) - {UNLABELLED})
    if len(names) < n_test + 1:
        raise ValueError(f"{len(names)} labelled region(s): learning curves need at least "
                         f"{n_test + 1} ({n_test} held out and one to train on).")
    rng = np.random.default_rng(random_state)
    out = []
    for rep in range(repeats):
        order = [names[i] for i in rng.permutation(len(names))]
        test, pool = order[:n_test], order[n_test:]
        sizes = sorted({*(2 ** np.arange(int(np.log2(len(pool))) + 1)).tolist(), len(pool)})
        test_rows = np.flatnonzero(np.isin(r, test))
        for k in sizes:
            out.append({"repeat": rep, "train_regions": pool[:k], "test_regions": test,
                        "train": np.flatnonzero(np.isin(r, pool[:k])), "test": test_rows})
    return out


def temporal_splits(sample_years) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Train on the years before a year, test on that year: (year, training rows, test
    rows) for every year but the first."""
    y = np.asarray(sample_years)
    years = np.unique(y)
    return [(int(t), np.flatnonzero(y < t), np.flatnonzero(y == t)) for t in years[1:]]


def _models(s, espa_params, indicators):
    """The models to compare, as makers: eSPA+ with ``espa_params`` (the indicator
    columns carrying no weight, as in training; :data:`SEARCH`: its search on inner
    spatial folds) and the configured baselines."""
    espa = (lambda: espa_search(s, indicators)) if espa_params == SEARCH else (
        lambda: espa_model(s, indicators, **espa_params))
    return {"eSPA+": espa,
            **{b: (lambda b=b: baseline(b, s["random_state"])) for b in s["baselines"]}}


def planned_fits(samples, repeats=3, n_test=N_TEST) -> dict[str, int]:
    """The fits (split x model) each measure makes on ``samples`` (:class:`Samples`),
    known before any is made: the total of a progress bar (no learning curve without
    more regions than ``n_test``)."""
    d, n = samples, len(samples.s["baselines"]) + 1
    draws = (len(learning_splits(d.regions, n_test, repeats, d.s["random_state"]))
             if len(set(d.regions) - {UNLABELLED}) > n_test else 0)
    return {"transfer": len(region_splits(d.regions)) * n, "learning_curve": draws * n,
            "temporal": len(temporal_splits(d.years)) * n}


def _scores(y, proba, labels, area, land) -> dict:
    """ROC AUC of P(any RTS), balanced accuracy and the land to scan for 90 % of the RTS
    area, of one model on test samples."""
    from sklearn import metrics as skm

    anyr = 1.0 - proba[:, 0]
    pred = labels[np.argmax(proba, axis=1)]
    out = {"roc_auc": (float(skm.roc_auc_score(y > 0, anyr)) if 0 < (y > 0).sum() < len(y)
                       else np.nan),
           "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred))}
    out["land_for_90pct_rts"] = (triage_curve(anyr, area, land)["land_share_needed"]["0.90"]
                                 if np.nansum(area) > 0 else np.nan)
    return out


class Samples:
    """A group's labelled samples with their regions, years, areas and the settings:
    read once, for every measure of a group (``regions``: each cell's, see
    :func:`cell_regions`)."""

    def __init__(self, ds, section=None, regions=None):
        self.s = train_settings(section)
        dm = design_matrix(ds, self.s["features"], target=self.s["target"],
                           missing=self.s["missing"])
        self.X, self.y = dm.X.to_numpy(np.float64), np.asarray(dm.y)
        self.indicators = dm.indicators()
        self.labels = np.unique(self.y)
        self.pos = pos = pd.Index(ds.cell_ids.values).get_indexer(dm.cell_ids)
        self.regions = (np.asarray(regions, dtype=object)[pos] if regions is not None
                        else np.full(len(pos), UNLABELLED, dtype=object))
        self.years = np.asarray(dm.years)
        # inner spatial blocks, as training's: what a split's search holds out in turn
        grid = grid_of(ds)
        self.blocks = grid.parents(np.asarray(dm.cell_ids), fold_levels(grid, self.s)[1])
        yi = pd.Index(ds.year.values).get_indexer(self.years)
        self.area = ds.rts_area_km2.values[yi, pos] if "rts_area_km2" in ds else None
        self.cell_land = ds.area_km2.values * (ds.land_fraction.values
                                               if "land_fraction" in ds else 1)
        self.land = self.cell_land[pos]
        # each (year, cell)'s label as the target reads it (NaN: not mapped)
        cls = ds.rts_class.transpose("year", "cells").values
        self.grid_labels = cls if self.s["target"] == "rts_class" else np.where(
            np.isfinite(cls), ds.rts_count.transpose("year", "cells").values > 0, np.nan)

    def land_km2(self, rows) -> float:
        """The land of the distinct cells of the samples ``rows``, in km2."""
        return float(self.cell_land[np.unique(self.pos[rows])].sum())

    def fit_score(self, models, train, test, seed=0, bar=None):
        """Every model fitted on (at most ``fit_rows`` of) ``train``, scored on ``test``;
        each fit a step of ``bar`` (a tqdm bar, or None), which names the model fitted.
        A search (:data:`SEARCH`) runs on at most ``search_rows`` of ``train``, drawn by
        inner block and class, as in training."""
        search = train[stratified_samples(strata(self.y[train], self.blocks[train]),
                                          [self.s["search_rows"]], self.s["random_state"])[0]]
        if self.s["fit_rows"] and len(train) > self.s["fit_rows"]:
            train = train[stratified_sample(self.y[train], self.s["fit_rows"], seed)]
        if len(np.unique(self.y[train])) < 2:  # nothing to learn
            if bar is not None:
                bar.update(len(models))
            return {name: {"roc_auc": np.nan, "balanced_accuracy": np.nan,
                           "land_for_90pct_rts": np.nan} for name in models}
        out = {}
        n_blocks = len(np.unique(self.blocks[search]))
        for name, make in models.items():
            if bar is not None:
                bar.set_postfix_str(name)
            # as in training: a forest's trees capped, a search then its choice fitted
            model, _ = fit_sample(functools.partial(_within, make, n_blocks, self.s),
                            (self.X, self.y, self.blocks, train, search), self.s)
            if bar is not None:
                bar.update()
            p = np.zeros((len(test), len(self.labels)))
            p[:, np.searchsorted(self.labels, model.classes_)] = ask(model, self.X[test])
            area = self.area[test] if self.area is not None else np.zeros(len(test))
            out[name] = _scores(self.y[test], p, self.labels, area, self.land[test])
        return out


def _within(make, n_blocks, s):
    """``make()``, a search's inner folds cut to the ``n_blocks`` inner blocks its samples
    hold (a split of a few coarse regions can hold fewer than ``inner_folds``); with one
    block nothing can be held out, and the grid's first candidate is fitted instead."""
    from sklearn.model_selection import GroupKFold

    model = make()
    if not hasattr(model, "param_grid") or n_blocks >= model.cv.get_n_splits():
        return model
    if n_blocks < 2:
        log.info("evaluate: one inner block in a split: eSPA+ takes the grid's first "
                 "candidate there, unsearched")
        return model.estimator.set_params(**{k: v[0] for k, v in model.param_grid.items()})
    return model.set_params(cv=GroupKFold(n_blocks))


def _espa_params(section, espa_params):
    if espa_params:
        return espa_params
    s = train_settings(section)
    return {k: v[0] for k, v in s["grid"].items()}


def leave_one_region_out(ds, regions, section=None, espa_params=None, *,
                         samples=None, bar=None) -> pd.DataFrame:
    """Each labelled region held out in turn, eSPA+ (``espa_params``, default the first
    of the search grid's values) and the baselines trained on all the others: a row per
    region and model with its ROC AUC of P(any RTS), balanced accuracy and land to scan
    for 90 % of the region's RTS area, and the samples and area trained and tested on.
    ``samples`` (:class:`Samples` of ``ds``) saves reading the group again; each fit
    is a step of ``bar`` (a tqdm bar, or None)."""
    d = samples or Samples(ds, section, regions)
    models = _models(d.s, _espa_params(section, espa_params), d.indicators)
    rows = []
    for name, train, test in region_splits(d.regions):
        log.info("transfer: %s held out (%d training samples)", name, len(train))
        for model, sc in d.fit_score(models, train, test, bar=bar).items():
            rows.append({"region": name, "model": model, "train_samples": len(train),
                         "test_samples": len(test),
                         "test_land_km2": d.land_km2(test), **sc})
    return pd.DataFrame(rows)


def learning_curve(ds, regions, section=None, espa_params=None, n_test=N_TEST,
                   repeats=3, *, samples=None, bar=None) -> pd.DataFrame:
    """Scores on held-out regions against the labelled land trained on (km2 of its
    distinct cells), from :func:`learning_splits`: a row per draw, training
    size and model (``samples`` and ``bar`` as for :func:`leave_one_region_out`)."""
    d = samples or Samples(ds, section, regions)
    models = _models(d.s, _espa_params(section, espa_params), d.indicators)
    rows = []
    for split in learning_splits(d.regions, n_test, repeats, d.s["random_state"]):
        log.info("learning curve: draw %d, %d region(s)", split["repeat"],
                 len(split["train_regions"]))
        for model, sc in d.fit_score(models, split["train"], split["test"],
                                     split["repeat"], bar).items():
            rows.append({"repeat": split["repeat"], "model": model,
                         "train_regions": len(split["train_regions"]),
                         "train_land_km2": d.land_km2(split["train"]),
                         "train_samples": len(split["train"]),
                         "test_regions": ", ".join(split["test_regions"]), **sc})
    return pd.DataFrame(rows)


def last_known(labels) -> np.ndarray:
    """Each cell's last finite label over the years (rows) of ``labels``, NaN if none:
    persistence, whatever years the inventory skipped."""
    k = np.where(np.isfinite(labels), np.arange(len(labels))[:, None], -1).max(axis=0,
                                                                             initial=-1)
    out = np.full(labels.shape[1], np.nan)
    seen = k >= 0
    out[seen] = labels[k[seen], np.flatnonzero(seen)]
    return out


def label_change(labels) -> float:
    """The share of a cell's successive labelled years (rows of ``labels``; gaps
    skipped) whose label changed; NaN when no cell is labelled twice."""
    last = np.full(labels.shape[1], np.nan)
    pairs = changes = 0
    for row in labels:
        both = np.isfinite(row) & np.isfinite(last)
        pairs += int(both.sum())
        changes += int((row[both] != last[both]).sum())
        last = np.where(np.isfinite(row), row, last)
    return changes / pairs if pairs else float("nan")


def temporal_validation(ds, section=None, espa_params=None, *,
                        samples=None, bar=None) -> tuple[pd.DataFrame, float]:
    """Train on the years before each year, predict that year: eSPA+ and the baselines
    beside persistence (the cell's last label before that year) and climatology (its
    class frequencies over the past years; cells never labelled before get the training
    samples' frequencies). Returns the table and :func:`label_change` (0: the labels do
    not vary by year, and this measures nothing about time; NaN: no cell is labelled
    twice). ``samples`` and ``bar`` as for :func:`leave_one_region_out`."""
    d = samples or Samples(ds, section)
    models = _models(d.s, _espa_params(section, espa_params), d.indicators)
    changed = label_change(d.grid_labels)
    years = ds.year.values
    rows = []
    for year, train, test in temporal_splits(d.years):
        scores = d.fit_score(models, train, test, bar=bar)
        past = d.grid_labels[:int(np.searchsorted(years, year))][:, d.pos[test]]
        # the training samples' class frequencies, for cells not labelled before
        freq = np.bincount(np.searchsorted(d.labels, d.y[train]),
                           minlength=len(d.labels)) / len(train)
        area = d.area[test] if d.area is not None else np.zeros(len(test))
        for name, prior in (("persistence", last_known(past)[None]), ("climatology", past)):
            known = np.isfinite(prior)
            n = known.sum(axis=0)
            p = np.stack([((prior == c) & known).sum(axis=0) for c in d.labels], axis=1)
            p = np.where(n[:, None] > 0, p / np.maximum(n, 1)[:, None], freq[None, :])
            scores[name] = _scores(d.y[test], p, d.labels, area, d.land[test])
        for model, sc in scores.items():
            rows.append({"year": year, "model": model,
                         "train_years": f"{years[0]}-{years[years < year][-1]}",
                         "train_samples": len(train), "test_samples": len(test), **sc})
    return pd.DataFrame(rows), changed


def change_note(info) -> str:
    """What an evaluation's ``labels_changed_share`` says of its temporal validation, as
    a sentence ("" when unknown)."""
    changed = info.get("labels_changed_share")
    if changed is None:
        return ""
    if not changed > 0:
        return ("The labels do not change from year to year: the temporal validation "
                "measures nothing about time here.")
    return f"{100 * changed:.0f} % of the cells labelled in two successive years changed class."
