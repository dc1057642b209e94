"""Evaluation of a run: eSPA+ beside the baselines on the same spatial folds — the
metrics table, a confusion matrix, reliability curves and the triage curve."""

from __future__ import annotations

import holoviews as hv
import pandas as pd
import panel as pn
import param

from .layers import model_class_labels
from .view import View

METRICS = ["balanced_accuracy", "macro_f1", "roc_auc", "log_loss", "brier"]


def metrics_table(metrics: dict) -> pd.DataFrame:
    """One row per model, one column per metric (and the triage figure)."""
    rows = []
    for model, m in metrics.get("metrics", {}).items():
        row = {"model": model, **{k: m.get(k) for k in METRICS}}
        tri = (metrics.get("triage") or {}).get(model)
        if tri:
            row["land for 90% RTS"] = tri["land_share_needed"]["0.90"]
        rows.append(row)
    return pd.DataFrame(rows)


class EvaluationView(View):
    """Out-of-fold metrics of the current run."""

    model = param.Selector(default="eSPA+", objects=["eSPA+"], doc="Confusion matrix of")

    @param.depends("selection.run", "model")
    def plots(self):
        s = self.selection
        m = self.store.metrics(s.run) if s.run else {}
        if not m:
            return pn.pane.Alert("No evaluated run for this grid and level: train one with "
                                 "`entropice train`.", alert_type="warning")
        models = list(m["metrics"])
        self.param.model.objects = models
        name = self.model if self.model in models else models[0]
        table = pn.pane.DataFrame(metrics_table(m).round(3), index=False, width=720,
                                  css_classes=["metrics-table"])
        model = self.store.model(s.run)
        classes = model_class_labels(model)
        cm = m["metrics"][name]["confusion_matrix"]
        confusion = hv.HeatMap([(classes[j], classes[i], cm[i][j]) for i in range(len(cm))
                                for j in range(len(cm))], kdims=["predicted", "true"],
                               vdims=["cells"]).opts(
            cmap="Blues", colorbar=True, width=360, height=320, tools=["hover"],
            title=f"Confusion matrix, {name}", invert_yaxis=True)
        confusion = confusion * hv.Labels(confusion).opts(text_color="black")
        diag = hv.Curve([(0, 0), (1, 1)], "predicted", "observed").opts(
            color="gray", line_dash="dashed")
        rel = hv.Overlay([diag] + [
            hv.Curve((r["mean_predicted"], r["observed"]), "mean predicted", "observed",
                     label=k).opts(tools=["hover"])
            for k, r in m.get("reliability", {}).items()]).opts(
            width=360, height=320, title="Reliability (predicted class)",
            legend_position="bottom_right")
        curves = [hv.Curve([(0, 0), (1, 1)], "land share scanned", "RTS area found",
                           label="random").opts(color="gray", line_dash="dashed")]
        for k, t in (m.get("triage") or {}).items():
            curves.append(hv.Curve((t["land_share"], t["rts_share"]), "land share scanned",
                                   "RTS area found", label=k).opts(tools=["hover"]))
        triage = hv.Overlay(curves).opts(
            width=720, height=360, legend_position="bottom_right",
            title=f"Triage: land to scan, cells ranked by "
                  f"{m.get('triage_score', 'P(any RTS)')}, to find the RTS area")
        return pn.Column(table, pn.Row(confusion, rel), triage)

    def __panel__(self):
        return pn.Column(pn.widgets.Select.from_param(self.param.model, width=240), self.plots)
