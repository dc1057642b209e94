"""Evaluation of a run: eSPA+ beside the baselines on the same spatial folds — the
metrics table, a confusion matrix, reliability curves and the triage curve — and, once
``entropice evaluate`` has run, on regions and years never trained on: learning curves
by labelled area, leave-one-region-out transfer and the next year's labels."""

from __future__ import annotations

import holoviews as hv
import pandas as pd
import panel as pn
import param

from ..runs.transfer import change_note
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


def learning_curve_plot(table: pd.DataFrame, score="roc_auc") -> hv.Overlay:
    """A score on held-out regions against the labelled land trained on, one curve per
    model: the mean over draws, whiskers one standard deviation."""
    g = (table.groupby(["model", "train_regions"], sort=False)
         .agg(land=("train_land_km2", "mean"), mean=(score, "mean"), sd=(score, "std"))
         .reset_index().fillna({"sd": 0.0}))
    g["land"] /= 1e3
    label = {"roc_auc": "ROC AUC of P(any RTS)",
             "land_for_90pct_rts": "land to scan for 90 % of RTS"}.get(score, score)
    land = hv.Dimension("land", label="labelled land trained on", unit="1000 km²")
    value = hv.Dimension("mean", label=label)
    layers = []
    for model, d in g.groupby("model", sort=False):
        d = d.sort_values("land")
        layers += [hv.Curve(d, land, [value, "sd", "train_regions"], label=model).opts(
                       tools=["hover"]),
                   hv.ErrorBars(d, land, [value, "sd"]).opts(alpha=0.5),
                   hv.Scatter(d, land, value, label=model).opts(size=5)]
    return hv.Overlay(layers).opts(
        width=520, height=360, legend_position="bottom_right" if score == "roc_auc"
        else "top_right", title=f"{label}, unseen regions")


def transfer_heatmap(table: pd.DataFrame, score="roc_auc") -> hv.Overlay:
    """Each region held out in turn (rows) against each model (columns)."""
    t = table.dropna(subset=[score]).assign(**{score: lambda d: d[score].round(2)})
    heat = hv.HeatMap(t, ["model", "region"], [score, "test_samples"]).opts(
        cmap="RdYlGn", clim=(0.5, 1.0) if score == "roc_auc" else (None, None),
        colorbar=True, width=640, height=80 + 30 * t.region.nunique(), tools=["hover"],
        xrotation=20, title="Each region held out: ROC AUC of P(any RTS) there")
    return heat * hv.Labels(heat).opts(text_font_size="9pt", text_color="black")


def temporal_table(table: pd.DataFrame, score="roc_auc") -> pd.DataFrame:
    """The next year's score of each model (columns) for each year predicted (rows)."""
    return table.pivot(index="year", columns="model", values=score)[
        list(dict.fromkeys(table.model))].round(3)


def beyond_the_folds(tables: dict, info: dict, transfer_map=None) -> pn.Column:
    """The learning curves, the transfer heat map (and ``transfer_map``, the path of the
    run's map of it, :mod:`entropice.runs.figures`) and the temporal table of a run."""
    source = ("the inventory's coverage footprints" if info.get("regions_from") == "coverage"
              else "the labelled cells, clustered")
    parts = [pn.pane.Markdown(
        f"### Beyond the folds\n{len(info.get('regions', {}))} labelled regions (from "
        f"{source}): each held out in turn, and learning curves trained on 1, 2, 4, ... of "
        "the others and tested on two held out.")]
    parts += [pn.pane.Markdown(f"*No {what.replace('_', ' ')}: {why}.*")
              for what, why in info.get("skipped", {}).items()]
    if "learning_curve" in tables:
        parts.append(pn.Row(learning_curve_plot(tables["learning_curve"]),
                            learning_curve_plot(tables["learning_curve"],
                                                "land_for_90pct_rts")))
    if "transfer" in tables:
        parts.append(transfer_heatmap(tables["transfer"]))
        if transfer_map is not None:
            parts.append(pn.pane.PNG(str(transfer_map), width=640,
                                     css_classes=["transfer-map"]))
    if "temporal" in tables:
        note = change_note(info)
        parts += [pn.pane.Markdown(f"**The next year, trained on the years before**: ROC "
                                   f"AUC of P(any RTS), beside persistence (last year's "
                                   f"label) and climatology (the past labels). {note}"),
                  pn.pane.DataFrame(temporal_table(tables["temporal"]), width=900,
                                    css_classes=["temporal-table"])]
    return pn.Column(*parts)


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
        tables, info = self.store.evaluation(s.run)
        beyond = (beyond_the_folds(tables, info, self.store.figure(s.run, "transfer_map"))
                  if tables else pn.pane.Markdown(
            "*Not yet measured on regions and years never trained on: run "
            "`entropice evaluate`.*"))
        return pn.Column(table, pn.Row(confusion, rel), triage, beyond)

    def __panel__(self):
        return pn.Column(pn.widgets.Select.from_param(self.param.model, width=240), self.plots)
