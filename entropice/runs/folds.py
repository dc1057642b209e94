"""Spatial folds: geospatial data leak across neighbouring cells, so folds are blocks of
cells that share a coarse ancestor, and a block is wholly in one fold."""

from __future__ import annotations

import numpy as np

from ..grids import Grid


def spatial_folds(cell_ids, grid: Grid, n_folds=5, *, ancestor_level=None,
                  random_state=0) -> np.ndarray:
    """Fold of each sample: blocks of cells sharing an ancestor go to one fold.

    The ancestors are ``ancestor_level`` (by default ``grid.fold_level()``: blocks of
    49 H3 or 64 HEALPix cells). Blocks are shuffled, then dealt largest first to the
    fold with the fewest samples, so that folds hold about the same number of samples.
    """
    level_up = grid.fold_level() if ancestor_level is None else ancestor_level
    blocks = grid.parents(np.asarray(cell_ids, dtype=np.uint64), level_up)
    uniq, inverse, counts = np.unique(blocks, return_inverse=True, return_counts=True)
    if len(uniq) < n_folds:
        raise ValueError(f"{len(uniq)} blocks at level {level_up} for {n_folds} folds: use a "
                         "finer ancestor_level or fewer folds.")
    rng = np.random.default_rng(random_state)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-counts[order], kind="stable")]
    fold_of_block = np.empty(len(uniq), dtype=np.int64)
    load = np.zeros(n_folds)
    for b in order:
        f = int(np.argmin(load))
        fold_of_block[b] = f
        load[f] += counts[b]
    return fold_of_block[inverse]


def stratified_sample(strata, n, random_state=0) -> np.ndarray:
    """Indices (sorted) of ``n`` samples drawn in proportion from every stratum.

    ``strata`` labels each sample (for example a spatial block and a class, combined);
    each stratum gives the same share of its samples, rounded up or down (systematic
    rounding from a random start, so the shares add up to ``n``), so rare classes and
    small blocks keep their weight in the sample. All samples when ``n`` is None or at
    least their number.
    """
    return stratified_samples(strata, [n], random_state)[0]


def stratified_samples(strata, sizes, random_state=0) -> list[np.ndarray]:
    """:func:`stratified_sample` of each of ``sizes``, each as it would be drawn on its
    own with ``random_state``: the random order of the samples is drawn once for all."""
    strata = np.asarray(strata)
    if all(n is None or n >= len(strata) for n in sizes):
        return [np.arange(len(strata)) for _ in sizes]
    rng = np.random.default_rng(random_state)
    start = rng.random()  # the rounding's random start: the first draw, for every size
    if strata.dtype.kind in "iu" and strata.min() >= 0 and strata.max() < 16 * len(strata):
        inverse, counts = strata, np.bincount(strata)  # empty strata take no share
    else:
        _, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    # by stratum, then at random: np.lexsort((u, inverse)), in two stable sorts (faster)
    order = np.argsort(rng.random(len(strata)), kind="stable")
    order = order[np.argsort(inverse[order], kind="stable")]
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(strata), dtype=np.int64)
    rank[order] = np.arange(len(strata)) - first[inverse[order]]
    out = []
    for n in sizes:
        if n is None or n >= len(strata):
            out.append(np.arange(len(strata)))
            continue
        cum = np.floor(np.cumsum(counts) * int(n) / len(strata) + start)
        quota = np.diff(cum, prepend=0.0).astype(np.int64)
        out.append(np.flatnonzero(rank < quota[inverse]))
    return out


def strata(y, blocks) -> np.ndarray:
    """Each sample's stratum: its inner block and class (the same strata, in the same
    order, as those of any subset of the samples)."""
    _, block = np.unique(blocks, return_inverse=True)
    return block * (int(y.max()) + 1) + y
