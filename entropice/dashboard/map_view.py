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
import param

from .lookup import land_image, to_polar
from .store import CubeStore

PIXELS = 640  # the image's width and height
MAX_OUTLINED = 400  # cells outlined, with a full hover, when no more are in view
PAD = 1.03


def home_extent(store: CubeStore) -> tuple[tuple, tuple]:
    """A square view around the pole holding every cell of the group."""
    ds = store.dataset
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


class MapView(pn.viewable.Viewer):
    """The map of the current layer, with the highlighted box and a cell's details."""

    store = param.ClassSelector(class_=CubeStore)

    def __init__(self, **params):
        super().__init__(**params)
        s = self.store
        self.status = pn.pane.Markdown("", css_classes=["map-status"], margin=(0, 10))
        self.range = hv.streams.RangeXY()
        self.selection = hv.streams.Params(
            s, ["grid", "level", "year", "layer", "cmap", "vmin", "vmax", "box", "run"])
        # two layers, so a layer change resends only the cells' image: the land (and
        # coastline) beneath follows the view alone
        self.land = hv.DynamicMap(self._land, streams=[self.range])
        self.dmap = hv.DynamicMap(self._render, streams=[self.selection, self.range])
        self.plot = (self.land * self.dmap).opts(
            width=720, height=700, xaxis=None, yaxis=None, data_aspect=1, framewise=True,
            active_tools=["wheel_zoom"])
        self.range.add_subscriber(self._remember_extent)

    def _extent(self, x_range, y_range):
        s = self.store
        if x_range is None or y_range is None or None in (*x_range, *y_range):
            if None not in (s.x0, s.x1, s.y0, s.y1):
                return (s.x0, s.x1), (s.y0, s.y1)
            return home_extent(s)
        return tuple(map(float, x_range)), tuple(map(float, y_range))

    def _remember_extent(self, x_range=None, y_range=None, **_):
        if x_range is None or y_range is None:
            return
        self.store.param.update(x0=float(x_range[0]), x1=float(x_range[1]),
                                y0=float(y_range[0]), y1=float(y_range[1]))

    def image(self, x_range, y_range, layer=None):
        """The layer's values at each pixel of a view (NaN off the cells), and the
        pixels' cells."""
        idx = self.store.lookup(x_range, y_range, PIXELS, PIXELS)
        values = self.store.values(layer)
        img = np.where(idx >= 0, values[np.maximum(idx, 0)], np.nan)
        return img.astype(np.float32), idx

    def _render(self, x_range=None, y_range=None, **_):
        # the stream only triggers: the store is read whole, so a half-applied change
        # of grid (its levels, layers and runs follow one after another) draws consistently
        s = self.store
        grid, level, year, layer, run = s.grid, s.level, s.year, s.layer, s.run
        cmap, vmin, vmax, box = s.cmap, s.vmin, s.vmax, s.box
        if layer.partition(":")[0] not in s.dataset:
            layer = s.default_layer(s.param.layer.objects)
        xr_, yr_ = self._extent(x_range, y_range)
        bounds = (xr_[0], yr_[0], xr_[1], yr_[1])
        img, idx = self.image(xr_, yr_, layer)
        long, units = s.describe(layer)
        lo, hi = robust_range(s.values(layer))
        clim = (lo if vmin is None else vmin, hi if vmax is None else vmax)
        kdims = ["x", "y"]
        cells = hv.Image(img, bounds=bounds, kdims=kdims,
                         vdims=[hv.Dimension("value", label=long, unit=units or None)]).opts(
            cmap=cmap, clim=clim, colorbar=True, clabel=f"{long} [{units}]" if units else long,
            tools=["hover", "tap"], alpha=0.9)
        layers = [cells]
        if box >= 0 and run:
            boxes = s.cell_boxes(run, year)
            mask = np.where((idx >= 0) & (boxes[np.maximum(idx, 0)] == box), 1.0, np.nan)
            layers.append(hv.Image(mask, bounds=bounds, kdims=kdims, vdims=["in box"]).opts(
                cmap=["#ff2d95"], alpha=0.75, tools=[]))
        shown = np.unique(idx[idx >= 0])
        if 0 < len(shown) <= MAX_OUTLINED:
            layers.append(self.outlines(shown, layer))
        self.status.object = (f"{grid} level {level}, {layer}, {year}: "
                              f"{len(s.dataset.cell_ids):,} cells, {len(shown):,} in view")
        return hv.Overlay(layers).opts(title=f"{long} — {grid} level {level}, {year}",
                                       xlim=xr_, ylim=yr_)

    def _land(self, x_range=None, y_range=None):
        """Land in grey and the coast in dark grey, at the view's resolution."""
        xr_, yr_ = self._extent(x_range, y_range)
        img = land_image(xr_, yr_, PIXELS, PIXELS).astype(np.float32)
        return hv.Image(img, bounds=(xr_[0], yr_[0], xr_[1], yr_[1]), kdims=["x", "y"],
                        vdims=["land"]).opts(cmap=["#e6e2d8", "#5a5a5a"], clim=(1, 2), tools=[])

    def outlines(self, positions, layer):
        """The cells at ``positions`` as polygons with their details in the hover."""
        s = self.store
        ds = s.dataset
        grid = s.lookup.grid
        ids = ds.cell_ids.values[positions]
        values = s.values(layer)[positions]
        label = (ds.rts_class.sel(year=s.year).values[positions] if "rts_class" in ds
                 else np.full(len(positions), np.nan))
        proba = (ds.pred_proba.sel(year=s.year).values[positions] if s.has_predictions
                 else None)
        polys = []
        for k, ring in enumerate(grid.vertices(ids)):
            x, y = to_polar(ring[:, 0], ring[:, 1])
            d = {"x": x, "y": y, "cell": format_id(ids[k], s.grid),
                 "lat": float(ds.lat.values[positions[k]]),
                 "lon": float(ds.lon.values[positions[k]]),
                 "area_km2": float(ds.area_km2.values[positions[k]]),
                 "value": float(values[k]), "label": float(label[k])}
            if proba is not None:
                d["probabilities"] = ", ".join(f"{p:.2f}" for p in proba[k])
            polys.append(d)
        vdims = ["cell", "lat", "lon", "area_km2", "value", "label"]
        vdims += ["probabilities"] if proba is not None else []
        return hv.Polygons(polys, kdims=["x", "y"], vdims=vdims).opts(
            fill_alpha=0.0, line_color="white", line_width=0.8, tools=["hover"])

    def __panel__(self):
        return pn.Column(pn.pane.HoloViews(self.plot, linked_axes=False,
                                           css_classes=["entropice-map"]), self.status)


def format_id(cell, grid):
    """A cell id as users know it: H3's hex string, HEALPix's nested index."""
    return format(int(cell), "x") if grid == "h3" else str(int(cell))
