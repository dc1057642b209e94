"""The learned boxes: their centres over the most relevant features, their label
probabilities and sizes; choosing a box highlights its cells on the map."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import param

from .layers import model_class_labels
from .view import View

TOP_FEATURES = 15
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

    @param.depends("selection.run", "selection.box")
    def plots(self):
        s = self.selection
        if not s.run:
            return pn.pane.Alert("No model run for this grid and level: train one with "
                                 "`entropice train`.", alert_type="warning")
        model = self.store.model(s.run)
        names, centres, proba, counts, boxes = box_table(model)
        labels = [f"box {k}" for k in boxes]
        heat = hv.HeatMap(
            [(labels[i], names[j], float(centres[i, j])) for i in range(len(boxes))
             for j in range(len(names))], kdims=["box", "feature"], vdims=["centre"]).opts(
            cmap="RdBu_r", symmetric=True, colorbar=True, clabel="box centre (standard units)",
            xrotation=60, width=720, height=420, tools=["hover"],
            title="Box centres over the most relevant features")
        if s.box >= 0:
            sel = labels[list(boxes).index(s.box)] if s.box in boxes else None
            if sel:
                heat = heat * hv.VSpan(labels.index(sel) - 0.5, labels.index(sel) + 0.5).opts(
                    color="#ff2d95", alpha=0.25)
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
        return pn.Column(heat, bars, size)

    def __panel__(self):
        return pn.Column(self.box_select, self.plots)
