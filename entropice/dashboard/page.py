"""The page: the sidebar's selection, the views in tabs and the selection in the URL.
``build`` makes it for a cube; ``cube_path`` reads which cube a served page shows."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from urllib.parse import urlencode

import holoviews as hv
import panel as pn
import param

from .boxes_view import BoxesView
from .compare_view import CompareView
from .data_view import DataView
from .downloads import Downloads
from .evaluation_view import EvaluationView
from .layers import layer_menu
from .map_view import MapView
from .relevance_view import RelevanceView
from .selection import TABS, Selection
from .space_view import SpaceView
from .store import CubeStore

TITLE = "Entropice: where are Retrogressive Thaw Slumps dense?"
DEFAULT_CUBE = "data/cube.zarr"
URL_STATE = ["grid", "level", "year", "layer", "run", "box", "x0", "x1", "y0", "y1", "cmap",
             "vmin", "vmax", "fit", "scale", "tab"]
"""The selection a link holds, in the order it is applied: the grid decides the levels,
the level the years, layers and runs."""
EXTENT = ("x0", "x1", "y0", "y1")
MAX_EXTENT = 2.0e7
"""Largest map coordinate a link may ask for, in metres (the Earth fits in 1.3e7)."""


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


def _parse(p: param.Parameter, raw):
    """A link's value for the parameter ``p``; ValueError unless it is one ``p`` takes:
    one of a selector's choices, true or false, a finite number (whole for integers)."""
    if isinstance(p, param.Selector):
        for o in p.objects:
            if str(o) == str(raw):
                return o
        raise ValueError(f"not one of {p.name}'s choices")
    if isinstance(p, param.Boolean):
        text = str(raw).lower()
        if text not in ("true", "false"):
            raise ValueError(f"{p.name} is true or false")
        return text == "true"
    number = float(raw)
    if not math.isfinite(number):
        raise ValueError(f"{p.name} must be finite")
    if isinstance(p, param.Integer):
        if number != int(number):
            raise ValueError(f"{p.name} must be whole")
        return int(number)
    return number


def apply_query(selection: Selection, query: dict) -> dict:
    """Set the selection from a link's query; return the entries kept. Each value is
    checked against what the parameter takes (the cube's and the run store's lists for
    names, finite numbers, a box of the run, an extent of positive size): a value not
    taken is dropped, never used to open a file."""
    kept = {}
    extent = {}
    for name in URL_STATE:
        if name not in query:
            continue
        try:
            value = _parse(selection.param[name], query[name])
            if name in EXTENT:
                if abs(value) > MAX_EXTENT:
                    raise ValueError("outside the Earth")
                extent[name] = value
                continue
            if name == "box" and value >= selection.n_boxes:
                raise ValueError("no such box")
            setattr(selection, name, value)
            kept[name] = str(value).lower() if isinstance(value, bool) else query[name]
        except (ValueError, TypeError, OverflowError):
            continue
    if selection.vmin is not None and selection.vmax is not None and \
            selection.vmin >= selection.vmax:
        selection.param.update(vmin=None, vmax=None)
        kept.pop("vmin", None), kept.pop("vmax", None)
    if len(extent) == 4 and extent["x1"] - extent["x0"] >= 1.0 and \
            extent["y1"] - extent["y0"] >= 1.0:
        selection.param.update(**extent)
        kept.update({k: query[k] for k in EXTENT})
    return kept


class App(pn.viewable.Viewer):
    """One session's dashboard: the views of its selection in tabs, the selection's
    widgets in the sidebar."""

    selection = param.ClassSelector(class_=Selection, doc="The session's selection.")

    def __init__(self, **params):
        super().__init__(**params)
        s = self.selection
        self.boxes = BoxesView(selection=s)
        views = [MapView(selection=s), CompareView(selection=s), self.boxes.plots,
                 SpaceView(selection=s),
                 RelevanceView(selection=s), EvaluationView(selection=s),
                 DataView(selection=s)]
        self.tabs = pn.Tabs(*zip(TABS, views), dynamic=True, active=TABS.index(s.tab))
        # the tab shown is the selection's, so a link reopens it and a view can turn to
        # another (a feature's bar to the map)
        self.tabs.param.watch(lambda e: setattr(s, "tab", TABS[e.new]), "active")
        s.param.watch(lambda e: setattr(self.tabs, "active", TABS.index(e.new)), "tab")

    def _layer_select(self) -> pn.widgets.Select:
        """The layer menu, grouped by source (which ``from_param`` cannot give) and kept
        in step with the selection: its groups change with the grid and level."""
        s = self.selection
        w = pn.widgets.Select(label="Layer", width=280)

        def refresh(*_):
            w.groups = layer_menu(s.dataset)
            w.value = s.layer

        def push(event):
            if event.new is not None and event.new != s.layer:
                s.layer = event.new

        refresh()
        s.param.watch(refresh, ["grid", "level", "layer"])
        w.param.watch(push, "value")
        return w

    def sidebar(self) -> list:
        """The selection's widgets, the note on a group without predictions, downloads."""
        s = self.selection
        note = pn.pane.Alert(
            "This grid and level has no predictions yet: run `entropice predict` to map "
            "predicted RTS density.", alert_type="info", width=280,
            visible=pn.bind(lambda *_: not s.has_predictions, s.param.grid, s.param.level))
        return [
            pn.widgets.RadioButtonGroup.from_param(s.param.grid, label="Grid"),
            pn.widgets.Select.from_param(s.param.level, label="Level"),
            pn.widgets.Select.from_param(s.param.year, label="Year"),
            self._layer_select(), note,
            pn.widgets.Select.from_param(s.param.run, label="Model run"),
            self.boxes.box_select,
            pn.widgets.Select.from_param(s.param.cmap, label="Colour map"),
            pn.Row(pn.widgets.FloatInput.from_param(s.param.vmin, label="min", width=130),
                   pn.widgets.FloatInput.from_param(s.param.vmax, label="max", width=130)),
            pn.Row(pn.widgets.Checkbox.from_param(s.param.fit, name="fit to the view",
                                                  width=130),
                   pn.widgets.RadioButtonGroup.from_param(s.param.scale, width=130)),
            pn.pane.Markdown("**Download the cells in view**"), Downloads(selection=s),
            pn.pane.Markdown(f"Cube: `{s.store.path}`", styles={"font-size": "0.8em"}),
        ]

    def _sync_url(self):
        """Keep the selection in the URL, starting from the link's."""
        loc = pn.state.location
        if loc is None:
            return
        kept = apply_query(self.selection, dict(loc.query_params))
        search = "?" + urlencode(kept) if kept else ""
        loc.search = search
        loc.sync(self.selection, {n: n for n in URL_STATE})
        # the browser sends its own URL when it connects: write the checked one once the
        # page is up, so that a value refused never comes back with the next change
        pn.state.onload(lambda: setattr(loc, "search", search))

    def page(self) -> pn.template.BootstrapTemplate:
        """The servable page."""
        sidebar = self.sidebar()
        self._sync_url()
        # Bootstrap, not Fast: Fast fetches a web font, and the page must work offline
        return pn.template.BootstrapTemplate(title=TITLE, sidebar=sidebar, main=[self],
                                             sidebar_width=320)

    def __panel__(self):
        return self.tabs


def missing_cube_page(store: CubeStore) -> pn.template.BootstrapTemplate:
    """The page shown when there is no cube to show: how to make one."""
    return pn.template.BootstrapTemplate(title=TITLE, main=[pn.pane.Alert(
        f"{store.problem}\n\nBuild the demo cube first (no download needed, about five "
        "minutes):\n\n    entropice demo\n\nthen serve this page again, or point it at "
        "your cube with `panel serve app/ --args --cube PATH` (or ENTROPICE_CUBE=PATH).",
        alert_type="danger")])


def build(path, models=None) -> pn.template.BootstrapTemplate:
    """The dashboard of the cube at ``path`` as a servable page (runs in ``models``,
    default: where the cube says), or a page saying how to make a cube if there is none."""
    hv.extension("bokeh")
    store = CubeStore(path, models)
    if store.problem:
        return missing_cube_page(store)
    return App(selection=Selection(store=store)).page()
