"""What a link holds: the selection's state as URL query entries, each checked before it
is used (a value not taken is dropped, never used to open a file)."""

from __future__ import annotations

import json
import math

import param

from .selection import Brush, Selection

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


def _brush(selection: Selection, raw) -> tuple:
    """A link's brush: two of the group's layers and a rectangle of finite numbers in
    their plane (x0 <= x1, y0 <= y1); ValueError otherwise."""
    if len(str(raw)) > 1000:
        raise ValueError("the brush is a short list")
    try:
        value = Brush.deserialize(raw)
    except json.JSONDecodeError:
        raise ValueError("the brush is a JSON list") from None
    if not isinstance(value, tuple) or len(value) != 6:
        raise ValueError("the brush has six entries")
    names, numbers = value[:2], value[2:]
    if not all(isinstance(n, str) and n in selection.param.layer.objects for n in names):
        raise ValueError("the brush names layers of the group")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
               for v in numbers):
        raise ValueError("the brush's bounds are finite numbers")
    x0, x1, y0, y1 = map(float, numbers)
    if x0 > x1 or y0 > y1:
        raise ValueError("the brush's bounds are in order")
    return (*names, x0, x1, y0, y1)


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
    number = float(raw)
    if not math.isfinite(number):
        raise ValueError(f"{p.name} must be finite")
    if isinstance(p, param.Integer):
        if number != int(number):
            raise ValueError(f"{p.name} must be whole")
        return int(number)
    return number


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
                kept[name] = json.dumps(list(selection.brush))
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
    if len(extent) == 4 and extent["x1"] - extent["x0"] >= 1.0 and \
            extent["y1"] - extent["y0"] >= 1.0:
        selection.param.update(**extent)
        kept.update({k: query[k] for k in EXTENT})
    return kept
