"""The page: the sidebar's selection, the views in tabs and the selection in the URL.
``build`` makes it for a cube; ``cube_path`` reads which cube a served page shows."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlencode

import holoviews as hv
import panel as pn
import param

from .boxes_view import BoxesView
from .data_view import DataView
from .downloads import Downloads
from .evaluation_view import EvaluationView
from .layers import layer_menu
from .map_view import MapView
from .relevance_view import RelevanceView
from .selection import Selection
from .store import CubeStore

TITLE = "Entropice: where are Retrogressive Thaw Slumps dense?"
DEFAULT_CUBE = "data/cube.zarr"
URL_STATE = ["grid", "level", "year", "layer", "run", "box", "x0", "x1", "y0", "y1"]
"""The selection a link holds, in the order it is applied: the grid decides the levels,
the level the years, layers and runs."""


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


def apply_query(selection: Selection, query: dict) -> dict:
    """Set the selection from a link's query; return the entries kept. Each value is
    matched against the choices the cube and the run store offer: one not offered is
    dropped, never used to open a file."""
    kept = {}
    for name in URL_STATE:
        if name not in query:
            continue
        p = selection.param[name]
        try:
            if isinstance(p, param.Selector):
                value = next(o for o in p.objects if str(o) == str(query[name]))
            else:
                number = float(query[name])
                value = int(number) if isinstance(p, param.Integer) else number
            setattr(selection, name, value)
            kept[name] = query[name]
        except (StopIteration, ValueError, TypeError):
            continue
    return kept


class App(pn.viewable.Viewer):
    """One session's dashboard: the views of its selection in tabs, the selection's
    widgets in the sidebar."""

    selection = param.ClassSelector(class_=Selection, doc="The session's selection.")

    def __init__(self, **params):
        super().__init__(**params)
        s = self.selection
        self.boxes = BoxesView(selection=s)
        self.tabs = pn.Tabs(("Map", MapView(selection=s)), ("Boxes", self.boxes.plots),
                            ("Feature relevance", RelevanceView(selection=s)),
                            ("Evaluation", EvaluationView(selection=s)),
                            ("Data", DataView(selection=s)), dynamic=True)

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
            pn.pane.Markdown("**Download the layer**"), Downloads(selection=s),
            pn.pane.Markdown(f"Cube: `{s.store.path}`", styles={"font-size": "0.8em"}),
        ]

    def _sync_url(self):
        """Keep the selection in the URL, starting from the link's."""
        loc = pn.state.location
        if loc is None:
            return
        kept = apply_query(self.selection, dict(loc.query_params))
        loc.search = "?" + urlencode(kept) if kept else ""
        loc.sync(self.selection, {n: n for n in URL_STATE})

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
