"""The graticule's labels of a view of the map (EPSG:3413).

The graticule's lines are drawn into the coastline's image (``lookup.land_and_lines``) at
a fixed spacing, parallels every ``PARALLELS`` degrees and meridians every ``MERIDIANS``
(up to ``MERIDIANS_TO``), whatever the zoom. Their labels follow the view: each line
that crosses it is labelled once, on the line, just inside the view's edge (a meridian
where it leaves the view away from the pole, a parallel where it crosses an edge, or
between two meridians when the whole circle is in view). Labels that would overlap are
dropped. Computed from the extent alone: in polar stereographic a meridian is a ray from
the pole and a parallel a circle about it, so a view's labels are a few dozen
intersections of rays and circles with a rectangle (tens of microseconds).
"""

from __future__ import annotations

import functools

import numpy as np

from .lookup import LON_0, MERIDIANS, MERIDIANS_TO, PARALLELS, to_polar

INSET = (0.055, 0.03)
"""A label's centre from the view's edges, as a share of its width and height: about
half a label ("120°W" in 8 points) on the smallest map, so the text stays in view."""
APART = (0.09, 0.04)
"""Labels whose centres are closer than this both across and up (a share of the view's
width and height: a label's size on the smallest map) overlap; the later is dropped."""

ROOMY = 1.5
"""A parallel is labelled at its first crossing of the view's edges this far from every
label placed (in ``APART``), else at the farthest."""
INSIDE_AT = MERIDIANS / 2
"""The longitude a parallel wholly in view is labelled at first: half way between the
prime meridian and the next (15°E, to the lower right of the pole)."""


def lat_text(lat: float) -> str:
    """A parallel's label: ``70°N``, ``0°``, ``10°S``."""
    lat = round(lat)
    return f"{abs(lat)}°{'N' if lat > 0 else 'S' if lat < 0 else ''}"


def lon_text(lon: float) -> str:
    """A meridian's label: ``120°W``, ``30°E``, ``0°``, ``180°``."""
    lon = (round(lon) + 180) % 360 - 180
    if lon in (0, -180):
        return f"{abs(lon)}°"
    return f"{abs(lon)}°{'E' if lon > 0 else 'W'}"


@functools.cache
def _parallels() -> tuple[np.ndarray, np.ndarray]:
    """The labelled parallels (north of the equator, short of the pole) and their
    distances from the pole in EPSG:3413 metres."""
    lats = np.arange(PARALLELS, 90.0 - 1e-9, PARALLELS)
    _, y = to_polar(np.full(len(lats), LON_0), lats)
    return lats, np.abs(np.asarray(y, float))


@functools.cache
def _meridians() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The meridians' longitudes, their unit directions from the pole (x, y) and the
    distance from the pole where they start (``MERIDIANS_TO``)."""
    lons = np.arange(-180.0, 180.0 - 1e-9, MERIDIANS)
    angle = np.radians(lons - LON_0)
    _, y0 = to_polar(LON_0, MERIDIANS_TO)
    return lons, np.sin(angle), -np.cos(angle), abs(float(y0))


def _ray_exit(dx, dy, t0, box):
    """Where the ray ``t * (dx, dy)``, ``t >= t0``, leaves the rectangle ``box`` (x0, x1,
    y0, y1); None if it misses it (Liang-Barsky clipping)."""
    x0, x1, y0, y1 = box
    lo, hi = t0, np.inf
    for d, a, b in ((dx, x0, x1), (dy, y0, y1)):
        if abs(d) < 1e-12:
            if not a <= 0.0 <= b:
                return None
            continue
        ta, tb = sorted((a / d, b / d))
        lo, hi = max(lo, ta), min(hi, tb)
    if lo > hi:
        return None
    return hi * dx, hi * dy


def _circle_crossings(r, box):
    """Where the circle of radius ``r`` about the pole crosses the rectangle's edges."""
    x0, x1, y0, y1 = box
    out = []
    for a in (x0, x1):  # the left and right edges
        if abs(a) <= r:
            h = np.sqrt(r * r - a * a)
            out += [(a, y) for y in (h, -h) if y0 <= y <= y1]
    for b in (y0, y1):  # the bottom and top edges
        if abs(b) <= r:
            w = np.sqrt(r * r - b * b)
            out += [(x, b) for x in (w, -w) if x0 <= x <= x1]
    return out


def graticule_labels(x_range, y_range) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The labels of the graticule's lines that cross a view: their centres' x and y
    (EPSG:3413 metres, inside the view, on their lines) and their texts, meridians
    first."""
    (x0, x1), (y0, y1) = map(float, x_range), map(float, y_range)
    w, h = x1 - x0, y1 - y0
    if not (w > 0 and h > 0):
        return np.empty(0), np.empty(0), []
    ix, iy = INSET[0] * w, INSET[1] * h
    box = (x0 + ix, x1 - ix, y0 + iy, y1 - iy)
    gap = np.array([APART[0] * w, APART[1] * h])
    placed: list[tuple[float, float]] = []
    texts: list[str] = []

    def room(p) -> float:
        """How far ``p`` is from the nearest label placed (1: just touching)."""
        if not placed:
            return np.inf
        d = np.abs(np.asarray(placed) - np.asarray(p)) / gap
        return float(d.max(axis=1).min())

    lons, dxs, dys, start = _meridians()
    for lon, dx, dy in zip(lons, dxs, dys):
        p = _ray_exit(dx, dy, start, box)
        if p is not None and room(p) >= 1.0:
            placed.append(p)
            texts.append(lon_text(lon))
    for lat, r in zip(*_parallels()):
        candidates = _circle_crossings(r, box)
        if not candidates and box[0] < -r and r < box[1] and box[2] < -r and r < box[3]:
            # the whole circle in view: between two meridians, from INSIDE_AT eastwards
            # (so the circles in view are labelled along one line while there is room)
            mid = np.radians(INSIDE_AT + np.arange(0.0, 360.0, MERIDIANS) - LON_0)
            candidates = list(zip(r * np.sin(mid), -r * np.cos(mid)))
        if not candidates:
            continue
        # the first with room to spare, else the one with the most
        best = next((p for p in candidates if room(p) >= ROOMY), None) or max(
            candidates, key=room)
        if room(best) >= 1.0:
            placed.append(best)
            texts.append(lat_text(lat))
    xy = np.asarray(placed, dtype=float).reshape(-1, 2)
    return xy[:, 0], xy[:, 1], texts
