"""The map: the chosen layer on the cells, in North Polar Stereographic (EPSG:3413).

Cells are drawn as an image whose pixels are looked up by cell (see ``lookup``), at
screen resolution and recomputed on zoom, so the pole sits in the middle, nothing tears
at 180 degrees and a million cells draw as fast as a thousand. Zoomed in to a few hundred
cells, their outlines are drawn too. The graticule's labels follow the view
(``graticule``); the title names what is shown, so the save tool's PNG (the whole
canvas: title, map and colour bar) says it too. The hover names the layer's value, the
cell's RTS label and its P(any RTS); a click gives everything about the cell, its box
included.
"""

from __future__ import annotations

import functools
import json
import re

import holoviews as hv
import numpy as np
import panel as pn
import param

from .boxes_view import box_rule
from .graticule import graticule_labels
from .layers import (
    ANY,
    LIT,
    NOVEL,
    NOVELTY,
    class_colours,
    class_labels,
    class_legend,
    class_names,
    default_layer,
    is_prediction,
    novel,
)
from .lookup import land_and_lines, to_polar
from .selection import Selection
from .store import robust_range
from .view import View

PIXELS = 640  # the image's width and height
MIN_SIZE, MAX_SIZE = 420, 880  # the map's side on the page, in screen pixels
MAX_OUTLINED = 400  # cells outlined when no more are in view
HATCH = 6  # pixels between the lines hatching extrapolated predictions
PAD = 1.03
LOD = {"interval": 50, "timeout": 100}
"""Bokeh tells the server of a zoom or pan once the interaction has paused this long
(ms; its default, 500, delayed every redraw by half a second)."""


CLEAR = "#00000000"  # a colour not drawn


def _label_box(plot, element):
    """A pale box behind each graticule label, readable over any colour of cell."""
    glyph = plot.handles.get("glyph")
    if glyph is not None and glyph.background_fill_color is None:
        glyph.update(background_fill_color="white", background_fill_alpha=0.6, padding=1)


def graticule_layer(x_range, y_range) -> hv.Labels:
    """The labels of the graticule's lines that cross a view (``graticule``; the lines
    are in the coastline's image), just inside its edges, left out of the plot's ranges.
    No line in view: one empty label off the view (an empty layer is never redrawn)."""
    x, y, text = graticule_labels(x_range, y_range)
    if not text:
        (x0, x1), (y0, y1) = x_range, y_range
        x, y, text = np.array([2 * x0 - x1]), np.array([2 * y0 - y1]), [""]
    return hv.Labels({"x": x, "y": y, "text": text}, kdims=["x", "y"], vdims=["text"]).opts(
        text_font_size="8pt", text_color="#444444", text_align="center",
        text_baseline="middle", apply_ranges=False, hooks=[_label_box])


def figure_title(layer_label: str, units: str | None, grid: str, level: int, year,
                 run: str | None) -> str:
    """The map's title, in two lines, so that a saved figure says what it shows: the
    layer (with its units), then the year, the grid and level and the model run."""
    where = f"{year}, {grid} level {level}" + (f", run {run}" if run else "")
    return f"{colorbar_title(layer_label, units)}\n{where}"


def figure_filename(layer: str, grid: str, level: int, year, run: str | None) -> str:
    """The saved figure's file name (without ``.png``): what it shows, in safe
    characters."""
    name = "_".join(str(p) for p in ("entropice", f"{grid}-level{level}", layer, year, run)
                    if p is not None and p != "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


@functools.cache
def _hatch_lines(shape) -> np.ndarray:
    """Diagonal lines every ``HATCH`` pixels over an image of ``shape``, made once."""
    rows, cols = np.indices(shape)
    lines = (rows + cols) % HATCH == 0
    lines.flags.writeable = False
    return lines


@functools.lru_cache(maxsize=8)
def land_planes(x_range: tuple, y_range: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The land (1, 0 off it) and the lines above the cells (2 on the coast, 3 on the
    graticule, 0 elsewhere) of a view, read-only and shared by every session: each new
    page opens on its group's home extent, whose land is then made once. Bytes, not
    floats: a zoom sends both to the browser, a quarter of the size (0 is drawn
    transparent, below the colour range)."""
    fill, lines = land_and_lines(x_range, y_range, PIXELS, PIXELS)
    fill.flags.writeable = lines.flags.writeable = False
    return fill, lines


def home_extent(selection: Selection) -> tuple[tuple, tuple]:
    """A square view around the pole holding every cell of the selected group."""
    lat = selection.dataset.lat.values
    if not np.isfinite(lat).any():
        return (-4.5e6, 4.5e6), (-4.5e6, 4.5e6)
    # the distance from the pole depends on the latitude alone: the southernmost cell's
    x, y = to_polar(0.0, np.nanmin(lat))
    r = PAD * float(np.hypot(x, y))
    return (-r, r), (-r, r)


def in_view(idx: np.ndarray, n: int) -> np.ndarray:
    """Positions of the cells an image's pixels show, sorted (``np.unique`` of the
    pixels' cells, by marking: a tenth of the time on 400,000 pixels)."""
    seen = np.zeros(n, dtype=bool)
    seen[idx[idx >= 0]] = True
    return np.flatnonzero(seen)


def log_scale(img, clim, values):
    """``img`` as log10 (NaN where not positive) and the colour range in log10; a range
    that starts at zero or below starts at the smallest positive value of the layer."""
    positive = values[np.isfinite(values) & (values > 0)]
    lo = clim[0] if clim[0] > 0 else float(positive.min()) if len(positive) else 1e-6
    hi = max(clim[1], lo * 10.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(img > 0, np.log10(img), np.nan).astype(np.float32)
    return out, (float(np.log10(lo)), float(np.log10(hi)))


def colorbar_title(long: str, units: str | None) -> str:
    """The colour bar's title: the layer's name and units."""
    return f"{long} [{units}]" if units else long


UNMAPPED = -1
"""The RTS label of a cell no inventory covers, in the hover's plane of labels."""
LOG = "log10"
"""The value dimension's name when the image holds log10 of the layer."""
NUMBER = """
const v = (value === null || value === undefined) ? NaN : Number(value);
if (Number.isNaN(v)) return NAMES !== null ? "not mapped" : "-";
const x = LOG ? Math.pow(10, v) : v;
if (NAMES !== null) return NAMES[Math.round(x)] ?? String(x);
return Number(x.toPrecision(4)).toLocaleString("en", {maximumSignificantDigits: 4});
"""
"""How the hover writes a pixel's value: a class's name ("not mapped" where there is
none), else four significant digits with thousands separated (never scientific notation),
"-" where there is none."""


def _number_format(plot, names=None, log=False):
    """The hover's formatter of a value, one model per plot and kind (a new model every
    frame would have Bokeh walk the document anew)."""
    from bokeh.models import CustomJSHover

    code = NUMBER.replace("LOG", "true" if log else "false").replace(
        "NAMES", "null" if names is None else json.dumps({str(k): v for k, v in names.items()}))
    made = plot.handles.setdefault("entropice_formatters", {})
    if code not in made:
        made[code] = CustomJSHover(code=code)
    return made[code]


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """About ``n`` round ticks from ``lo`` to ``hi`` (steps of 1, 2, 2.5 or 5 times a
    power of ten), as Bokeh's own ticker would place them."""
    if lo is None or hi is None or not np.isfinite([lo, hi]).all() or hi <= lo:
        return []
    raw = (hi - lo) / n
    mag = 10.0 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    ticks = np.arange(np.ceil(lo / step - 1e-9), np.floor(hi / step + 1e-9) + 1) * step
    return [float(t) + 0.0 for t in np.round(ticks, 12)]  # + 0.0: no -0


def _style_colorbar(plot, element):
    """Title the colour bar and word the hover from the frame shown: HoloViews sets both
    once, from the first layer drawn, and keeps them when a dynamic map changes layer. A
    class layer's colours are labelled with its classes (carried by the value dimension's
    ``values`` and ``value_format``), a log layer's ticks with powers of ten. One ticker
    for the plot's life, its ticks changed: BokehJS's colour bar reads its ticker once,
    when first drawn, and would keep drawing the first layer's ticks."""
    from bokeh.models import FixedTicker

    value = element.vdims[0]
    names = ({int(v): value.value_format(v).split(" (")[0] for v in value.values}
             if value.values else None)
    _style_hover(plot, element, names)
    bar = plot.handles.get("colorbar")
    if bar is None:
        return
    bar.title = colorbar_title(value.label, value.unit)
    ticker = plot.handles.setdefault("entropice_ticker", FixedTicker(ticks=[]))
    if bar.ticker is not ticker:
        bar.ticker = ticker
    lo, hi = plot.handles["color_mapper"].low, plot.handles["color_mapper"].high
    if value.values:
        ticks = [int(v) for v in value.values]
        labels = {v: value.value_format(v) for v in ticks}
    elif value.name == LOG:
        ticks = list(range(int(np.floor(lo)), int(np.ceil(hi)) + 1))
        labels = {k: f"{10.0 ** k:,g}" for k in ticks}
    else:
        ticks, labels = nice_ticks(lo, hi), {}
    ticker.ticks = ticks
    bar.major_label_overrides = labels


TRUE_ASPECT = """
const w = fig.inner_width, h = fig.inner_height;
if (!(w > 0 && h > 0)) return;
const xs = fig.x_range, ys = fig.y_range;
const dx = xs.end - xs.start, dy = ys.end - ys.start;
const want = dy * w / h;
if (Math.abs(want - dx) <= 1e-3 * dx) return;
const cx = (xs.start + xs.end) / 2;
xs.setv({start: cx - want / 2, end: cx + want / 2});
"""
"""Widen (or narrow) the x range so that a metre is as long across as up: the frame's
shape is the window's, the view's the data's."""


def _true_aspect(plot, element):
    """Keep the map's scale equal in x and y whatever shape the window gives its frame."""
    from bokeh.models import CustomJS

    fig = plot.state
    if any(getattr(cb, "tags", None) == ["true-aspect"]
           for cbs in fig.js_property_callbacks.values() for cb in cbs):
        return
    cb = CustomJS(args={"fig": fig}, code=TRUE_ASPECT, tags=["true-aspect"])
    for attr in ("inner_width", "inner_height"):
        fig.js_on_change(attr, cb)
    fig.y_range.js_on_change("end", cb)


RANGE_DEBOUNCE = None
"""HoloViews waits until the map's ranges have not changed for 100 ms before it draws a
new view (polling every 50 ms): Bokeh sends the ranges once the wheel or the pan has
paused (``LOD``) already, so the map draws at once (``None``: 10 ms)."""


def _prompt_ranges(plot, element):
    """Have the range stream answer a zoom or pan at once (``RANGE_DEBOUNCE``)."""
    from holoviews.plotting.bokeh.callbacks import RangeXYCallback

    for sub in plot.traverse(lambda p: p):
        for cb in getattr(sub, "callbacks", ()):
            if isinstance(cb, RangeXYCallback):
                cb.debounce = RANGE_DEBOUNCE


def _style_hover(plot, element, names):
    """One line per value the image carries, named and formatted: the layer's (a class
    by its name), the cell's RTS label and its P(any RTS); no map coordinates."""
    hover = plot.handles.get("hover")
    if hover is None:
        return
    value = element.vdims[0]
    label = colorbar_title(value.label, value.unit)
    tips = [(label, "@image{custom}")]
    formatters = {"@image": _number_format(plot, names, value.name == LOG)}
    for dim in element.vdims[1:]:
        field = "@{" + dim.name + "}"
        tips.append((dim.label, field + "{custom}"))
        formatters[field] = _number_format(
            plot, {int(v): dim.value_format(v) for v in dim.values} if dim.values else None)
    hover.tooltips, hover.formatters = tips, formatters


class MapView(View):
    """The map of the current layer, with the highlighted box and a cell's details."""

    size = param.Integer(default=None, allow_None=True,
                         doc="The map's side in pixels (default: as the window allows).")

    def __init__(self, **params):
        super().__init__(**params)
        s = self.selection
        self.status = pn.pane.Markdown("", css_classes=["map-status"], margin=(0, 10))
        self.range = hv.streams.RangeXY()
        self.shown = hv.streams.Params(
            s, ["grid", "level", "year", "layer", "cmap", "vmin", "vmax", "fit", "scale", "box",
                "brush", "run"])
        # three layers, so a layer change resends only the cells' image: the land
        # beneath and the coastline and graticule (its labels too) above follow the
        # view alone
        self.land = hv.DynamicMap(self._land, streams=[self.range])
        self.coast = hv.DynamicMap(self._coast, streams=[self.range])
        self.dmap = hv.DynamicMap(self._render, streams=[self.shown, self.range])
        # square, as wide as the window leaves beside the details, at most MAX_SIZE
        size = (dict(frame_width=self.size, frame_height=self.size) if self.size else
                dict(responsive=True, aspect=1.15, min_width=MIN_SIZE, max_width=MAX_SIZE))
        self.plot = (self.land * self.dmap * self.coast).opts(
            xaxis=None, yaxis=None, framewise=True, active_tools=["wheel_zoom"], lod=LOD,
            hooks=[_true_aspect, _prompt_ranges, self._keep_figure, self._title_figure],
            **size)
        self.figure = None  # the Bokeh figure, once drawn
        self._frame = None  # (what it shows, the frame, its title, file name) last drawn
        self.title = ""  # the figure's title (``figure_title``) of the frame last drawn
        self.filename = "entropice_map"  # the name the save tool gives its PNG
        self._land_frames = None  # (extent, land, coast and labels) last drawn
        self.link_to = None  # a map whose extent this one shares in the browser
        self._linked = False  # the two figures' ranges are linked in the browser
        self.range.add_subscriber(self._remember_extent)
        self.details = pn.pane.Markdown("*Click a cell for its details.*",
                                        css_classes=["cell-details"], width=300)
        self.tap = hv.streams.Tap(source=self.dmap, x=None, y=None)
        self.tap.add_subscriber(self._show_cell)

    def _keep_figure(self, plot, element):
        self.figure = plot.state
        other = self.link_to.figure if self.link_to is not None else None
        if other is not None and not self._linked:
            # the browser keeps the two maps' extents equal; each one's image follows
            # its selection's extent on the server (see CompareView)
            for a, b in ((self.figure, other), (other, self.figure)):
                for rng in ("x_range", "y_range"):
                    for attr in ("start", "end"):
                        getattr(a, rng).js_link(attr, getattr(b, rng), attr)
            self._linked = True

    def _title_figure(self, plot, element):
        """Title the figure with the frame drawn and name the save tool's PNG after it:
        the save tool exports the whole canvas, title and colour bar included."""
        from bokeh.models import SaveTool

        fig = plot.state
        if fig.title is not None and fig.title.text != self.title:
            fig.title.text = self.title
        for tool in fig.toolbar.tools:
            if isinstance(tool, SaveTool) and tool.filename != self.filename:
                tool.filename = self.filename

    def show_extent(self, x_range, y_range):
        """Draw the map's image for an extent (the browser moves a linked map's ranges
        itself)."""
        self.range.event(x_range=tuple(x_range), y_range=tuple(y_range))

    def _extent(self, x_range, y_range):
        s = self.selection
        if x_range is None or y_range is None or None in (*x_range, *y_range):
            if None not in (s.x0, s.x1, s.y0, s.y1):
                return (s.x0, s.x1), (s.y0, s.y1)
            return home_extent(s)
        return tuple(map(float, x_range)), tuple(map(float, y_range))

    def _remember_extent(self, x_range=None, y_range=None, **_):
        if x_range is None or y_range is None:
            return
        self.selection.param.update(x0=float(x_range[0]), x1=float(x_range[1]),
                                    y0=float(y_range[0]), y1=float(y_range[1]))

    def image(self, x_range, y_range, layer=None):
        """The layer's values at each pixel of a view (NaN off the cells), and the
        pixels' cells."""
        s = self.selection
        idx = s.lookup(x_range, y_range, PIXELS, PIXELS)
        values = s.values(layer)
        if is_prediction(layer or s.layer):  # no prediction over water
            values = np.where(s.dataset.land_fraction.values > 0, values, np.nan)
        img = np.where(idx >= 0, values[np.maximum(idx, 0)], np.nan)
        return img.astype(np.float32), idx

    def _render(self, x_range=None, y_range=None, **_):
        # the stream only triggers: the selection is read whole, so a half-applied change
        # of grid (its levels, layers and runs follow one after another) draws consistently
        s = self.selection
        grid, level, year, layer, run = s.grid, s.level, s.year, s.layer, s.run
        cmap, vmin, vmax, box, fit, log = (s.cmap, s.vmin, s.vmax, s.box, s.fit,
                                            s.scale == "log")
        if layer not in s.param.layer.objects:
            layer = default_layer(s.param.layer.objects)
        xr_, yr_ = self._extent(x_range, y_range)
        # HoloViews draws a new plot twice (its range stream fires once the plot has
        # set its ranges): the second time, and whenever nothing changed, reuse the frame
        key = (grid, level, year, layer, run, cmap, vmin, vmax, box, fit, log, s.brush,
               xr_, yr_, s.store.group_stamp(grid, level))
        if self._frame is not None and self._frame[0] == key:
            self.title, self.filename = self._frame[2:]
            return self._frame[1]
        bounds = (xr_[0], yr_[0], xr_[1], yr_[1])
        img, idx = self.image(xr_, yr_, layer)
        long, units = s.describe(layer)
        legend = class_legend(s.dataset, layer)
        if legend:  # a colour per class, named on the colour bar
            classes, entries = [v for v, _ in legend[0]], dict(legend[0])
            if legend[1]:
                long = f"{long} ({legend[1]})"
            value = hv.Dimension("value", label=long, values=classes,
                                 value_format=lambda v: entries.get(int(v), str(v)))
            colours = dict(zip(classes, class_colours(len(classes))))
            cmap = [colours.get(v, "#ffffff") for v in range(classes[0], classes[-1] + 1)]
            clim = (classes[0] - 0.5, classes[-1] + 0.5)
        else:
            value = hv.Dimension("value", label=long, unit=units or None)
            # the range over the whole group: computed once for every session (a zoom
            # keeps it)
            lo, hi = robust_range(img) if fit else s.store.layer_range(grid, level, year,
                                                                       layer)
            clim = (lo if vmin is None else vmin, hi if vmax is None else vmax)
            if log and np.nanmax(img, initial=0) > 0:
                img, clim = log_scale(img, clim, s.values(layer))
                value = hv.Dimension(LOG, label=f"{long} (log scale)", unit=units or None)
        kdims = ["x", "y"]
        extra, planes = self.hover_values(idx, layer)
        cells = hv.Image(np.dstack([img, *planes]) if planes else img, bounds=bounds,
                         kdims=kdims, vdims=[value, *extra]).opts(
            cmap=cmap, clim=clim, colorbar=True, clabel=colorbar_title(long, units),
            tools=["hover"], alpha=0.9, hooks=[_style_colorbar])
        layers = [cells]
        # the highlight is always a layer (a pixel off the view when no box is chosen): an
        # overlay that changes its layers from one frame to the next is not redrawn right.
        # That pixel, the outlines and the labels are left out of the plot's ranges
        # (apply_ranges=False): the view is the images' extent alone, so the range
        # stream's first event brings the extent drawn and the frame is reused
        x0, y0 = bounds[:2]  # a 1 m pixel just outside the view
        off, off_bounds = np.ones((1, 1), dtype=np.float32), (x0 - 2, y0 - 2, x0 - 1, y0 - 1)
        mask, mbounds = off, off_bounds
        lit = s.brushed(year) if s.brush else None
        if box >= 0 and run:
            in_box = s.cell_boxes(year) == box
            lit = in_box if lit is None else lit | in_box
        if lit is not None:
            mask = np.where((idx >= 0) & lit[np.maximum(idx, 0)], 1.0,
                            np.nan).astype(np.float32)
            mbounds = bounds
        layers.append(hv.Image(mask, bounds=mbounds, kdims=kdims, vdims=["in box"]).opts(
            cmap=[LIT], alpha=0.75, tools=[], apply_ranges=False))
        hatch, n_novel = self.extrapolated(idx, layer, year)
        layers.append(hv.Image(off if hatch is None else hatch,
                               bounds=off_bounds if hatch is None else bounds, kdims=kdims,
                               vdims=["extrapolated"]).opts(
            cmap=["#3a3a3a"], alpha=0.8, tools=[], apply_ranges=False))
        shown = in_view(idx, len(s.dataset.cell_ids))
        layers.append(self.outlines(shown if len(shown) <= MAX_OUTLINED else shown[:0]))
        self.status.object = (f"{grid} level {level}, {layer}, {year}: "
                              f"{len(s.dataset.cell_ids):,} cells, {len(shown):,} in view"
                              + ("; colours on a log scale" if value.name == LOG else "")
                              + (f"; {int(lit.sum()):,} cells lit" if lit is not None else "")
                              + (f"; hatched: {n_novel:,} cells predicted outside the "
                                 f"training data (novelty > {NOVEL})" if hatch is not None
                                 else ""))
        self.title = figure_title(value.label, value.unit, grid, level, year, run)
        self.filename = figure_filename(layer, grid, level, year, run)
        frame = hv.Overlay(layers).opts(xlim=xr_, ylim=yr_)
        if self._frame is None or self._frame[0][:2] != (grid, level):
            # a level drawn the first time here: ready its neighbours for a change of level
            s.store.prefetch_levels(grid, level, (xr_, yr_, PIXELS, PIXELS), year, layer)
        self._frame = (key, frame, self.title, self.filename)
        return frame

    def extrapolated(self, idx, layer, year):
        """Diagonal hatching over the pixels of cells whose prediction is an
        extrapolation (novelty above ``NOVEL``), drawn into an image (a line every
        ``HATCH`` pixels), and how many such cells the group has; (None, 0) unless a
        prediction is shown and the run kept novelty."""
        s = self.selection
        far = novel(s.dataset, year) if is_prediction(layer) and layer != NOVELTY else None
        if far is None:
            return None, 0
        far = far & (s.dataset.land_fraction.values > 0)
        drawn = _hatch_lines(idx.shape) & (idx >= 0) & far[np.maximum(idx, 0)]
        return np.where(drawn, 1.0, np.nan).astype(np.float32), int(far.sum())

    def hover_values(self, idx, layer):
        """What the hover tells beside the layer, as value dimensions and an image of
        each: the cell's RTS label (by class name) and its P(any RTS), where the group has
        them and the layer is not that one."""
        s = self.selection
        ds, dims, planes = s.dataset, [], []
        for name in ("rts_class", ANY):
            if name == layer or name not in s.param.layer.objects:
                continue
            if name == "rts_class":
                names = {UNMAPPED: "not mapped", **class_names(ds[name])}
                dims.append(hv.Dimension("rts_label", label="RTS label", values=list(names),
                                         value_format=names.get))
            else:
                dims.append(hv.Dimension("p_any", label="P(any RTS)"))
            v = s.values(name)
            if name == "rts_class":  # the hover shows NaN as it is: unmapped is a class here
                v = np.where(np.isnan(v), UNMAPPED, v)
            planes.append(np.where(idx >= 0, v[np.maximum(idx, 0)], np.nan).astype(np.float32))
        return dims, planes

    def _land_image(self, x_range, y_range):
        """The land beneath the cells and the coastline and graticule above them, as
        images of a view, with the graticule's labels, made once per view (HoloViews
        asks twice for a new plot). The labels are in the coastline's layer: a fourth
        layer following the view would cost a zoom 8 ms of HoloViews' time, this 2."""
        xr_, yr_ = self._extent(x_range, y_range)
        if self._land_frames is None or self._land_frames[0] != (xr_, yr_):
            fill, lines = land_planes(xr_, yr_)
            bounds = (xr_[0], yr_[0], xr_[1], yr_[1])
            none = {"min": CLEAR, "NaN": CLEAR}  # 0: no land, no line
            land = hv.Image(fill, bounds=bounds, kdims=["x", "y"], vdims=["land"]).opts(
                cmap=["#e6e2d8"], clim=(0.5, 1.5), clipping_colors=none, tools=[])
            coast = hv.Image(lines, bounds=bounds, kdims=["x", "y"],
                             vdims=["coast"]).opts(cmap=["#303030", "#8a8a8a"],
                                                   clim=(1.5, 3.5), clipping_colors=none,
                                                   alpha=0.8, tools=[])
            self._land_frames = ((xr_, yr_), land,
                                 hv.Overlay([coast, graticule_layer(xr_, yr_)]))
        return self._land_frames

    def _land(self, x_range=None, y_range=None):
        """Land in grey beneath the cells, at the view's resolution."""
        return self._land_image(x_range, y_range)[1]

    def _coast(self, x_range=None, y_range=None):
        """The coastline (dark) and the graticule (grey) above the cells, as the land
        image's pixels, and the graticule's labels (``graticule_layer``)."""
        return self._land_image(x_range, y_range)[2]

    def cell_at(self, x, y):
        """Position in the group of the cell under a map point (None: no cell)."""
        idx = self.selection.lookup((x - 0.5, x + 0.5), (y - 0.5, y + 0.5), 1, 1)[0, 0]
        return None if idx < 0 else int(idx)

    def cell_details(self, pos) -> str:
        """Everything about one cell, as Markdown."""
        s = self.selection
        ds = s.dataset
        long, units = s.describe()
        lines = [f"**Cell** `{s.grid_system.format_id(ds.cell_ids.values[pos])}` "
                 f"({s.grid} level {s.level})",
                 f"centre {ds.lat.values[pos]:.3f} N, {ds.lon.values[pos]:.3f} E; "
                 f"area {ds.area_km2.values[pos]:,.1f} km²",
                 f"{long}: **{s.values()[pos]:.4g}** {units}"]
        if "rts_class" in ds:
            c = ds.rts_class.sel(year=s.year).values[pos]
            lines.append("label: " + ("not mapped" if np.isnan(c) else
                                      class_labels(ds.rts_class, [c])[0]))
        if s.has_predictions:
            p = ds.pred_proba.sel(year=s.year).values[pos]
            names = class_labels(ds.pred_class, ds.pred_proba["class"].values)
            lines.append("predicted: " + ", ".join(
                f"{name} {v:.2f}" for name, v in zip(names, p)))
            if "pred_spread" in ds:
                sp = float(ds.pred_spread.sel(year=s.year).values[pos])
                lines.append(f"P(any RTS) {1 - p[0]:.2f} ± {sp:.2f} (standard deviation "
                             "across the model's ensemble members)")
            if "pred_fold_spread" in ds:
                sp = float(ds.pred_fold_spread.sel(year=s.year).values[pos])
                lines.append(f"P(any RTS) ± {sp:.2f} across the outer folds' models "
                             "(each trained without one fold's land)")
            far = novel(ds, s.year)
            if far is not None:
                nv = float(ds[NOVELTY].sel(year=s.year).values[pos])
                lines.append(f"novelty {nv:.3f}: " + (
                    "**outside the training data** (farther from every box than "
                    f"{100 * NOVEL:g} % of the training samples): an extrapolation"
                    if far[pos] else "within the training data"))
        if s.run:
            box = int(s.cell_boxes()[pos])
            lines.append(f"in **box {box}** of run `{s.run}` (choose it under *Highlight box* "
                         "to see its cells and its rule)")
        return "\n\n".join(lines)

    def _show_cell(self, x=None, y=None):
        if x is None or y is None:
            return
        pos = self.cell_at(x, y)
        self.details.object = ("*No cell here.*" if pos is None
                               else self.cell_details(pos))

    def outlines(self, positions):
        """The cells at ``positions`` outlined (their values are in the image's hover,
        everything else in a click's details: one tooltip, never two)."""
        grid = self.selection.grid_system
        ids = self.selection.dataset.cell_ids.values[positions]
        rings = [to_polar(r[:, 0], r[:, 1]) for r in grid.vertices(ids)]
        if not rings:  # a polygon of no size: an empty layer is never redrawn
            rings = [(np.zeros(3), np.zeros(3))]
        return hv.Polygons([{"x": x, "y": y} for x, y in rings], kdims=["x", "y"]).opts(
            fill_alpha=0.0, line_color="white", line_width=0.8, tools=[], apply_ranges=False)

    def plot_pane(self) -> pn.pane.HoloViews:
        """The map alone."""
        if self.size:
            return pn.pane.HoloViews(self.plot, linked_axes=False, css_classes=["entropice-map"])
        return pn.pane.HoloViews(self.plot, linked_axes=False, css_classes=["entropice-map"],
                                 sizing_mode="stretch_width", max_width=MAX_SIZE)

    def rule(self, box, run, year, level):
        """The highlighted box in words, beside the map."""
        s = self.selection
        return box_rule(s, box) if run and 0 <= box < s.n_boxes else ""

    def __panel__(self):
        s = self.selection
        rule = pn.pane.Markdown(pn.bind(self.rule, s.param.box, s.param.run, s.param.year,
                                        s.param.level), css_classes=["map-box-rule"],
                                width=300)
        return pn.Row(pn.Column(self.plot_pane(), self.status, sizing_mode="stretch_width",
                                max_width=MAX_SIZE),
                      pn.Column(self.details, rule, width=310), sizing_mode="stretch_width")

