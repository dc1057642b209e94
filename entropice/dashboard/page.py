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
from .compare_view import CompareView
from .data_view import DataView
from .downloads import Downloads
from .evaluation_view import EvaluationView
from .layers import layer_menu
from .link import URL_STATE, apply_query
from .map_view import MapView
from .relevance_view import RelevanceView
from .selection import TABS, Selection
from .space_view import SpaceView
from .store import CubeStore

TITLE = "Entropice: where are Retrogressive Thaw Slumps dense?"
DEFAULT_CUBE = "data/cube.zarr"


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


class App(pn.viewable.Viewer):
    """One session's dashboard: the views of its selection in tabs, the selection's
    widgets in the sidebar."""

    selection = param.ClassSelector(class_=Selection, doc="The session's selection.")

    def __init__(self, **params):
        super().__init__(**params)
        s = self.selection
        self.boxes = BoxesView(selection=s)
        self.compare = CompareView(selection=s)
        views = [MapView(selection=s), self.compare, self.boxes.plots,
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
        query = dict(loc.query_params)
        kept = apply_query(self.selection, query)
        kept |= self.compare.follow_link(query)
        search = "?" + urlencode(kept) if kept else ""
        loc.search = search
        loc.sync(self.selection, {n: n for n in URL_STATE})

        # the browser sends its own URL when it connects: write the checked one once the
        # page is up, so that a value refused never comes back with the next change
        def loaded():
            loc.search = search
            self.compare.in_url = True

        pn.state.onload(loaded)

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
