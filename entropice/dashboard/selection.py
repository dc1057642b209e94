"""What a session looks at: grid, level, year, layer, model run, box, brush, colours and
the map's extent, as parameters the views follow. Their choices come from the data store.
A brush's plane is two layers or the first two principal axes of the features
(``PC1``, ``PC2``), whose values the selection reads like a layer's."""

from __future__ import annotations

import json
import math

import numpy as np
import param

from ..grids import Grid, get_grid
from . import layers
from .lookup import PixelLookup
from .projection import PC_NAMES, Projection
from .store import CubeStore

CMAPS = ["viridis", "magma", "cividis", "plasma", "fire", "coolwarm", "RdBu_r", "gray"]
TABS = ["Map", "Compare", "Boxes", "Feature space", "Feature relevance", "Evaluation",
        "Data"]
"""The page's tabs, in order."""


class Brush(param.Tuple):
    """(feature across, feature up, x0, x1, y0, y1) of a rectangle brushed in the feature
    space (the features ``PC1`` and ``PC2`` in the plane of the principal axes), read
    back from a link's JSON list. Only two names and four finite, ordered
    numbers are taken, whoever sets it (the URL's sync sets it unchecked by the page)."""

    @classmethod
    def deserialize(cls, value):
        if isinstance(value, str):
            value = json.loads(value)
        return None if value is None else tuple(value)

    def _validate_value(self, value, allow_None):
        super()._validate_value(value, allow_None)
        problem = None if value is None else brush_problem(value)
        if problem:
            raise ValueError(problem)


def brush_problem(value: tuple) -> str | None:
    """What is wrong with a brush (None if nothing): it is two names and four finite
    numbers, x0 <= x1 and y0 <= y1."""
    numbers = value[2:]
    if len(value) != 6 or not all(isinstance(n, str) for n in value[:2]) or not all(
            map(_finite, numbers)):
        return "a brush is two layer names and four finite numbers"
    if numbers[0] > numbers[1] or numbers[2] > numbers[3]:
        return "a brush's bounds are in order (x0 <= x1, y0 <= y1)"
    return None


def _finite(v) -> bool:
    """Whether ``v`` is a finite number a float holds (not a bool, not a huge integer)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


class Selection(param.Parameterized):
    """The selection of one session, shared by its views.

    Grid, level, year, layer and run take only values the store lists (``check_on_set``),
    so a name that came with a request is matched against the cube's and the run store's
    lists, never used as a path. A choice made keeps the others valid: a grid brings its
    levels, a level its years, layers and runs.
    """

    store = param.ClassSelector(class_=CubeStore, constant=True, doc="The cube and its runs.")
    grid = param.Selector(objects=[], check_on_set=True, doc="Discrete global grid.")
    level = param.Selector(objects=[], check_on_set=True, doc="Refinement level of the grid.")
    year = param.Selector(objects=[], check_on_set=True,
                          doc="Label year of the year-dependent layers.")
    layer = param.Selector(objects=[], check_on_set=True, doc="The variable the map shows.")
    run = param.Selector(objects=[], check_on_set=True, allow_None=True,
                         doc="The model run whose boxes and metrics are shown.")
    box = param.Integer(default=-1, bounds=(-1, None), doc="Highlighted box (-1: none).")
    brush = Brush(default=None, allow_None=True, length=6,
                        doc="Cells brushed in the feature space, highlighted on the map: "
                            "(feature across, feature up, x0, x1, y0, y1); the features "
                            "PC1 and PC2 are the principal axes.")
    cmap = param.Selector(default="viridis", objects=CMAPS, doc="Colour map.")
    vmin = param.Number(default=None, allow_None=True, doc="Colour range low (auto if empty).")
    vmax = param.Number(default=None, allow_None=True, doc="Colour range high (auto if empty).")
    fit = param.Boolean(default=False, doc="Automatic colour range from the cells in view "
                        "(else from every cell of the group).")
    scale = param.Selector(default="linear", objects=["linear", "log"],
                           doc="Colour scale (log: positive values only).")
    tab = param.Selector(default=TABS[0], objects=TABS, doc="The tab shown.")
    x0 = param.Number(default=None, allow_None=True, doc="Map extent, EPSG:3413 metres.")
    x1 = param.Number(default=None, allow_None=True)
    y0 = param.Number(default=None, allow_None=True)
    y1 = param.Number(default=None, allow_None=True)

    def __init__(self, **params):
        super().__init__(**params)
        grids = self.store.grids()
        if not grids:
            return
        self.param.grid.objects = grids
        self.grid = grids[0]
        self._on_grid()

    @param.depends("grid", watch=True)
    def _on_grid(self):
        levels = self.store.levels(self.grid)
        self.param.level.objects = levels
        if self.level not in levels:
            self.level = levels[len(levels) // 2]
        else:
            self._on_level()

    @param.depends("level", watch=True)
    def _on_level(self):
        ds = self.dataset
        years = [int(y) for y in ds.year.values] if "year" in ds.dims else [0]
        self.param.year.objects = years
        if self.year not in years:
            self.year = years[-1]
        names = layers.layer_names(ds)
        self.param.layer.objects = names
        runs = self.store.run_ids(self.grid, self.level)
        self.param.run.objects = runs
        with param.parameterized.batch_call_watchers(self):
            if self.run not in runs:
                self.run = runs[0] if runs else None
            if self.layer not in names:
                self.layer = layers.default_layer(names)
            self.box = -1
            self.brush = None

    @param.depends("year", "run", watch=True)
    def _on_axes(self):
        """A brush in the plane of the principal axes goes with the year or run they were
        made of (another year's or run's axes are other axes)."""
        if self.brush and tuple(self.brush[:2]) == PC_NAMES:
            self.brush = None

    # -- what is selected -----------------------------------------------------------------

    @property
    def dataset(self):
        """The selected group, in memory."""
        return self.store.dataset(self.grid, self.level)

    @property
    def lookup(self) -> PixelLookup:
        """The map pixels' cells of the selected group."""
        return self.store.lookup(self.grid, self.level)

    @property
    def grid_system(self) -> Grid:
        """The selected grid at the selected level (cell ids, their text, polygons)."""
        return get_grid(self.grid, self.level)

    @property
    def has_predictions(self) -> bool:
        """Whether the selected group holds a model's predictions."""
        return layers.has_predictions(self.dataset)

    @property
    def n_boxes(self) -> int:
        """The number of boxes of the selected run's model (0 without a run)."""
        return len(self.store.model(self.run).estimator.boxes_) if self.run else 0

    def brushed(self, year=None) -> np.ndarray:
        """Which cells of the group the brush holds in a year (default: the selected
        one); none without a brush."""
        n = len(self.dataset.cell_ids)
        b = self.brush
        if not b or not ({b[0], b[1]} <= set(self.param.layer.objects)
                         or tuple(b[:2]) == PC_NAMES):
            return np.zeros(n, dtype=bool)
        x, y = self.values(b[0], year), self.values(b[1], year)
        return (x >= b[2]) & (x <= b[3]) & (y >= b[4]) & (y <= b[5])

    def values(self, layer=None, year=None) -> np.ndarray:
        """A layer's (default: the selected one's) value in every cell of the group in a
        year (default: the selected one); ``PC1`` and ``PC2``, each cell's coordinate on
        the principal axes of the year (:meth:`projection`; NaN where there are none)."""
        year = self.year if year is None else year
        if layer in PC_NAMES:
            p = self.projection(year)
            if p is None:
                return np.full(len(self.dataset.cell_ids), np.nan)
            return p.coords[:, PC_NAMES.index(layer)]
        return layers.values(self.dataset, layer or self.layer, year)

    def describe(self, layer=None) -> tuple[str, str]:
        """(long name, units) of a layer (default: the selected one) or principal axis."""
        if layer in PC_NAMES:
            return f"principal axis {PC_NAMES.index(layer) + 1}", ""
        return layers.describe(self.dataset, layer or self.layer)

    def axes_features(self) -> list[str]:
        """The features the principal axes are made of: the selected run's weighted ones
        (those the model's boxes are placed by), else every feature of the group."""
        names = layers.feature_names(self.dataset)
        if self.run:
            model = self.store.model(self.run)
            meta = model.meta["feature_names"]
            weighted = {str(meta[j]).removesuffix("_missing") for j in
                        np.flatnonzero(model.estimator.weighted_features_)}
            names = [f for f in names if f in weighted]
        return names

    def projection(self, year=None) -> Projection | None:
        """Every cell of the group in the plane of the first two principal axes of
        :meth:`axes_features` in a year (default: the selected one), standardised, missing
        values at their medians; None with fewer than two features. Computed once per
        grid, level, year and run (the store keeps it for every session)."""
        return self.store.projection(self.grid, self.level,
                                     self.year if year is None else year,
                                     tuple(self.axes_features()))

    def cell_boxes(self, year=None) -> np.ndarray:
        """The box of every cell of the group in a year under the selected run's model."""
        return self.store.cell_boxes(self.run, self.grid, self.level,
                                     self.year if year is None else year)
