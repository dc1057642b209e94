"""The Panel dashboard: ``panel serve app/`` (or ``entropice app``) serves :func:`build`.

One view per module (``map_view``, ``boxes_view``, ``relevance_view``,
``evaluation_view``, ``data_view``), all following the selection kept by
``store.CubeStore``.
"""

from .page import build

__all__ = ["build"]
