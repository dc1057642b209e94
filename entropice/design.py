"""Design matrices from cube groups: one sample per labelled cell and year, its features
(with missing-value flags) and its label; and a model's features for every cell."""

from __future__ import annotations

import fnmatch
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

DEFAULT_FEATURES = ("era5_*", "dem_*", "emb_*")


def _indicator_mask(block) -> np.ndarray:
    """Which columns of a block are eSPA+ indicators (binary or near-constant), judged as
    inside the training folds: median-imputed, in float64. (A column without missing
    values is judged as it is: imputing changes nothing, and its values compare alike in
    float32.)"""
    from .espa import find_indicators

    block = np.asarray(block)
    gap = np.isnan(block).any(axis=0)
    mask = np.zeros(block.shape[1], dtype=bool)
    if not gap.all():
        mask[~gap] = find_indicators(block if not gap.any() else block[:, ~gap])
    if gap.any():
        cols = np.asarray(block[:, gap], dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            median = np.nan_to_num(np.nanmedian(cols, axis=0))
        mask[gap] = find_indicators(np.where(np.isnan(cols), median, cols))
    return mask


@dataclass
class DesignMatrix:
    """Samples (a cell in a year) with their features and label."""

    X: pd.DataFrame
    y: np.ndarray
    cell_ids: np.ndarray
    years: np.ndarray
    classes: list

    @property
    def flags(self) -> list[str]:
        """The missing-value flag columns."""
        return [c for c in self.X.columns if c.endswith("_missing")]

    def indicators(self) -> list[int]:
        """Columns that carry no eSPA+ feature weight: the missing-value flags, and binary
        or near-constant columns (median-imputed, as inside the training folds).

        Judged a few columns at a time (at most 128 MB of them), so that memory holds those
        columns, not a float64 copy of the matrix."""
        mask = self.X.columns.isin(self.flags)
        values = self.X.to_numpy()
        step = max(1, 2**24 // max(1, len(values)))  # columns of at most 128 MB in float64
        for start in range(0, values.shape[1], step):
            mask[start:start + step] |= _indicator_mask(values[:, start:start + step])
        return np.flatnonzero(mask).tolist()


@dataclass
class DesignRows:
    """A group's samples with their labels, their features read from the (lazy) group
    for a set of rows at a time: training holds the rows it fits or asks, not the
    matrix (8M samples x 113 columns are 3.4 GB in float32)."""

    ds: xr.Dataset  # the group's features
    names: list  # the feature variables
    gaps: list  # positions in ``names`` of the features with a missing-value flag
    yi: np.ndarray  # each sample's year and cell position in the group
    ci: np.ndarray
    y: np.ndarray
    cell_ids: np.ndarray
    years: np.ndarray
    classes: list
    dtype: type
    judged: np.ndarray | None = None  # which features are indicators, if the scan judged

    @property
    def columns(self) -> list[str]:
        """The features, then their missing-value flags."""
        return self.names + [f"{self.names[j]}_missing" for j in self.gaps]

    def __len__(self):
        return len(self.y)

    def read(self, rows=None) -> np.ndarray:
        """The design matrix of samples ``rows`` (positions, sorted; all by default),
        column-major, read a variable at a time."""
        sel = slice(None) if rows is None else rows
        return _columns(self.ds, self.names, self.gaps, self.yi[sel], self.ci[sel],
                        self.dtype)

    def frame(self) -> DesignMatrix:
        """Every sample in memory."""
        return DesignMatrix(pd.DataFrame(self.read(), columns=self.columns, copy=False),
                            self.y, self.cell_ids, self.years, self.classes)

    def indicators(self) -> list[int]:
        """As :meth:`DesignMatrix.indicators`: judged by :func:`design_rows`'s scan of
        the features (``missing="impute"``), else one feature read at a time."""
        mask = np.ones(len(self.columns), dtype=bool)  # the flags are
        if self.judged is not None:
            mask[:len(self.names)] = self.judged
            return np.flatnonzero(mask).tolist()
        for j, name in enumerate(self.names):
            mask[j] = _indicator_mask(_columns(self.ds, [name], [], self.yi, self.ci,
                                               self.dtype))[0]
        return np.flatnonzero(mask).tolist()


def select_features(ds, patterns=DEFAULT_FEATURES) -> list[str]:
    """Variables of a group matching any of the glob ``patterns``, sorted by name (the
    group's order depends on the order its stages ran; a model's must not)."""
    names = sorted(n for n in ds.data_vars if any(fnmatch.fnmatch(n, p) for p in patterns))
    for p in patterns:
        if not any(fnmatch.fnmatch(n, p) for n in ds.data_vars):
            raise ValueError(f"the feature pattern {p!r} matches nothing in the group "
                             f"(variables: {', '.join(sorted(ds.data_vars))}).")
    return names


def design_matrix(ds, features=DEFAULT_FEATURES, *, target="rts_class", missing="impute",
                  years=None) -> DesignMatrix:
    """Samples of a cube group: one per labelled (year, cell).

    Parameters
    ----------
    ds : xarray.Dataset
        A cube group with labels (``rts_class``, ``rts_count``) and features.
    features : sequence of str
        Glob patterns of feature names (each must match something).
    target : {"rts_class", "any"}
        The density class, or whether the cell has any RTS (0/1).
    missing : {"impute", "drop"}
        "impute" keeps NaN (imputed inside the training folds) and adds a 0/1
        ``<feature>_missing`` column for every feature with missing values; "drop"
        drops the samples with any missing feature.
    years : sequence of int, optional
        Only these years.
    """
    return design_rows(ds, features, target=target, missing=missing, years=years).frame()


def design_rows(ds, features=DEFAULT_FEATURES, *, target="rts_class", missing="impute",
                years=None) -> DesignRows:
    """:func:`design_matrix`'s samples, their features left in the group until asked
    for (:class:`DesignRows`); one pass over the features finds the missing values (and,
    with ``missing="impute"``, the indicator columns)."""
    if "rts_class" not in ds or "rts_count" not in ds:
        raise ValueError("the group has no labels (rts_class, rts_count): run the labels "
                         "stage first.")
    if target not in ("rts_class", "any"):
        raise ValueError(f"target must be 'rts_class' or 'any'; got {target!r}.")
    if missing not in ("impute", "drop"):
        raise ValueError(f"missing must be 'impute' or 'drop'; got {missing!r}.")
    names = select_features(ds, features)
    if years is not None:
        ds = ds.sel(year=list(years))
    label = ds.rts_class.transpose("year", "cells").values
    yi, ci = np.nonzero(np.isfinite(label))
    if target == "any":
        y = (ds.rts_count.transpose("year", "cells").values[yi, ci] > 0).astype(int)
        classes = ["no RTS", "RTS"]
    else:
        y = label[yi, ci].astype(int)
        meanings = ds.rts_class.attrs.get("flag_meanings", "").split()
        classes = meanings or [str(c) for c in np.unique(y)]
    dtype = np.float32 if all(ds[n].dtype == np.float32 for n in names) else np.float64
    complete, gaps = np.ones(len(y), dtype=bool), []
    judged = np.zeros(len(names), dtype=bool) if missing == "impute" else None
    for j, name in enumerate(names):  # which features miss values, and where
        column = _columns(ds, [name], [], yi, ci, dtype)
        gap = np.isnan(column[:, 0])
        if gap.any():
            gaps.append(j)
            complete &= ~gap
        if judged is not None:
            judged[j] = _indicator_mask(column)[0]
        del column
    if missing == "drop":  # the indicators are judged on the samples kept, when asked
        y, yi, ci, gaps = y[complete], yi[complete], ci[complete], []
    if len(y) == 0:
        raise ValueError("no labelled cell has its features: nothing to train on.")
    values, counts = np.unique(y, return_counts=True)
    lonely = values[counts < 2]
    if len(lonely):
        raise ValueError(f"class {lonely[0]} has a single labelled cell: too few to train and "
                         "test on; merge it into a neighbouring class (bin_edges).")
    return DesignRows(ds[names], names, gaps, yi, ci, y, ds.cell_ids.values[ci],
                      ds.year.values[yi], classes, dtype, judged)


def _columns(ds, names, gaps, yi, ci, dtype) -> np.ndarray:
    """The features ``names`` of the samples (year index ``yi``, cell index ``ci``) as
    one 2-D block, read a variable at a time (never the whole group), with a
    ``_missing`` flag after them for each feature in ``gaps``.

    float32 when every feature is float32 in the cube (as the stages write them: exact,
    and half the memory), else float64. The block is column-major: each column is
    written into its place as it is read, so that memory holds the block once."""
    n = len(yi)
    out = np.empty((len(names) + len(gaps), n), dtype=dtype)
    # only the span of cells the samples lie in is read (a slab of cells reads its chunks)
    c0 = int(ci.min()) if n else 0
    span, at = slice(c0, int(ci.max()) + 1 if n else 0), ci - c0
    for j, name in enumerate(names):
        v = ds[name].isel(cells=span)
        out[j] = v.transpose("year", "cells").values[yi, at] if "year" in v.dims else \
            v.values[at]
    for k, j in enumerate(gaps):
        out[len(names) + k] = np.isnan(out[j])
    return out.T


def cell_features(ds, names, year=None) -> pd.DataFrame:
    """A model's features for every cell of a group in one year (static features as they
    are; ``<name>_missing`` flags rebuilt from the data), in the model's column order."""
    cols = {}
    for n in names:
        base = n.removesuffix("_missing")
        if base not in ds:
            raise ValueError(f"the group lacks the model's feature {base!r}.")
        da = ds[base]
        if "year" in da.dims:
            if year is None:
                raise ValueError(f"{base!r} is yearly: say which year.")
            da = da.sel(year=year)
        v = np.asarray(da.values, dtype=np.float64)
        cols[n] = np.isnan(v).astype(float) if n != base else v
    return pd.DataFrame(cols)
