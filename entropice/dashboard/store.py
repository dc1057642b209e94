"""The dashboard's data store: the cube opened lazily, groups and models cached, and the
selection (grid, level, year, layer, model run, box, map extent) every view follows."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param

from ..cube import Cube, CubeError, group_name
from ..design import cell_features
from ..grids import get_grid
from ..runs import RunStore
from .lookup import PixelLookup

DEFAULT_CUBE = "data/cube.zarr"
SOURCES = {"darts": "Labels", "era5": "ERA5 climate", "arcticdem": "ArcticDEM terrain",
           "alphaearth": "AlphaEarth embeddings"}
LABEL_LAYERS = ["rts_density", "rts_count", "rts_class", "rts_area_km2"]
PRED_LAYERS = ["pred_class", "pred_entropy"]
CMAPS = ["viridis", "magma", "cividis", "plasma", "fire", "coolwarm", "RdBu_r", "gray"]


def cube_path(argv=None) -> Path:
    """The cube to show: ``--cube PATH`` in the server's ``--args``, else the
    ``ENTROPICE_CUBE`` environment variable, else ``data/cube.zarr``."""
    argv = sys.argv[1:] if argv is None else argv
    for i, a in enumerate(argv):
        if a == "--cube" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if a.startswith("--cube="):
            return Path(a.split("=", 1)[1])
    return Path(os.environ.get("ENTROPICE_CUBE", DEFAULT_CUBE))


@pn.cache(max_items=12)
def _load_group(path: str, grid: str, level: int, stamp: float):
    return Cube(path).read(grid, level).load()


@pn.cache(max_items=24)
def _load_model(root: str, run: str, stamp: float):
    return RunStore(root).load(run)


@pn.cache(max_items=24)
def _relevance(root: str, run: str, stamp: float):
    return RunStore(root).relevance(run)


@pn.cache(max_items=12)
def _lookup(path: str, grid: str, level: int, stamp: float):
    ds = _load_group(path, grid, level, stamp)
    return PixelLookup(grid, level, ds.cell_ids.values)


def _stamp(path: Path) -> float:
    """Changes when the directory's content is swapped (groups are replaced whole)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class CubeStore(pn.viewable.Viewer):
    """The cube and the current selection, shared by every view.

    Names coming from the URL are only ever matched against the lists read from the
    cube and the models directory, so no request can open another file.
    """

    grid = param.Selector(objects=[], doc="Discrete global grid.")
    level = param.Selector(objects=[], doc="Refinement level of the grid.")
    year = param.Selector(objects=[], doc="Label year of the year-dependent layers.")
    layer = param.Selector(objects=[], doc="The variable the map shows.")
    run = param.Selector(objects=[], doc="The model run whose boxes and metrics are shown.")
    box = param.Integer(default=-1, bounds=(-1, None), doc="Highlighted box (-1: none).")
    cmap = param.Selector(default="viridis", objects=CMAPS, doc="Colour map.")
    vmin = param.Number(default=None, allow_None=True, doc="Colour range low (auto if empty).")
    vmax = param.Number(default=None, allow_None=True, doc="Colour range high (auto if empty).")
    x0 = param.Number(default=None, allow_None=True, doc="Map extent, EPSG:3413 metres.")
    x1 = param.Number(default=None, allow_None=True)
    y0 = param.Number(default=None, allow_None=True)
    y1 = param.Number(default=None, allow_None=True)

    def __init__(self, path=None, models=None, **params):
        super().__init__(**params)
        self.path = Path(cube_path() if path is None else path)
        self.problem = None
        self.cube = None
        try:
            self.cube = Cube(self.path)
            groups = self.cube.groups()
        except (CubeError, OSError, ValueError) as err:
            groups = []
            self.problem = f"No Entropice cube could be opened at `{self.path}` ({err})."
        if self.cube is not None and not groups:
            self.problem = f"The cube at `{self.path}` has no grid groups yet."
        self.groups = groups
        attrs = dict(self.cube.attrs) if self.cube is not None else {}
        self.run_store = RunStore(models) if models else RunStore.of_cube(self.path, attrs)
        if not groups:
            return
        self.param.grid.objects = sorted({g for g, _ in groups})
        self.grid = self.param.grid.objects[0]
        self._on_grid()

    # -- the selection's dependencies -------------------------------------------------------

    @param.depends("grid", watch=True)
    def _on_grid(self):
        levels = sorted(lvl for g, lvl in self.groups if g == self.grid)
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
        layers = [n for names in self.layer_groups().values() for n in names.values()]
        self.param.layer.objects = layers
        runs = self.runs()
        self.param.run.objects = runs
        with param.parameterized.batch_call_watchers(self):
            if self.run not in runs:
                self.run = runs[0] if runs else None
            if self.layer not in layers:
                self.layer = self.default_layer(layers)
            self.box = -1

    @staticmethod
    def default_layer(layers):
        for name in ("pred_proba:1", "rts_density"):
            if name in layers:
                return name
        return layers[0]

    # -- data -------------------------------------------------------------------------------

    @property
    def dataset(self):
        """The current group, loaded in memory (cached per grid and level)."""
        return _load_group(str(self.path), self.grid, self.level,
                           self._group_stamp)

    @property
    def lookup(self) -> PixelLookup:
        return _lookup(str(self.path), self.grid, self.level,
                       self._group_stamp)

    @property
    def _group_stamp(self):
        return _stamp(self.path / group_name(self.grid, self.level))

    def format_id(self, cell) -> str:
        """A cell id of the current grid as people write it."""
        return get_grid(self.grid, self.level).format_id(cell)

    def layer_groups(self) -> dict[str, dict[str, str]]:
        """Layers by source, each a {label: name} mapping for the layer menu."""
        ds = self.dataset
        out: dict[str, dict[str, str]] = {}
        if self.has_predictions:
            pred = {"predicted class": "pred_class", "prediction entropy": "pred_entropy"}
            meanings = ds.pred_class.attrs.get("flag_meanings", "").split()
            for i, c in enumerate(ds["class"].values):
                name = meanings[i] if i < len(meanings) else str(c)
                pred[f"P({name})"] = f"pred_proba:{int(c)}"
            out["Predictions"] = pred
        for var in LABEL_LAYERS:
            if var in ds:
                out.setdefault("Labels", {})[var] = var
        for var in sorted(ds.data_vars):
            src = SOURCES.get(ds[var].attrs.get("source"))
            if src and src != "Labels":
                out.setdefault(src, {})[var] = var
        out["Cells"] = {v: v for v in ("land_fraction", "area_km2") if v in ds}
        return out

    @property
    def has_predictions(self) -> bool:
        return "pred_proba" in self.dataset

    def values(self, layer=None, year=None) -> np.ndarray:
        """The layer's value in every cell of the group (float, NaN where missing)."""
        layer = layer or self.layer
        year = self.year if year is None else year
        ds = self.dataset
        name, _, cls = layer.partition(":")
        if name not in ds:
            raise KeyError(f"the group {self.grid}/{self.level} has no variable {name!r}.")
        da = ds[name]
        if cls:
            da = da.sel({"class": int(cls)})
        if "year" in da.dims:
            da = da.sel(year=year)
        return np.asarray(da.values, dtype=np.float64)

    def describe(self, layer=None) -> tuple[str, str]:
        """(long name, units) of a layer."""
        layer = layer or self.layer
        name, _, cls = layer.partition(":")
        attrs = self.dataset[name].attrs
        long = attrs.get("long_name", name)
        if cls:
            labels = {v: k for k, v in self.layer_groups().get("Predictions", {}).items()}
            long = f"predicted probability, {labels.get(layer, cls)}"
        units = attrs.get("units", "")
        return long, "" if units == "1" else units

    # -- model runs -------------------------------------------------------------------------

    def runs(self) -> list[str]:
        """Runs of the current grid and level, newest first, the one the cube's
        predictions come from (else the store's current one) first."""
        grid = get_grid(self.grid, self.level)
        found = self.run_store.ids(grid)
        ds = self.dataset
        current = (ds.pred_proba.attrs.get("run_id") if "pred_proba" in ds else None) or \
            self.run_store.current(grid)
        if current in found:
            found.remove(current)
            found.insert(0, current)
        return found

    def current_models(self) -> dict:
        """The current run's model of every group that has one, by "grid level"."""
        out = {}
        for grid, level in self.groups:
            run = self.run_store.current(get_grid(grid, level))
            if run:
                out[f"{grid} {level}"] = self._model(run)
        return out

    def _checked(self, run=None) -> str:
        run = run or self.run
        if run not in self.param.run.objects:  # never a name from a request unchecked
            raise KeyError(f"unknown model run {run!r}.")
        return run

    def _model(self, run):
        stamp = _stamp(self.run_store.path(run) / "model.json")
        return _load_model(str(self.run_store.root), run, stamp)

    def model(self, run=None):
        """The stored eSPA+ model of a run (arrays and JSON, cached)."""
        return self._model(self._checked(run))

    def relevance(self, run=None) -> pd.DataFrame:
        """A run's relevance table (weights and permutation importance, mean and sd over
        folds); empty for runs stored without one."""
        run = self._checked(run)
        stamp = _stamp(self.run_store.path(run) / "relevance.csv")
        return _relevance(str(self.run_store.root), run, stamp)

    def metrics(self, run=None) -> dict:
        return self.run_store.metrics(self._checked(run))

    def cell_boxes(self, run=None, year=None) -> np.ndarray:
        """The box of every cell of the group in a year, under a run's model."""
        return _cell_boxes(str(self.run_store.root), self._checked(run), str(self.path), self.grid,
                           self.level, self.year if year is None else year,
                           self._group_stamp)

    def __panel__(self):
        return pn.Param(self, parameters=["grid", "level", "year", "run"], show_name=False)


@pn.cache(max_items=16)
def _cell_boxes(root: str, run: str, path: str, grid: str, level: int, year: int,
                stamp: float):
    model = _load_model(root, run, _stamp(RunStore(root).path(run) / "model.json"))
    ds = _load_group(path, grid, level, stamp)
    return model.apply(cell_features(ds, model.meta["feature_names"], year).to_numpy())
