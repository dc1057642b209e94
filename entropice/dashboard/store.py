"""The dashboard's data: a cube and its model runs, read through caches every session
shares. What a session looks at is kept apart, in ``selection``."""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

from ..cube import Cube, CubeError, group_name
from ..design import cell_features
from ..grids import get_grid
from ..runs import RunStore
from . import layers
from .cache import shared_cache
from .layers import PROBA
from .lookup import PixelLookup
from .projection import principal_axes

log = logging.getLogger(__name__)
PREFETCH_BYTES = 512 << 20
"""A neighbouring level's group is loaded ahead of need (``CubeStore.prefetch_levels``)
only if it holds less than this in memory."""
PREFETCHES_KEPT = 256
"""Views whose neighbouring levels were prefetched that a store remembers (not to
prefetch them again), the least recently drawn forgotten first."""


@shared_cache(12)
def _load_group(path: str, grid: str, level: int, stamp: float):
    return Cube(path).read(grid, level).load()


@shared_cache(24)
def _load_model(root: str, run: str, stamp: float):
    return RunStore(root).load(run)


_BACKGROUND: weakref.WeakSet = weakref.WeakSet()  # the prefetches' timers


def in_background(delay: float, func, args) -> threading.Timer:
    """``func(*args)`` in a thread of its own after ``delay`` seconds (a prefetch): a
    daemon thread, so that it never holds a server up, and finished when the process
    exits (``_finish_background``)."""
    timer = threading.Timer(delay, func, args)
    timer.daemon = True
    _BACKGROUND.add(timer)
    timer.start()
    return timer


@atexit.register
def _finish_background():
    """Cancel the prefetches not yet started and wait for those running: a daemon
    thread cut off inside numba's or numpy's compiled code as the interpreter exits can
    abort the process ("FATAL: exception not rethrown")."""
    timers = list(_BACKGROUND)
    for timer in timers:
        timer.cancel()
    for timer in timers:
        timer.join(timeout=60)


@shared_cache(24)
def _relevance(root: str, run: str, stamp: float):
    return RunStore(root).relevance(run)


@shared_cache(12)
def _lookup(path: str, grid: str, level: int, stamp: float):
    ds = _load_group(path, grid, level, stamp)
    return PixelLookup(grid, level, ds.cell_ids.values,
                       min_lat=float(np.nanmin(ds.lat.values, initial=np.inf)))


def robust_range(values: np.ndarray) -> tuple[float, float]:
    """2nd to 98th percentile of the finite values (0-1 if there are none)."""
    v = values[np.isfinite(values)]
    if not len(v):
        return 0.0, 1.0
    lo, hi = np.percentile(v, [2, 98])
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    return float(lo), float(hi if hi > lo else lo + 1.0)


@shared_cache(64)
def _layer_range(path: str, grid: str, level: int, year, layer: str, stamp: float):
    return robust_range(layers.values(_load_group(path, grid, level, stamp), layer, year))


@shared_cache(64)
def _group_bytes(path: str, grid: str, level: int, stamp: float) -> int:
    return Cube(path).read(grid, level).nbytes  # opened, not read


@shared_cache(16)
def _cell_boxes(root: str, run: str, path: str, grid: str, level: int, year: int,
                stamp: float):
    model = _load_model(root, run, _stamp(RunStore(root).path(run) / "model.json"))
    ds = _load_group(path, grid, level, stamp)
    return model.apply(cell_features(ds, model.meta["feature_names"], year).to_numpy())


@shared_cache(8)
def _projection(path: str, grid: str, level: int, year, names: tuple, stamp: float):
    ds = _load_group(path, grid, level, stamp)
    known = set(layers.feature_names(ds))
    if not set(names) <= known:  # never a name from a request unchecked (nor cached)
        raise KeyError(f"not features of the group: {sorted(set(names) - known)}.")
    return principal_axes(ds, names, year)


def _stamp(path: Path) -> float:
    """Changes when the directory's content is swapped (groups are replaced whole)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class CubeStore:
    """A cube and its model runs, each group and model read once for every session.

    Groups and runs are opened only by the names this store has listed, so a name that
    came with a request is matched against those lists, never made into a path.

    Parameters
    ----------
    path : str or Path
        The cube. If it cannot be opened or has no group, ``problem`` says why.
    models : str or Path, optional
        The runs' directory; default: where the cube's ``models`` attribute says, else
        ``models/`` beside the cube.
    """

    def __init__(self, path, models=None):
        self.path = Path(path)
        self.problem = None
        attrs, self.groups = {}, []
        try:
            cube = Cube(self.path)
            self.groups, attrs = cube.groups(), dict(cube.attrs)
        except (CubeError, OSError, ValueError) as err:
            self.problem = f"No Entropice cube could be opened at `{self.path}` ({err})."
        if self.problem is None and not self.groups:
            self.problem = f"The cube at `{self.path}` has no grid groups yet."
        self.run_store = RunStore(models) if models else RunStore.of_cube(self.path, attrs)
        self._listed: set[str] = set()
        self._prefetched: OrderedDict = OrderedDict()  # see prefetch_levels
        self._prefetch_lock = threading.Lock()

    # -- groups -----------------------------------------------------------------------------

    def grids(self) -> list[str]:
        """The cube's grids."""
        return sorted({g for g, _ in self.groups})

    def levels(self, grid: str) -> list[int]:
        """The levels of a grid in the cube."""
        return sorted(lvl for g, lvl in self.groups if g == grid)

    def group_stamp(self, grid, level) -> float:
        """Changes when the group is rewritten: what caches of its values are keyed on."""
        if (grid, level) not in self.groups:  # never a name from a request unchecked
            raise KeyError(f"no group {grid!r} level {level!r} in the cube.")
        return _stamp(self.path / group_name(grid, level))

    def dataset(self, grid: str, level: int):
        """A group, loaded in memory."""
        return _load_group(str(self.path), grid, level, self.group_stamp(grid, level))

    def lookup(self, grid: str, level: int) -> PixelLookup:
        """The map pixels' cells of a group."""
        return _lookup(str(self.path), grid, level, self.group_stamp(grid, level))

    def layer_range(self, grid: str, level: int, year, layer: str) -> tuple[float, float]:
        """A layer's colour range over every cell of a group in a year (its 2nd to 98th
        percentile), computed once for every session: 0.03-0.06 s at 1.66M cells."""
        return _layer_range(str(self.path), grid, level, year, layer,
                            self.group_stamp(grid, level))

    def projection(self, grid: str, level: int, year, names: tuple):
        """Every cell of a group in the plane of the first two principal axes of its
        features ``names`` in a year (:func:`~.projection.principal_axes`; None with fewer
        than two features to make them of), computed once for every session: a few
        seconds at 1.66M cells."""
        return _projection(str(self.path), grid, level, year, tuple(names),
                           self.group_stamp(grid, level))

    def neighbours(self, grid: str, level: int) -> list[int]:
        """The levels of a grid next to ``level``: the finer one first, then the
        coarser one."""
        levels = self.levels(grid)
        if level not in levels:
            return []
        i = levels.index(level)
        return levels[i + 1:i + 2] + levels[max(i - 1, 0):i]

    def prefetch_levels(self, grid: str, level: int, view: tuple, year=None, layer=None,
                        delay=0.5):
        """Ready the neighbouring levels of a group in the background after ``delay``
        seconds (once the map is drawn), so that a first change of level is as quick as
        a change back: each one's group loaded (if it holds less than
        ``PREFETCH_BYTES``), its pixel lookup of the map's ``view`` (x_range, y_range,
        width, height) made, its run's model read and the colour range of ``layer`` in
        ``year`` computed. At H3 level 6 that is about 0.6 s of work the change would
        do. A session asking for any of it meanwhile waits for the prefetch's result
        (nothing is computed twice); a view prefetched once is not again while the
        groups and their current runs are those it was prefetched from (keyed by the
        groups' stamps, as the caches of their values are, and the runs' ids), of the
        last ``PREFETCHES_KEPT`` views."""
        others = self.neighbours(grid, level)
        if not others:
            return None
        # the groups' stamps and their current runs (a run trained since has another model)
        stamps = tuple((self.group_stamp(grid, lvl), self.run_store.current(get_grid(grid, lvl)))
                       for lvl in (level, *others))
        key = (grid, level, stamps, view, year, layer)
        with self._prefetch_lock:  # sessions draw at once
            if key in self._prefetched:
                self._prefetched.move_to_end(key)
                return None
            self._prefetched[key] = True
            while len(self._prefetched) > PREFETCHES_KEPT:
                self._prefetched.popitem(last=False)
        return in_background(delay, self._prefetch, (grid, level, view, year, layer))

    def _prefetch(self, grid, level, view, year, layer):
        for other in self.neighbours(grid, level):
            try:
                stamp = self.group_stamp(grid, other)
                if _group_bytes(str(self.path), grid, other, stamp) > PREFETCH_BYTES:
                    continue
                self.lookup(grid, other)(*view)
                runs = self.run_ids(grid, other)
                if runs:
                    self.model(runs[0])
                ds = self.dataset(grid, other)
                if layer is not None and (year is None or "year" not in ds.dims
                                          or year in ds.year.values):
                    self.layer_range(grid, other, year, layer)
            except Exception as err:  # noqa: BLE001 (ahead of need: a change of level
                # will say what is wrong, if anything is: a layer or year the other level
                # has not, a group being rewritten, a cube gone)
                log.debug("prefetch of %s level %s skipped: %s", grid, other, err)

    # -- model runs -------------------------------------------------------------------------

    def run_ids(self, grid: str, level: int) -> list[str]:
        """The runs of a group, newest first, the one its predictions come from (else the
        run store's current one) first."""
        ds = self.dataset(grid, level)
        found = self.run_store.ids(get_grid(grid, level))
        current = (ds[PROBA].attrs.get("run_id") if PROBA in ds else None) or \
            self.run_store.current(get_grid(grid, level))
        if current in found:
            found.remove(current)
            found.insert(0, current)
        self._listed.update(found)
        return found

    def current_models(self) -> dict:
        """The current run's model of every group that has one, by "grid level"."""
        out = {}
        for grid, level in self.groups:
            run = self.run_store.current(get_grid(grid, level))
            if run:
                out[f"{grid} {level}"] = self._model(run)
        return out

    def _checked(self, run) -> str:
        if run not in self._listed:  # never a name from a request unchecked
            raise KeyError(f"unknown model run {run!r}.")
        return run

    def _model(self, run):
        stamp = _stamp(self.run_store.path(run) / "model.json")
        return _load_model(str(self.run_store.root), run, stamp)

    def model(self, run: str):
        """The stored eSPA+ model of a run (arrays and JSON)."""
        return self._model(self._checked(run))

    def relevance(self, run: str) -> pd.DataFrame:
        """A run's relevance table (weights and permutation importance, mean and sd over
        folds); empty for runs stored without one."""
        stamp = _stamp(self.run_store.path(self._checked(run)) / "relevance.csv")
        return _relevance(str(self.run_store.root), run, stamp)

    def metrics(self, run: str) -> dict:
        """A run's out-of-fold metrics."""
        return self.run_store.metrics(self._checked(run))

    def evaluation(self, run: str) -> tuple[dict, dict]:
        """A run's measures beyond its folds (``entropice evaluate``): tables and info,
        empty if it was never evaluated."""
        return self.run_store.evaluation(self._checked(run))

    def figure(self, run: str, name: str):
        """The path of a run's evaluation figure ``name`` (one of
        :data:`entropice.runs.figures.FIGURES`), None if it was not drawn."""
        from ..runs.figures import FIGURES

        if name not in FIGURES:
            raise KeyError(f"unknown figure {name!r}; one of {FIGURES}.")
        path = self.run_store.path(self._checked(run)) / f"{name}.png"
        return path if path.exists() else None

    def cell_boxes(self, run: str, grid: str, level: int, year: int):
        """The box of every cell of a group in a year, under a run's model (computed once:
        a second caller waits for the first, a prefetch among them)."""
        return _cell_boxes(str(self.run_store.root), self._checked(run), str(self.path),
                           grid, level, year, self.group_stamp(grid, level))

    def prefetch_boxes(self, run: str, grid: str, level: int, year: int, delay=1.0):
        """Compute :meth:`cell_boxes` in the background after ``delay`` seconds (once the
        map is drawn), so that the first box highlighted is lit at once: at H3 level 6
        a run's boxes of 1.66M cells take about a second."""
        in_background(delay, self.cell_boxes, (run, grid, level, year))
