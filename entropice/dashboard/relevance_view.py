"""Feature relevance: eSPA+'s feature weights with their spread across outer folds and
ensemble members, beside every model's permutation importance, and the same features
compared across every grid and level. Clicking a feature (a bar, or a heat map cell)
shows it on the map."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from .layers import features
from .view import View

SOURCE_COLOURS = {"era5": "#e07b39", "arcticdem": "#5b8c5a", "alphaearth": "#4a6fa5",
                  "other": "#999999"}
"""Bar colours by the features' ``source`` attribute."""
TOP = 25
FLAT = 0.02
"""Weights all within 2 % of the uniform weight are flat: they rank nothing."""
ROW = 18
"""Height of a feature's row in the plots, in pixels. The plots' heights are fixed (their
widths follow the window's): a plot that only has a minimum height is drawn taller than
the row Panel gives it, under the plot below (the weights' smallest bar and axis were)."""


def plot_height(features: int, margins: int = 110) -> int:
    """Height of a plot of ``features`` rows: each its row, and the title and axis."""
    return max(300, margins + ROW * features)


def weights(model, relevance: pd.DataFrame | None = None,
            sources: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Feature weights of a model, largest first, without the indicator columns (they
    carry no weight by construction); with ``relevance`` (a run's relevance table) also
    the mean and standard deviation over outer folds and ensemble members. Each feature's
    source is taken from ``sources`` (a group's features by source, as
    ``layers.features`` gives them); "other" where it has none."""
    names = np.asarray(model.meta["feature_names"])
    on = model.estimator.weighted_features_
    source = {n: src for src, group in (sources or {}).items() for n in group}
    df = pd.DataFrame({"feature": names[on], "weight": model.estimator.feature_weights_[on],
                       "source": [source.get(n, "other") for n in names[on]]})
    if relevance is not None and len(relevance):
        w = relevance[(relevance.model == "eSPA+") & (relevance.measure == "weight")]
        df = df.merge(w[["feature", "mean", "std"]].rename(
            columns={"mean": "fold_mean", "std": "fold_std"}), on="feature", how="left")
    return df.sort_values("weight", ascending=False, ignore_index=True)


def is_flat(model) -> bool:
    """True when the weights rank nothing: all within 2 % of uniform (eps_W = inf, or no
    feature stands out)."""
    w = model.estimator.feature_weights_[model.estimator.weighted_features_]
    return bool(np.all(np.abs(w * len(w) - 1.0) <= FLAT))


def importance(relevance: pd.DataFrame, features) -> pd.DataFrame:
    """Permutation importance (drop of ROC AUC on the outer test folds) of ``features``
    for every model but the majority class: mean and standard deviation over folds, and
    the mean relative to the model's largest (so that models' rankings compare)."""
    p = relevance[(relevance.measure == "permutation") & (relevance.model != "Majority")]
    p = p.rename(columns={"mean": "drop", "std": "spread"})
    top = p.groupby("model")["drop"].transform("max")
    p = p.assign(relative=np.where(top > 0, p["drop"] / top.where(top > 0, 1.0), 0.0))
    return p[p.feature.isin(list(features))]


class RelevanceView(View):
    """The current run's weights and permutation importance; weights of every run."""

    @param.depends("selection.run")
    def current(self):
        s = self.selection
        if not s.run:
            return pn.pane.Alert("No model run for this grid and level.", alert_type="warning")
        model, rel = self.store.model(s.run), self.store.relevance(s.run)
        df = weights(model, rel, features(s.dataset)).head(TOP).iloc[::-1]
        items = []
        if is_flat(model):
            items.append(pn.pane.Alert(
                f"The weights of {s.run} are flat (eps_W = {model.meta['params']['eps_W']}): "
                "eSPA+ ranks no feature above another in this run. The permutation importance "
                "beside them still measures each feature.", alert_type="warning"))
        indicators = model.meta.get("indicators", [])
        if indicators:
            items.append(pn.pane.Markdown(
                f"Not shown: {len(indicators)} indicator column(s) (missing-value flags, "
                f"binary or near-constant), which carry no weight by construction: "
                f"{', '.join(indicators[:6])}{' ...' if len(indicators) > 6 else ''}."))
        bars = hv.Bars(df, kdims=["feature"], vdims=["weight", "source"]).opts(
            invert_axes=True, color="source", cmap=SOURCE_COLOURS, tools=["hover"],
            legend_position="bottom_right", show_legend=True, xlabel="")
        hv.streams.Tap(source=bars, x=None, y=None).add_subscriber(
            lambda x=None, y=None: self.show(y if isinstance(y, str) else x))
        if "fold_std" in df:
            err = hv.ErrorBars(df.fillna(0.0), kdims=["feature"],
                               vdims=["fold_mean", "fold_std"]).opts(invert_axes=True)
            bars = bars * err
        height = plot_height(len(df))
        bars = bars.opts(title=f"eSPA+ weights, top {TOP} (whiskers: folds)",
                         responsive=True, height=height)
        plots = [bars]
        if len(rel):
            imp = importance(rel, df.feature)
            if len(imp):
                order = {f: i for i, f in enumerate(df.feature)}
                imp = imp.assign(rank=imp.feature.map(order)).sort_values("rank")
                # the weights' order: both plots share the feature axis, and an axis
                # shared by plots of different orders is ordered by neither
                plots.append(hv.Overlay([
                    hv.Scatter(g, kdims=["feature"], vdims=["relative", "drop", "spread"],
                               label=m).redim.values(feature=list(df.feature)).opts(
                        size=7, tools=["hover"])
                    for m, g in imp.groupby("model")])
                    .opts(invert_axes=True, responsive=True, height=height,
                          title="Permutation importance (held-out folds)",
                          legend_position="bottom_right",
                          ylabel="ROC AUC drop / the model's largest", xlabel=""))
        items.append(pn.Row(*plots, sizing_mode="stretch_width"))
        return pn.Column(*items, sizing_mode="stretch_width")

    @param.depends("selection.run")
    def across(self):
        rows = []
        for group, model in self.store.current_models().items():
            w = weights(model)
            w["group"] = group
            rows.append(w)
        if not rows:
            return pn.pane.Markdown("No runs to compare.")
        df = pd.concat(rows)
        top = df.groupby("feature").weight.mean().nlargest(TOP).index
        df = df[df.feature.isin(top)]
        heat = hv.HeatMap(df, kdims=["group", "feature"], vdims=["weight"]).opts(
            cmap="magma", colorbar=True, responsive=True, tools=["hover"],
            height=plot_height(len(top), margins=150),
            title="Weights of the most relevant features across grids and levels (newest run)")
        hv.streams.Tap(source=heat, x=None, y=None).add_subscriber(
            lambda x=None, y=None: self.show(y, x))
        # its feature axis is its own, not the current run's
        return pn.pane.HoloViews(heat, linked_axes=False, sizing_mode="stretch_width")

    def show(self, feature, group=None):
        """Show a feature on the map (of ``group``, "grid level", when given)."""
        s = self.selection
        if not isinstance(feature, str):
            return
        if isinstance(group, str) and len(group.split()) == 2:
            grid, level = group.split()
            if grid in s.param.grid.objects and level.isdigit():
                s.grid = grid
                if int(level) in s.param.level.objects:
                    s.level = int(level)
        if feature in s.param.layer.objects:
            s.layer = feature
            s.tab = "Map"

    def __panel__(self):
        return pn.Column(pn.pane.Markdown(
            "*Click a feature's bar, or a cell of the heat map, to see it on the map.*"),
            self.current, self.across, sizing_mode="stretch_width")
