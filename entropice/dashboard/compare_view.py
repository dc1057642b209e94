"""Two maps side by side, their extents linked: two levels of a grid, H3 beside
HEALPix, two years or two layers. The left map is the session's selection, the right
one a second selection of the same cube."""

from __future__ import annotations

import panel as pn
import param

from .map_view import MapView
from .selection import Selection
from .view import View

SIZE = 430  # each map's side, in pixels: two fit beside the sidebar at 1280 wide
EXTENT = ("x0", "x1", "y0", "y1")


class CompareView(View):
    """The selection's map beside a second selection's, zoomed and panned together."""

    other = param.ClassSelector(class_=Selection, doc="The right map's selection.")

    def __init__(self, **params):
        super().__init__(**params)
        self.left = self.right = None

    def _build(self):
        """The second selection and both maps, made when the tab is first shown (the
        second grid's group is loaded then, not with every page)."""
        s = self.selection
        if self.other is None:
            self.other = Selection(store=s.store)
            grids = s.param.grid.objects
            # H3 beside HEALPix when the cube has both, else the next level
            if len(grids) > 1:
                self.other.grid = next(g for g in grids if g != s.grid)
            else:
                levels = self.other.param.level.objects
                self.other.level = levels[min(levels.index(s.level) + 1, len(levels) - 1)]
        if s.year in self.other.param.year.objects:
            self.other.year = s.year
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
