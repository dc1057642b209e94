"""The feature space: every cell of the group in the plane of two features, or of the
first two principal axes of the features, shaded by datashader and coloured by RTS label
or by box. Brushing a rectangle highlights the same cells on the map."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from .layers import LIT, class_colours, class_names, feature_names
from .projection import PC_NAMES
from .view import View

FEATURES, AXES = "two features", "principal axes"
"""The planes the feature space shows."""
UNMAPPED = "not mapped"
UNMAPPED_COLOUR = "#9ecae1"
BOX_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
"""Boxes' colours, in turn (boxes beyond ten share colours)."""


def top_features(selection, n=2) -> list[str]:
    """The ``n`` features of the selected run with the largest weights (features of
    the group in the menu's order without a run)."""
    s = selection
    names = feature_names(s.dataset)
    if s.run:
        est = s.store.model(s.run).estimator
        meta = np.asarray(s.store.model(s.run).meta["feature_names"])
        order = [str(meta[j]) for j in np.argsort(-est.feature_weights_)
                 if est.weighted_features_[j] and meta[j] in names]
        names = order + [f for f in names if f not in order]
    return names[:n]


def cell_table(selection, x: str, y: str, colour: str) -> tuple[pd.DataFrame, dict]:
    """Every cell of the group in the selected year: its values of ``x`` and ``y`` (two
    layers, or ``PC1`` and ``PC2``: its coordinates on the principal axes) and its
    category (RTS label name, or "box k"), with a colour per category."""
    s = selection
    ds = s.dataset
    xv, yv = s.values(x), s.values(y)
    if colour == "box" and s.run:
        boxes = s.cell_boxes()
        cats = [f"box {k}" for k in range(s.n_boxes)]
        category = np.asarray(cats)[boxes]
        colours = {c: BOX_COLOURS[k % len(BOX_COLOURS)] for k, c in enumerate(cats)}
    else:
        names = class_names(ds.rts_class) if "rts_class" in ds else {}
        cls = s.values("rts_class") if "rts_class" in ds else np.full(len(xv), np.nan)
        order = [names[k] for k in sorted(names)]
        lookup = np.asarray(order + [UNMAPPED])
        code = np.where(np.isnan(cls), len(order), np.nan_to_num(cls).astype(int))
        category = lookup[np.clip(code, 0, len(order))]
        colours = dict(zip(order, class_colours(len(order))), **{UNMAPPED: UNMAPPED_COLOUR})
    ok = np.isfinite(xv) & np.isfinite(yv)
    df = pd.DataFrame({x: xv[ok], y: yv[ok], "category": pd.Categorical(
        category[ok], categories=list(colours))})
    return df, colours


def legend(colours: dict, counts: pd.Series) -> str:
    """The categories as coloured squares with their number of cells (HTML)."""
    return " ".join(
        f'<span style="white-space:nowrap"><span style="display:inline-block;width:0.8em;'
        f'height:0.8em;background:{c}"></span> {name} ({int(counts.get(name, 0)):,})</span>'
        for name, c in colours.items() if counts.get(name, 0))


def axes_note(selection, projection) -> str:
    """What the principal axes are made of, in words (Markdown)."""
    made = ("the selected run's weighted features" if selection.run
            else "every feature of the group")
    missing = (f"{projection.imputed:,} cells with some features missing are placed at "
               "those features' medians; cells with none are left out." if projection.imputed
               else "Cells with no feature value are left out.")
    shown = int(np.isfinite(projection.coords).all(axis=1).sum())
    fitted = (f"fitted on {projection.fitted:,} of its {shown:,} cells drawn at random"
              if projection.fitted < shown else f"fitted on all its {shown:,} cells")
    return (f"The first two principal axes of {len(projection.names)} standardised "
            f"features ({made}) in {selection.year}, {fitted}: "
            f"{100 * projection.ratio.sum():.0f} % of their variance. "
            f"{missing}\n\nAcross: {projection.label(0)}.\n\nUp: {projection.label(1)}.")


class SpaceView(View):
    """Cells in the plane of two features (default: the run's two most relevant), or of
    the first two principal axes of the features (``plane``), shaded by datashader,
    coloured by RTS label or box; a brushed rectangle is the selection's ``brush`` (in
    the axes' plane, of the features ``PC1`` and ``PC2``) and lights up its cells on the
    map."""

    plane = param.Selector(default=FEATURES, objects=[FEATURES, AXES],
                           doc="The plane: two features, or the first two principal axes "
                               "of the features")
    x = param.Selector(objects=[], doc="Feature across")
    y = param.Selector(objects=[], doc="Feature up")
    colour = param.Selector(default="RTS label", objects=["RTS label", "box"],
                            doc="Colour by")

    def __init__(self, **params):
        super().__init__(**params)
        self._features()
        self._plane()

    @param.depends("selection.grid", "selection.level", "selection.run", watch=True)
    def _features(self):
        names = feature_names(self.selection.dataset)
        self.param.x.objects = self.param.y.objects = names
        top = top_features(self.selection)
        with param.parameterized.batch_call_watchers(self):
            if self.x not in names and top:
                self.x = top[0]
            if self.y not in names and len(top) > 1:
                self.y = top[1]

    @param.depends("selection.brush", watch=True)
    def _plane(self):
        """The plane of a brush that came with a link (its two features, or the
        principal axes), so that its rectangle is drawn where it was made."""
        b = self.selection.brush
        if not b:
            return
        if tuple(b[:2]) == PC_NAMES:
            self.plane = AXES
        elif {b[0], b[1]} <= set(self.param.x.objects) and (
                self.plane, self.x, self.y) != (FEATURES, b[0], b[1]):
            self.param.update(plane=FEATURES, x=b[0], y=b[1])

    def axes(self) -> tuple[str, str]:
        """The names across and up of the plane shown: two features, or PC1 and PC2."""
        return PC_NAMES if self.plane == AXES else (self.x, self.y)

    def _brushed(self, bounds=None):
        if bounds is None:
            self.selection.brush = None
            return
        x0, y0, x1, y1 = map(float, bounds)
        self.selection.brush = (*self.axes(), x0, x1, y0, y1)

    @param.depends("plane", "x", "y", "colour", "selection.year", "selection.level",
                   "selection.grid", "selection.run")
    def plot(self):
        import datashader as ds
        from holoviews.operation.datashader import datashade, dynspread

        s = self.selection
        if not (self.x and self.y):
            return pn.pane.Alert("This group has no features.", alert_type="warning")
        note = None
        if self.plane == AXES:
            projection = s.projection()
            if projection is None:
                return pn.pane.Alert("The principal axes need two features with values "
                                     "that vary: this group or run has fewer.",
                                     alert_type="warning")
            xlabel, ylabel = projection.label(0), projection.label(1)
            note = pn.pane.Markdown(axes_note(s, projection), css_classes=["space-axes"])
        else:
            xlabel, ylabel = self._label(self.x), self._label(self.y)
        x, y = self.axes()
        df, colours = cell_table(s, x, y, self.colour)
        points = hv.Points(df, kdims=[x, y], vdims=["category"])
        shaded = dynspread(datashade(points, aggregator=ds.count_cat("category"),
                                     color_key=colours, min_alpha=60), threshold=0.6)
        shaded = shaded.opts(responsive=True, min_height=520, max_width=1000,
                             tools=["box_select"], active_tools=["box_select"],
                             xlabel=xlabel, ylabel=ylabel,
                             title=f"{len(df):,} cells, {s.year}: drag a rectangle to "
                                   "light them up on the map")
        brush = hv.streams.BoundsXY(source=shaded, bounds=None)
        brush.add_subscriber(self._brushed)
        counts = df["category"].value_counts()
        # the brush as a rectangle, drawn also when it came with a link
        drawn = hv.DynamicMap(pn.bind(self._rectangle, self.selection.param.brush))
        parts = [pn.pane.HTML(legend(colours, counts), css_classes=["space-legend"])]
        if note is not None:
            parts.append(note)
        parts.append(pn.pane.HoloViews(shaded * drawn, sizing_mode="stretch_width",
                                       css_classes=["space-plot"]))
        return pn.Column(*parts, sizing_mode="stretch_width")

    def _rectangle(self, brush):
        """The brushed rectangle, if it lies in the plane shown."""
        b = brush
        rect = [(b[2], b[4], b[3], b[5])] if b and tuple(b[:2]) == self.axes() else []
        return hv.Rectangles(rect).opts(fill_alpha=0.05, fill_color=LIT,
                                        line_color=LIT, line_width=2)

    def _label(self, name):
        long, units = self.selection.describe(name)
        return f"{long} [{units}]" if units else long

    @param.depends("selection.brush")
    def status(self):
        b = self.selection.brush
        if not b:
            return pn.pane.Markdown("*No cells brushed.*", css_classes=["space-status"])
        n = int(self.selection.brushed().sum())
        return pn.pane.Markdown(
            f"**{n:,} cells brushed**: {b[0]} {b[2]:.4g} to {b[3]:.4g}, {b[1]} {b[4]:.4g} "
            f"to {b[5]:.4g}; they are lit on the map.", css_classes=["space-status"])

    def __panel__(self):
        clear = pn.widgets.Button(label="Clear the brush", width=140)
        clear.on_click(lambda _: setattr(self.selection, "brush", None))
        x = pn.widgets.Select.from_param(self.param.x, width=260)
        y = pn.widgets.Select.from_param(self.param.y, width=260)

        def follow(*_):  # the features are chosen in their plane only
            x.disabled = y.disabled = self.plane == AXES

        follow()
        self.param.watch(follow, "plane")
        # wrapped: in a laptop's window the menus take two lines
        widgets = pn.FlexBox(
            pn.widgets.RadioButtonGroup.from_param(self.param.plane, width=240,
                                                   css_classes=["space-plane"]),
            x, y, pn.widgets.RadioButtonGroup.from_param(self.param.colour, width=200),
            clear, align_items="end")
        # lazy: the tabs ask every view for its panel when the page is made, and the
        # scatter of every cell takes seconds at the finest levels
        return pn.Column(widgets, self.status, pn.param.ParamMethod(self.plot, lazy=True),
                         sizing_mode="stretch_width")
