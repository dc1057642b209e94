"""The Panel dashboard: ``panel serve app/`` (or ``entropice app``) serves :func:`build`.

``store.CubeStore`` reads the cube and its runs; ``selection.Selection`` is what a
session looks at; one view per module (``map_view``, ``boxes_view``, ``relevance_view``,
``evaluation_view``, ``data_view``), each a ``view.View`` of the selection, composed by
``page.App``.
"""

from .page import build

__all__ = ["build"]
