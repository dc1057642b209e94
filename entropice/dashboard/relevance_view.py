"""Feature relevance: eSPA+'s feature weights, sorted and coloured by source, and the
same features compared across every grid and level."""

from __future__ import annotations

import holoviews as hv
import pandas as pd
import panel as pn
import param

from .store import CubeStore

SOURCE_COLOURS = {"era5": "#e07b39", "dem": "#5b8c5a", "emb": "#4a6fa5", "other": "#999999"}
TOP = 25


def source_of(feature: str) -> str:
    """The source a feature comes from, by its name's prefix."""
    head = feature.split("_", 1)[0]
    return head if head in SOURCE_COLOURS else "other"


def weights(model) -> pd.DataFrame:
    """Feature weights of a model, largest first."""
    names = model.meta["feature_names"]
    df = pd.DataFrame({"feature": names, "weight": model.estimator.feature_weights_,
                       "source": [source_of(n) for n in names]})
    return df.sort_values("weight", ascending=False, ignore_index=True)


class RelevanceView(pn.viewable.Viewer):
    """Sorted weights of the current run; weights of every run of the same cube."""

    store = param.ClassSelector(class_=CubeStore)

    @param.depends("store.run")
    def current(self):
        s = self.store
        if not s.run:
            return pn.pane.Alert("No model run for this grid and level.", alert_type="warning")
        df = weights(s.model()).head(TOP).iloc[::-1]
        return hv.Bars(df, kdims=["feature"], vdims=["weight", "source"]).opts(
            invert_axes=True, color="source", cmap=SOURCE_COLOURS, width=720, height=560,
            title=f"Feature weights of {s.run} (top {TOP})", tools=["hover"],
            legend_position="bottom_right", show_legend=True)

    @param.depends("store.run")
    def across(self):
        s = self.store
        rows = []
        for group, model in s.newest_models().items():
            w = weights(model)
            w["group"] = group
            rows.append(w)
        if not rows:
            return pn.pane.Markdown("No runs to compare.")
        df = pd.concat(rows)
        top = df.groupby("feature").weight.mean().nlargest(TOP).index
        df = df[df.feature.isin(top)]
        return hv.HeatMap(df, kdims=["group", "feature"], vdims=["weight"]).opts(
            cmap="magma", colorbar=True, width=720, height=560, tools=["hover"],
            title="Weights of the most relevant features across grids and levels (newest run)")

    def __panel__(self):
        return pn.Column(self.current, self.across)
