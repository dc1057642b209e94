"""Design matrices from cube groups: one sample per labelled cell and year, its features
(with missing-value flags) and its label; and a model's features for every cell."""

from __future__ import annotations

import fnmatch
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_FEATURES = ("era5_*", "dem_*", "emb_*")


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
        from .espa import find_indicators

        mask = self.X.columns.isin(self.flags)
        values = self.X.to_numpy()
        step = max(1, 2**24 // max(1, len(values)))  # columns of at most 128 MB in float64
        for start in range(0, values.shape[1], step):
            block = values[:, start:start + step].astype(np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                median = np.nan_to_num(np.nanmedian(block, axis=0))
            block = np.where(np.isnan(block), median, block)
            mask[start:start + step] |= find_indicators(block)
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
    X = _columns(ds, names, yi, ci, missing)
    if target == "any":
        y = (ds.rts_count.transpose("year", "cells").values[yi, ci] > 0).astype(int)
        classes = ["no RTS", "RTS"]
    else:
        y = label[yi, ci].astype(int)
        meanings = ds.rts_class.attrs.get("flag_meanings", "").split()
        classes = meanings or [str(c) for c in np.unique(y)]
    if missing == "drop":
        keep = X.notna().all(axis=1).values
        X, y, yi, ci = X[keep].reset_index(drop=True), y[keep], yi[keep], ci[keep]
    if len(y) == 0:
        raise ValueError("no labelled cell has its features: nothing to train on.")
    values, counts = np.unique(y, return_counts=True)
    lonely = values[counts < 2]
    if len(lonely):
        raise ValueError(f"class {lonely[0]} has a single labelled cell: too few to train and "
                         "test on; merge it into a neighbouring class (bin_edges).")
    return DesignMatrix(X, y, ds.cell_ids.values[ci], ds.year.values[yi], classes)


def _columns(ds, names, yi, ci, missing) -> pd.DataFrame:
    """The features of the samples (year index ``yi``, cell index ``ci``) as one 2-D
    block, read a variable at a time (never the whole group), with a ``_missing`` flag
    after the features for each one that has missing values (``missing="impute"``).

    float32 when every feature is float32 in the cube (as the stages write them: exact,
    and half the memory), else float64. The block is column-major: each column is
    written into its place as it is read, and the flags after them, into a buffer with
    room for a flag per feature whose unused end is never touched (so never resident),
    so that memory holds the matrix once."""
    dtype = np.float32 if all(ds[n].dtype == np.float32 for n in names) else np.float64
    n = len(yi)
    buf = np.empty(n * len(names) * (2 if missing == "impute" else 1), dtype=dtype)
    gaps = []
    for j, name in enumerate(names):
        v = ds[name]
        col = buf[j * n:(j + 1) * n]
        col[:] = v.transpose("year", "cells").values[yi, ci] if "year" in v.dims else \
            v.values[ci]
        if missing == "impute" and np.isnan(col).any():
            gaps.append(j)
    for k, j in enumerate(gaps):
        buf[(len(names) + k) * n:(len(names) + k + 1) * n] = np.isnan(buf[j * n:(j + 1) * n])
    X = buf[:n * (len(names) + len(gaps))].reshape(len(names) + len(gaps), n).T
    return pd.DataFrame(X, columns=names + [f"{names[j]}_missing" for j in gaps], copy=False)


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
