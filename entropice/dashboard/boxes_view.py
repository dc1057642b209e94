"""The learned boxes: their centres over the most relevant features (in standard units,
each also in the feature's own units on hover), their label probabilities and sizes;
choosing a box (in the menu or by clicking the heat map) highlights its cells on the map
and states its rule in the features' own units."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from .layers import LIT, model_class_labels
from .view import View

TOP_FEATURES = 15
RULE_FEATURES = 4
"""Features a box's rule names: those that set it most apart (weight x distance)."""
ABOUT = ("eSPA+ divides the feature space into *boxes*, each around a centre. A cell "
         "belongs to the box whose centre is nearest in the weighted features, and takes "
         "that box's label probabilities, learned from the training cells in it.")
CLASS_COLOURS = ["#d9d9d9", "#fdae61", "#f46d43", "#a50026", "#67001f", "#000000"]


def box_table(model, top=TOP_FEATURES):
    """(feature names, box centres (K, top) in standard units, label probabilities,
    counts), features ordered by weight, boxes by probability of any RTS."""
    est = model.estimator
    names = np.asarray(model.meta["feature_names"])
    order = np.argsort(-est.feature_weights_)[:top]
    proba = est.box_label_proba_
    boxes = np.argsort(proba[:, 0]) if proba.shape[1] > 1 else np.arange(len(proba))
    return names[order], est.boxes_[np.ix_(boxes, order)], proba[boxes], est.box_counts_[
        boxes], boxes


def physical_centres(model, names, centres) -> np.ndarray:
    """Box centres in the features' own units: the standard units undone with the
    model's own standardisation (``centre * scale + mean`` of the scaler it was fitted
    after), one column per name of ``names`` (of the model's features).

    Parameters
    ----------
    model : StoredModel
        The run's model: its ``mean`` and ``scale`` per feature.
    names : sequence of str
        Features of the model, one per column of ``centres``.
    centres : ndarray, shape (n_boxes, len(names))
        Box centres in standard units (as :func:`box_table` gives them).

    Returns
    -------
    ndarray, shape (n_boxes, len(names))
        The centres in the features' units (for a ``<name>_missing`` flag: the share of
        missing values, 0 to 1, a centre stands for).
    """
    index = {str(n): j for j, n in enumerate(model.meta["feature_names"])}
    cols = [index[str(n)] for n in names]
    return np.asarray(centres) * np.asarray(model.scale)[cols] + np.asarray(model.mean)[cols]


def physical_text(selection, name: str, value: float) -> str:
    """A box centre in a feature's units, as the heat map's hover says it
    (``1,350 degC day``; a ``_missing`` flag's as the share of missing values)."""
    if not np.isfinite(value):
        return "no value"
    base = name.removesuffix("_missing")
    if base != name:
        return f"{_fmt(value)} (share of {base} missing)"
    try:
        units = selection.describe(base)[1]
    except KeyError:  # a feature the group lacks: the number alone
        units = ""
    return f"{_fmt(value)} {units}".rstrip()


def _fmt(v: float) -> str:
    """Four significant digits with thousands separated, never scientific notation."""
    return f"{float(f'{v:.4g}'):,}".removesuffix(".0")


def box_rule(selection, box: int) -> str:
    """A box in words (Markdown): how many of the group's cells fall in it in the selected
    year and how many of those labelled hold RTS, its P(any RTS) in training, and the
    middle half of its cells' values of the features that set it most apart, in their
    units (``thawing degree days: 1,210-1,580 degC day``)."""
    s = selection
    model = s.store.model(s.run)
    est, ds = model.estimator, s.dataset
    names = list(model.meta["feature_names"])
    centre = est.boxes_[box]
    apart = est.feature_weights_ * np.abs(centre)
    apart[~est.weighted_features_] = -1.0
    cells = s.cell_boxes() == box
    head = (f"**Box {box}**: {int(cells.sum()):,} of the group's {cells.size:,} cells in "
            f"{s.year}")
    if "rts_class" in ds:
        label = ds.rts_class.sel(year=s.year).values[cells]
        mapped = np.isfinite(label)
        if mapped.any():
            head += (f"; {int(mapped.sum()):,} of them labelled, "
                     f"{100 * float(np.mean(label[mapped] > 0)):.0f} % holding RTS")
    proba = est.box_label_proba_[box]
    head += (f". In training: P(any RTS) {1 - proba[0]:.2f} from "
             f"{int(est.box_counts_[box]):,} samples.")
    lines = [head, "", "Its cells, middle half of their values:"]
    for j in np.argsort(-apart)[:RULE_FEATURES]:
        if apart[j] < 0:
            break
        name = names[j].removesuffix("_missing")
        v = s.values(name)[cells]
        v = v[np.isfinite(v)]
        long, units = s.describe(name)
        side = "above" if centre[j] > 0 else "below"
        where = (f"{_fmt(np.percentile(v, 25))}-{_fmt(np.percentile(v, 75))} {units}".rstrip()
                 if len(v) else "no values")
        lines.append(f"- {long} (`{name}`): {where} ({abs(centre[j]):.1f} sd {side} "
                     "the mean)")
    return "\n".join(lines)


class BoxesView(View):
    """Heat map of box centres over the top features, and the boxes' label mix; the
    menu that highlights a box on the map."""

    def __init__(self, **params):
        super().__init__(**params)
        self.box_select = pn.widgets.Select(label="Highlight box on the map", width=260)
        self.box_select.param.watch(lambda e: setattr(self.selection, "box", e.new), "value")
        self._sync_select()

    @param.depends("selection.run", "selection.box", watch=True)
    def _sync_select(self):
        s = self.selection
        opts = {"none": -1}
        if s.run:
            _, _, proba, counts, boxes = box_table(self.store.model(s.run))
            for k, p, n in zip(boxes, proba, counts):
                opts[f"box {k}: P(any RTS) {1 - p[0]:.2f}, {int(n)} samples"] = int(k)
        self.box_select.options = opts
        self.box_select.value = s.box if s.box in opts.values() else -1
        if s.run and s.box < 0:  # a box will likely be chosen: its cells ready by then
            self.store.prefetch_boxes(s.run, s.grid, s.level, s.year)

    @param.depends("selection.run", "selection.box")
    def plots(self):
        s = self.selection
        if not s.run:
            return pn.pane.Alert("No model run for this grid and level: train one with "
                                 "`entropice train`.", alert_type="warning")
        model = self.store.model(s.run)
        names, centres, proba, counts, boxes = box_table(model)
        labels = [f"box {k}" for k in boxes]
        physical = physical_centres(model, names, centres)
        cells = pd.DataFrame(
            [(labels[i], names[j], float(centres[i, j]),
              physical_text(s, str(names[j]), float(physical[i, j])))
             for i in range(len(boxes)) for j in range(len(names))],
            columns=["box", "feature", "centre", "physical"])
        # text kept as objects: HoloViews reshapes its values, and Arrow strings do not
        cells["physical"] = cells["physical"].astype(object)
        heat = hv.HeatMap(
            cells, kdims=["box", "feature"],
            vdims=[hv.Dimension("centre", label="centre (standard units)"),
                   hv.Dimension("physical", label="centre (feature's units)")]).opts(
            cmap="RdBu_r", symmetric=True, colorbar=True, clabel="box centre (standard units)",
            xrotation=60, width=720, height=420, tools=["hover"],
            title="Box centres over the most relevant features")
        tap = hv.streams.Tap(source=heat, x=None, y=None)
        tap.add_subscriber(self._choose)
        if s.box in boxes:  # a factor's slot on a categorical axis is [i, i + 1]
            i = list(boxes).index(s.box)
            heat = heat * hv.VSpan(i, i + 1).opts(color=LIT, alpha=0.3)
        classes = model_class_labels(model)
        bars = hv.Bars([(labels[i], classes[c], float(proba[i, c]))
                        for i in range(len(boxes)) for c in range(proba.shape[1])],
                       kdims=["box", "class"], vdims=["probability"]).opts(
            stacked=True, cmap=CLASS_COLOURS[:proba.shape[1]], width=720, height=240, xrotation=60,
            title="Label probabilities of each box", tools=["hover"], legend_position="right")
        size = hv.Bars([(labels[i], int(counts[i])) for i in range(len(boxes))],
                       kdims=["box"], vdims=["training samples"]).opts(
            width=720, height=200, xrotation=60, color="#777777", title="Box sizes",
            tools=["hover"])
        rule = box_rule(s, s.box) if 0 <= s.box < len(boxes) else (
            "*Click a box's column in the heat map, or choose it above, to see its cells on "
            "the map and its rule here.*")
        # the heat map's feature axis is its own (its top features, in its own order):
        # linked, it would be one axis with the Feature relevance tab's bars (Panel links
        # the axes of a page's plots that have the same label), reordering both
        return pn.Column(pn.pane.Markdown(f"{ABOUT}\n\n{rule}", css_classes=["box-rule"],
                                          width=720),
                         pn.pane.HoloViews(heat, linked_axes=False), bars, size)

    def _choose(self, x=None, y=None):
        """A click on the heat map: the box of the column clicked."""
        if isinstance(x, str) and x.startswith("box "):
            self.selection.box = int(x.split()[1])

    def __panel__(self):
        return pn.Column(self.box_select, self.plots)
