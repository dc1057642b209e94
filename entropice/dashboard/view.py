"""The base of the dashboard's views: each draws one session's selection."""

from __future__ import annotations

import panel as pn
import param

from .selection import Selection
from .store import CubeStore


class View(pn.viewable.Viewer):
    """A part of the page drawn from the selection; its methods declare what they follow
    (``param.depends("selection.<name>")``) and are redrawn when that changes."""

    selection = param.ClassSelector(class_=Selection, doc="The selection the view draws.")

    @property
    def store(self) -> CubeStore:
        """The cube and its runs."""
        return self.selection.store
