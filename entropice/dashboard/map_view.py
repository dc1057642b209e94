"""The map: the chosen layer on the cells, in North Polar Stereographic (EPSG:3413).

Cells are drawn as an image whose pixels are looked up by cell (see ``lookup``), at
screen resolution and recomputed on zoom, so the pole sits in the middle, nothing tears
at 180 degrees and a million cells draw as fast as a thousand. Zoomed in to a few hundred
cells, their outlines are drawn too, with everything about each cell in the hover.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn

from .layers import (
    class_colours,
    class_labels,
    class_legend,
    default_layer,
    is_prediction,
    layer_names,
)
from .lookup import land_image, to_polar
from .selection import Selection
from .view import View

PIXELS = 640  # the image's width and height
MAX_OUTLINED = 400  # cells outlined, with a full hover, when no more are in view
PAD = 1.03


def home_extent(selection: Selection) -> tuple[tuple, tuple]:
    """A square view around the pole holding every cell of the selected group."""
    ds = selection.dataset
    x, y = to_polar(ds.lon.values, ds.lat.values)
    r = PAD * float(np.nanmax(np.hypot(x, y))) if len(x) else 4.5e6
    return (-r, r), (-r, r)


def robust_range(values: np.ndarray) -> tuple[float, float]:
    """2nd to 98th percentile of the finite values (0-1 if there are none)."""
    v = values[np.isfinite(values)]
    if not len(v):
        return 0.0, 1.0
    lo, hi = np.percentile(v, [2, 98])
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    return float(lo), float(hi if hi > lo else lo + 1.0)


def colorbar_title(long: str, units: str | None) -> str:
    """The colour bar's title: the layer's name and units."""
    return f"{long} [{units}]" if units else long


def _style_colorbar(plot, element):
    """Title the colour bar from the frame shown, and label a class layer's colours
    with its classes: HoloViews sets both once, from the first layer drawn, and keeps
    them when a dynamic map changes layer. The classes ride on the value dimension's
    ``values``, their legend entries on its ``value_format``."""
    from bokeh.models import BasicTicker, FixedTicker

    bar = plot.handles.get("colorbar")
    if bar is None:
        return
    value = element.vdims[0]
    bar.title = colorbar_title(value.label, value.unit)
    if value.values:
        ticks = [int(v) for v in value.values]
        bar.ticker = FixedTicker(ticks=ticks)
        bar.major_label_overrides = {v: value.value_format(v) for v in ticks}
    elif not isinstance(bar.ticker, BasicTicker):
        bar.ticker, bar.major_label_overrides = BasicTicker(), {}


class MapView(View):
    """The map of the current layer, with the highlighted box and a cell's details."""

    def __init__(self, **params):
        super().__init__(**params)
        s = self.selection
        self.status = pn.pane.Markdown("", css_classes=["map-status"], margin=(0, 10))
        self.range = hv.streams.RangeXY()
        self.shown = hv.streams.Params(
            s, ["grid", "level", "year", "layer", "cmap", "vmin", "vmax", "box", "run"])
        # three layers, so a layer change resends only the cells' image: the land
        # beneath and the coastline above follow the view alone
        self.land = hv.DynamicMap(self._land, streams=[self.range])
        self.coast = hv.DynamicMap(self._coast, streams=[self.range])
        self.dmap = hv.DynamicMap(self._render, streams=[self.shown, self.range])
        self.plot = (self.land * self.dmap * self.coast).opts(
            width=720, height=700, xaxis=None, yaxis=None, data_aspect=1, framewise=True,
            active_tools=["wheel_zoom"])
        self.range.add_subscriber(self._remember_extent)
        self.details = pn.pane.Markdown("*Click a cell for its details.*",
                                        css_classes=["cell-details"], width=300)
        self.tap = hv.streams.Tap(source=self.dmap, x=None, y=None)
        self.tap.add_subscriber(self._show_cell)

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
        cmap, vmin, vmax, box = s.cmap, s.vmin, s.vmax, s.box
        if layer not in layer_names(s.dataset):
            layer = default_layer(s.param.layer.objects)
        xr_, yr_ = self._extent(x_range, y_range)
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
            lo, hi = robust_range(s.values(layer))
            clim = (lo if vmin is None else vmin, hi if vmax is None else vmax)
        kdims = ["x", "y"]
        cells = hv.Image(img, bounds=bounds, kdims=kdims, vdims=[value]).opts(
            cmap=cmap, clim=clim, colorbar=True, clabel=colorbar_title(long, units),
            tools=["hover", "tap"], alpha=0.9, hooks=[_style_colorbar])
        layers = [cells]
        # the highlight is always a layer (a pixel off the view when no box is chosen): an
        # overlay that changes its layers from one frame to the next is not redrawn right
        x0, y0 = bounds[:2]  # a 1 m pixel just outside the view
        mask, mbounds = np.ones((1, 1), dtype=np.float32), (x0 - 2, y0 - 2, x0 - 1, y0 - 1)
        if box >= 0 and run:
            boxes = s.cell_boxes(year)
            mask = np.where((idx >= 0) & (boxes[np.maximum(idx, 0)] == box), 1.0,
                            np.nan).astype(np.float32)
            mbounds = bounds
        layers.append(hv.Image(mask, bounds=mbounds, kdims=kdims, vdims=["in box"]).opts(
            cmap=["#ff2d95"], alpha=0.75, tools=[]))
        shown = np.unique(idx[idx >= 0])
        layers.append(self.outlines(shown if len(shown) <= MAX_OUTLINED else shown[:0], layer))
        self.status.object = (f"{grid} level {level}, {layer}, {year}: "
                              f"{len(s.dataset.cell_ids):,} cells, {len(shown):,} in view")
        return hv.Overlay(layers).opts(title=f"{long} — {grid} level {level}, {year}",
                                       xlim=xr_, ylim=yr_)

    def _land_image(self, x_range, y_range):
        xr_, yr_ = self._extent(x_range, y_range)
        key = (xr_, yr_)
        if getattr(self, "_land_key", None) != key:  # shared by the land and the coast
            self._land_key, self._land_img = key, land_image(xr_, yr_, PIXELS, PIXELS)
        return self._land_img, (xr_[0], yr_[0], xr_[1], yr_[1])

    def _land(self, x_range=None, y_range=None):
        """Land in grey beneath the cells, at the view's resolution."""
        img, bounds = self._land_image(x_range, y_range)
        return hv.Image(np.where(img >= 1, 1.0, np.nan).astype(np.float32), bounds=bounds,
                        kdims=["x", "y"], vdims=["land"]).opts(cmap=["#e6e2d8"], tools=[])

    def _coast(self, x_range=None, y_range=None):
        """The coastline above the cells, as the image's coast pixels."""
        img, bounds = self._land_image(x_range, y_range)
        return hv.Image(np.where(img == 2, 1.0, np.nan).astype(np.float32), bounds=bounds,
                        kdims=["x", "y"], vdims=["coast"]).opts(cmap=["#303030"], alpha=0.8,
                                                                tools=[])

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
        return "\n\n".join(lines)

    def _show_cell(self, x=None, y=None):
        if x is None or y is None:
            return
        pos = self.cell_at(x, y)
        self.details.object = ("*No cell here.*" if pos is None
                               else self.cell_details(pos))

    def outlines(self, positions, layer):
        """The cells at ``positions`` as polygons with their details in the hover."""
        s = self.selection
        ds = s.dataset
        grid = s.grid_system
        vdims = ["cell", "lat", "lon", "area_km2", "value", "label"]
        vdims += ["probabilities"] if s.has_predictions else []
        opts = dict(fill_alpha=0.0, line_color="white", line_width=0.8, tools=["hover"])
        if not len(positions):  # a polygon of no size: an empty layer is never redrawn
            blank = {"x": [0.0, 0.0, 0.0], "y": [0.0, 0.0, 0.0],
                     **{v: ("" if v in ("cell", "probabilities") else np.nan) for v in vdims}}
            return hv.Polygons([blank], kdims=["x", "y"], vdims=vdims).opts(**opts)
        ids = ds.cell_ids.values[positions]
        values = s.values(layer)[positions]
        label = (ds.rts_class.sel(year=s.year).values[positions] if "rts_class" in ds
                 else np.full(len(positions), np.nan))
        proba = (ds.pred_proba.sel(year=s.year).values[positions] if s.has_predictions
                 else None)
        polys = []
        for k, ring in enumerate(grid.vertices(ids)):
            x, y = to_polar(ring[:, 0], ring[:, 1])
            d = {"x": x, "y": y, "cell": grid.format_id(ids[k]),
                 "lat": float(ds.lat.values[positions[k]]),
                 "lon": float(ds.lon.values[positions[k]]),
                 "area_km2": float(ds.area_km2.values[positions[k]]),
                 "value": float(values[k]), "label": float(label[k])}
            if proba is not None:
                d["probabilities"] = ", ".join(f"{p:.2f}" for p in proba[k])
            polys.append(d)
        return hv.Polygons(polys, kdims=["x", "y"], vdims=vdims).opts(**opts)

    def __panel__(self):
        return pn.Row(pn.Column(pn.pane.HoloViews(self.plot, linked_axes=False,
                                                  css_classes=["entropice-map"]),
                                self.status), self.details)

