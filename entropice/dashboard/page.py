"""The page: the sidebar's selection, the views in tabs and the selection in the URL.
``build`` makes it for a cube; ``cube_path`` reads which cube a served page shows;
``refusal`` says why a request from another machine is not served."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import holoviews as hv
import panel as pn
import param
from panel.io.location import Location

from .boxes_view import BoxesView
from .compare_view import CompareView
from .data_view import DataView
from .downloads import Downloads
from .evaluation_view import EvaluationView
from .layers import layer_menu
from .link import RIGHT, RIGHT_STATE, TAKES, URL_STATE, apply_query, url_value
from .map_view import MapView
from .relevance_view import RelevanceView
from .selection import TABS, Selection
from .space_view import SpaceView
from .store import CubeStore

TITLE = "Entropice: where are Retrogressive Thaw Slumps dense?"
DEFAULT_CUBE = "data/cube.zarr"
ALLOW_REMOTE = "ENTROPICE_ALLOW_REMOTE"
"""Set to 1, with a login (Panel's --basic-auth or --oauth-provider), to serve other
machines: without both, the page answers this machine only."""
log = logging.getLogger(__name__)


def is_loopback(ip) -> bool:
    """Whether a client address is this machine's: 127.0.0.0/8 or ::1 (also written as
    ::ffff:127.x.x.x)."""
    try:
        address = ipaddress.ip_address(str(ip).split("%")[0])
    except ValueError:
        return False
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def refusal(request) -> str | None:
    """Why the dashboard does not serve ``request`` (None: it does). A server listens on
    every interface unless told otherwise (``panel serve``'s default), and the page
    holds the cube and its runs: it serves a client at a loopback address only, unless
    $ENTROPICE_ALLOW_REMOTE is 1 and the server asks for a login. No request (not
    served, e.g. in a notebook) is no client to refuse."""
    if request is None:
        return None
    ip = getattr(request, "remote_ip", None)
    if is_loopback(ip):
        return None
    if os.environ.get(ALLOW_REMOTE) != "1":
        why = (f"a request from {ip} refused: this dashboard serves this machine only "
               f"(set {ALLOW_REMOTE}=1 and a login to serve others, see the README)")
    elif not (pn.config.basic_auth or pn.config.oauth_provider):
        why = (f"a request from {ip} refused: {ALLOW_REMOTE}=1 serves other machines only "
               "behind a login (panel serve's --basic-auth or --oauth-provider)")
    else:
        return None
    log.warning(why)
    return why


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


def link_query(search: str) -> dict:
    """A URL's query as its text, entry by entry, blank ones too (Panel's ``query_params``
    parses numbers and JSON, and drops what it cannot parse before the page sees it)."""
    return dict(parse_qsl(search.removeprefix("?"), keep_blank_values=True))


def deferred(view) -> pn.param.ParamFunction:
    """A tab's content made when the tab is first shown: the tabs ask every view for
    its panel as the page is made, and the views not shown (the boxes' heat map, every
    run's weights, the evaluation's tables, a feature's violins over every labelled
    cell) would each be computed for every new page."""
    return pn.param.ParamFunction(lambda: view, lazy=True)


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
        self.tabs = pn.Tabs(*zip(TABS, map(deferred, views)), dynamic=True,
                            active=TABS.index(s.tab))
        # the tab shown is the selection's, so a link reopens it and a view can turn to
        # another (a feature's bar to the map)
        self.tabs.param.watch(lambda e: setattr(s, "tab", TABS[e.new]), "active")
        s.param.watch(lambda e: setattr(self.tabs, "active", TABS.index(e.new)), "tab")
        self.notice = pn.pane.Alert(alert_type="warning", visible=False,
                                    css_classes=["link-notice"])

    def follow_link(self, query: dict) -> dict:
        """Set the selection and the Compare tab's right map from a link's query; return
        the entries kept. An entry not taken is left out and named in a notice on the
        page, with what it takes (never its value: the page does not echo a link)."""
        kept = apply_query(self.selection, query) | self.compare.follow_link(query)
        ours = URL_STATE + [RIGHT + n for n in RIGHT_STATE]
        left_out = {}  # what an entry takes: the entries left out that take it
        for k in ours:
            if k in query and k not in kept:
                left_out.setdefault(TAKES[k.removeprefix(RIGHT)], []).append(f"`{k}`")
        self.notice.object = "Part of this link could not be used and was left out; the " \
            "rest of it applies.\n\n" + "\n".join(
                f"- {', '.join(keys)}: {takes}" for takes, keys in left_out.items())
        self.notice.visible = bool(left_out)
        return kept

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

    def sidebar(self) -> pn.Column:
        """The selection's widgets, the note on a group without predictions, downloads:
        one column, so that the page's document gets one root for them all (each root
        added has Bokeh walk every model of the document again)."""
        s = self.selection
        note = pn.pane.Alert(
            "This grid and level has no predictions yet: run `entropice predict` to map "
            "predicted RTS density.", alert_type="info", width=280,
            visible=pn.bind(lambda *_: not s.has_predictions, s.param.grid, s.param.level))
        return pn.Column(
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
            pn.pane.Markdown(f"Cube: `{s.store.path}`", styles={"font-size": "0.8em"}))

    def link_url(self, loc: Location):
        """Keep the selection in ``loc``'s query and take what the browser sends there
        (its own URL, as it connects) only as a link is taken: checked by ``apply_query``.
        (Panel's ``Location.sync`` would set the selection from the URL unchecked, and
        write the brush back as a Python list when another entry changes.)"""
        s = self.selection
        writing = False

        def to_url(*_):
            nonlocal writing
            query = {n: url_value(getattr(s, n)) for n in URL_STATE}
            other = self.compare.other
            if self.compare.in_url and other is not None:
                query |= {RIGHT + n: url_value(getattr(other, n)) for n in RIGHT_STATE}
            writing = True
            try:
                loc.search = "?" + urlencode({k: v for k, v in query.items() if v is not None})
            finally:
                writing = False

        def from_url(_):
            if not writing:
                apply_query(s, link_query(loc.search))
                to_url()  # a value refused goes back to the selection's in the URL

        to_url()
        s.param.watch(to_url, URL_STATE)
        loc.param.watch(from_url, "search")

    def _sync_url(self):
        """Keep the selection in the URL, starting from the link's."""
        loc = pn.state.location
        if loc is None:
            return
        self.follow_link(link_query(loc.search))
        self.link_url(loc)
        # the right map joins the URL once the page is up (its sync reads the URL)
        pn.state.onload(lambda: setattr(self.compare, "in_url", True))

    def page(self) -> pn.template.BootstrapTemplate:
        """The servable page."""
        sidebar = self.sidebar()
        self._sync_url()
        # Bootstrap, not Fast: Fast fetches a web font, and the page must work offline
        return pn.template.BootstrapTemplate(title=TITLE, sidebar=[sidebar],
                                             main=[self.notice, self], sidebar_width=320)

    def __panel__(self):
        return self.tabs


def missing_cube_page(store: CubeStore) -> pn.template.BootstrapTemplate:
    """The page shown when there is no cube to show: how to make one."""
    return pn.template.BootstrapTemplate(title=TITLE, main=[pn.pane.Alert(
        f"{store.problem}\n\nBuild the demo cube first (no download needed, about five "
        "minutes):\n\n    entropice demo\n\nthen serve this page again, or point it at "
        "your cube with `panel serve app/ --args --cube PATH` (or ENTROPICE_CUBE=PATH).",
        alert_type="danger")])


def refused_page() -> pn.template.BootstrapTemplate:
    """The page a client from another machine gets, with nothing of the cube in it."""
    return pn.template.BootstrapTemplate(title=TITLE, main=[pn.pane.Alert(
        "This dashboard is served to the machine it runs on only.", alert_type="danger")])


def build(path, models=None) -> pn.template.BootstrapTemplate:
    """The dashboard of the cube at ``path`` as a servable page (runs in ``models``,
    default: where the cube says), or a page saying how to make a cube if there is none;
    a session from another machine gets neither (``refusal``), however it is served."""
    context = pn.state.curdoc.session_context if pn.state.curdoc else None
    if refusal(context.request if context else None):
        return refused_page()
    hv.extension("bokeh")
    store = CubeStore(path, models)
    if store.problem:
        return missing_cube_page(store)
    return App(selection=Selection(store=store)).page()
