"""Notebooks whose plots draw with no network (offline, or on an HPC login node):
BokehJS, Panel's JavaScript and every stylesheet inline in the notebook, none fetched
from a CDN; the executed notebook and its HTML export are self-contained."""

from __future__ import annotations


def extension():
    """Load HoloViews' Bokeh backend and Panel with every resource inline.

    ``pn.extension(inline=True)`` inlines the JavaScript and the stylesheets of Panel
    objects, but a HoloViews plot is rendered through its own path and keeps Panel's
    stylesheets as CDN links (loading, layout and theme CSS); a pre-processing hook
    inlines those too.
    """
    import holoviews as hv
    import panel as pn
    from panel.viewable import Viewable

    hv.extension("bokeh", inline=True)
    pn.extension(inline=True)
    if _inline_stylesheets not in Viewable._preprocessing_hooks:
        Viewable._preprocessing_hooks.append(_inline_stylesheets)


def _inline_stylesheets(viewable, root):
    """Every CDN stylesheet of a rendered model replaced by the installed file's CSS."""
    from bokeh.models import UIElement
    from panel.io.notebook import patch_inline_stylesheets

    for model in root.select({"type": UIElement}):
        patch_inline_stylesheets(model)
