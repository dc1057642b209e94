"""Two maps side by side, their extents linked: two levels of a grid, H3 beside
HEALPix, two years or two layers. The left map is the session's selection, the right
one a second selection of the same cube."""

from __future__ import annotations

import panel as pn
import param

from .link import RIGHT, RIGHT_STATE, apply_query
from .map_view import MapView
from .selection import Selection
from .view import View

SIZE = 430  # each map's side, in pixels: two fit beside the sidebar at 1280 wide
EXTENT = ("x0", "x1", "y0", "y1")


class CompareView(View):
    """The selection's map beside a second selection's, zoomed and panned together."""

    other = param.ClassSelector(class_=Selection, doc="The right map's selection.")

    in_url = param.Boolean(default=False, doc="Keep the right map's choice in the page's "
                           "URL (as right_grid, right_level, right_year, right_layer): set "
                           "once the page has written the link's checked entries.")

    def __init__(self, **params):
        super().__init__(**params)
        self.left = self.right = None
        self._synced = False

    def _other(self) -> Selection:
        """The right map's selection, made on first need (its group is loaded then, not
        with every page): H3 beside HEALPix when the cube has both, else the next level,
        in the same year."""
        s = self.selection
        if self.other is None:
            other = Selection(store=s.store)
            grids = s.param.grid.objects
            if len(grids) > 1:
                other.grid = next(g for g in grids if g != s.grid)
            else:
                levels = other.param.level.objects
                other.level = levels[min(levels.index(s.level) + 1, len(levels) - 1)]
            if s.year in other.param.year.objects:
                other.year = s.year
            self.other = other
        return self.other

    def follow_link(self, query: dict) -> dict:
        """Set the right map from a link's ``right_*`` entries; return those kept."""
        right = {k.removeprefix(RIGHT): v for k, v in query.items()
                 if k.startswith(RIGHT) and k.removeprefix(RIGHT) in RIGHT_STATE}
        if not right:
            return {}
        return {RIGHT + k: v for k, v in apply_query(self._other(), right).items()}

    @param.depends("in_url", watch=True)
    def _sync_url(self):
        """Keep the right map's choice in the URL, once both exist."""
        loc = pn.state.location
        if self.in_url and self.other is not None and loc is not None and not self._synced:
            loc.sync(self.other, {n: RIGHT + n for n in RIGHT_STATE})
            self._synced = True

    def _build(self):
        """Both maps, made when the tab is first shown."""
        s = self.selection
        self._other()
        self._sync_url()
        self.left = MapView(selection=s, size=SIZE)
        self.right = MapView(selection=self.other, size=SIZE)
        self.right.link_to = self.left
        s.param.watch(lambda *_: self._follow(s, self.right), list(EXTENT))
        self.other.param.watch(lambda *_: self._follow(self.other, self.left), list(EXTENT))

    @staticmethod
    def _follow(source: Selection, target: MapView):
        """Move ``target`` to ``source``'s extent (once: a map already there is left)."""
        extent = [getattr(source, k) for k in EXTENT]
        if None in extent or extent == [getattr(target.selection, k) for k in EXTENT]:
            return
        target.show_extent(extent[:2], extent[2:])

    def maps(self):
        """The second selection's widgets and both maps."""
        if self.left is None:
            self._build()
        o = self.other
        widgets = pn.Row(
            pn.widgets.RadioButtonGroup.from_param(o.param.grid, width=150),
            pn.widgets.Select.from_param(o.param.level, label="Level", width=90),
            pn.widgets.Select.from_param(o.param.year, label="Year", width=90),
            pn.widgets.Select.from_param(o.param.layer, label="Layer", width=220))
        return pn.Column(widgets, pn.Row(
            pn.Column(self.left.plot_pane(), self.left.status, css_classes=["left-map"]),
            pn.Column(self.right.plot_pane(), self.right.status, css_classes=["right-map"])))

    def __panel__(self):
        # lazy: the tabs ask every view for its panel when the page is made
        return pn.Column(
            pn.pane.Markdown("Left: the sidebar's choice. Right: choose below. Zooming or "
                             "panning one map moves the other."),
            pn.param.ParamFunction(pn.bind(self.maps), lazy=True))
