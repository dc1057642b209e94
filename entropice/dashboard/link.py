"""What a link holds: the selection's state as URL query entries, each checked before it
is used (a value not taken is dropped, never used to open a file)."""

from __future__ import annotations

import json
import math

import param

from .projection import PC_NAMES
from .selection import Brush, Selection, brush_problem

URL_STATE = ["grid", "level", "year", "layer", "run", "box", "brush", "x0", "x1", "y0", "y1",
             "cmap", "vmin", "vmax", "fit", "scale", "tab"]
"""The selection a link holds, in the order it is applied: the grid decides the levels,
the level the years, layers and runs."""
EXTENT = ("x0", "x1", "y0", "y1")
RIGHT_STATE = ["grid", "level", "year", "layer"]
"""The Compare tab's right map in a link, each entry prefixed ``right_``."""
RIGHT = "right_"
MAX_EXTENT = 2.0e7
"""Largest map coordinate a link may ask for, in metres (the Earth fits in 1.3e7)."""
MIN_EXTENT = 1.0
"""Smallest width and height of a link's map extent, in metres."""
_EXTENT_TAKES = ("the map's extent: four numbers in metres, x0 below x1 and y0 below y1 by "
                 f"at least {MIN_EXTENT:g} m, within {MAX_EXTENT / 1000:,.0f} km of the pole")
TAKES = {
    "grid": "one of the cube's grids", "level": "a level of the grid",
    "year": "a year of the group", "layer": "a layer of the group",
    "run": "a model run of the group", "box": "the number of one of the run's boxes",
    "brush": "two of the group's layers (or PC1 and PC2, its principal axes) and four "
             "finite numbers in order",
    **dict.fromkeys(EXTENT, _EXTENT_TAKES), "cmap": "one of the colour maps",
    "vmin": "a finite number below vmax", "vmax": "a finite number above vmin",
    "fit": "true or false", "scale": "linear or log", "tab": "the name of a tab",
}
"""What each entry of a link takes, in words: the page's notice of an entry left out."""


def _brush(selection: Selection, raw) -> tuple:
    """A link's brush: two of the group's layers, or its principal axes ``PC1`` and
    ``PC2`` (those of the link's year and run, which come first), and a rectangle of
    finite numbers in their plane (x0 <= x1, y0 <= y1); ValueError otherwise."""
    if len(str(raw)) > 1000:
        raise ValueError("the brush is a short list")
    try:
        value = Brush.deserialize(raw)
    except json.JSONDecodeError:
        raise ValueError("the brush is a JSON list") from None
    if not isinstance(value, tuple) or len(value) != 6:
        raise ValueError("the brush has six entries")
    layers = all(isinstance(n, str) and n in selection.param.layer.objects for n in value[:2])
    if not (layers or tuple(value[:2]) == PC_NAMES):
        raise ValueError("the brush names layers of the group or its principal axes")
    problem = brush_problem(value)
    if problem:
        raise ValueError(problem)
    return (*value[:2], *map(float, value[2:]))


def _parse(p: param.Parameter, raw):
    """A link's value for the parameter ``p``; ValueError unless it is one ``p`` takes:
    one of a selector's choices, true or false, a finite number (whole for integers)."""
    if isinstance(p, param.Selector):
        for o in p.objects:
            if str(o) == str(raw):
                return o
        raise ValueError(f"not one of {p.name}'s choices")
    if isinstance(p, param.Boolean):
        text = str(raw).lower()
        if text not in ("true", "false"):
            raise ValueError(f"{p.name} is true or false")
        return text == "true"
    if isinstance(raw, bool):  # Panel reads "true" in a URL as True, and True is 1
        raise ValueError(f"{p.name} is a number")
    number = float(raw)
    if not math.isfinite(number):
        raise ValueError(f"{p.name} must be finite")
    if isinstance(p, param.Integer):
        if number != int(number):
            raise ValueError(f"{p.name} must be whole")
        return int(number)
    return number


def url_value(value) -> str | None:
    """A selection's value as its link writes it (None: not written)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return json.dumps(list(value))
    return str(value)


def apply_query(selection: Selection, query: dict) -> dict:
    """Set the selection from a link's query; return the entries kept. Each value is
    checked against what the parameter takes (the cube's and the run store's lists for
    names, finite numbers, a box of the run, an extent of positive size): a value not
    taken is dropped, never used to open a file."""
    kept = {}
    extent = {}
    for name in URL_STATE:
        if name not in query:
            continue
        try:
            if name == "brush":
                selection.brush = _brush(selection, query[name])
                kept[name] = url_value(selection.brush)
                continue
            value = _parse(selection.param[name], query[name])
            if name in EXTENT:
                if abs(value) > MAX_EXTENT:
                    raise ValueError("outside the Earth")
                extent[name] = value
                continue
            if name == "box" and value >= selection.n_boxes:
                raise ValueError("no such box")
            setattr(selection, name, value)
            kept[name] = str(value).lower() if isinstance(value, bool) else query[name]
        except (ValueError, TypeError, OverflowError):
            continue
    if selection.vmin is not None and selection.vmax is not None and \
            selection.vmin >= selection.vmax:
        selection.param.update(vmin=None, vmax=None)
        kept.pop("vmin", None), kept.pop("vmax", None)
    if len(extent) == 4 and extent["x1"] - extent["x0"] >= MIN_EXTENT and \
            extent["y1"] - extent["y0"] >= MIN_EXTENT:
        selection.param.update(**extent)
        kept.update({k: query[k] for k in EXTENT})
    return kept
