"""The data: how a feature is distributed in the cells of each RTS class. The feature is
the map's layer when that is a feature, and choosing one here shows it on the map."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from .layers import class_colours, class_labels, class_names, feature_names
from .view import View


def by_class(ds, feature, year) -> pd.DataFrame:
    """A feature's values in the labelled cells of a year, with their class name as an
    ordered categorical (none first, the densest last)."""
    cls = ds.rts_class.sel(year=year).values
    da = ds[feature].sel(year=year) if "year" in ds[feature].dims else ds[feature]
    v = np.asarray(da.values, dtype=np.float64)
    ok = np.isfinite(cls) & np.isfinite(v)
    names = class_names(ds.rts_class)
    order = [names[k] for k in sorted(names)]
    labels = class_labels(ds.rts_class, cls[ok])
    return pd.DataFrame({"class": pd.Categorical(labels, categories=order, ordered=True),
                         feature: v[ok]}).sort_values("class", kind="stable")


class DataView(View):
    """Violins of the chosen feature per RTS class (labelled cells of the chosen year)."""

    feature = param.Selector(objects=[], doc="Feature")

    def __init__(self, **params):
        super().__init__(**params)
        self._features()
        self.param.watch(self._to_map, "feature")

    @param.depends("selection.grid", "selection.level", "selection.layer", watch=True)
    def _features(self):
        s = self.selection
        names = feature_names(s.dataset)
        self.param.feature.objects = names
        if s.layer in names:
            self.feature = s.layer
        elif self.feature not in names and names:
            self.feature = "era5_tdd_sum" if "era5_tdd_sum" in names else names[0]

    def _to_map(self, event):
        if event.new in self.selection.param.layer.objects:
            self.selection.layer = event.new

    @param.depends("feature", "selection.year", "selection.level", "selection.grid")
    def plot(self):
        s = self.selection
        ds = s.dataset
        if "rts_class" not in ds or not self.feature:
            return pn.pane.Alert("This group has no labels.", alert_type="warning")
        df = by_class(ds, self.feature, s.year)
        if df.empty:
            return pn.pane.Alert(f"No labelled cell has {self.feature} in {s.year}.",
                                 alert_type="warning")
        long = ds[self.feature].attrs.get("long_name", self.feature)
        units = ds[self.feature].attrs.get("units", "")
        classes = list(df["class"].cat.categories)
        colours = dict(zip(classes, class_colours(len(classes))))
        present = [c for c in classes if (df["class"] == c).any()]
        lo, hi = np.percentile(df[self.feature], [0, 100])
        pad = 0.08 * (hi - lo) if hi > lo else 1.0
        return hv.Violin(df.assign(**{"class": df["class"].astype(str)}), kdims=["class"],
                         vdims=[self.feature]).redim.values(**{"class": present}).opts(
            responsive=True, min_height=460, max_width=1100, violin_fill_color="class", cut=0,
            cmap=colours, ylim=(lo - pad, hi + pad), show_legend=False,
            ylabel=f"{long} [{units}]" if units else long, xlabel="RTS class (label)",
            title=f"{long} by RTS class, {s.year} ({len(df):,} labelled cells)")

    def __panel__(self):
        return pn.Column(pn.widgets.Select.from_param(self.param.feature, width=320),
                         self.plot, sizing_mode="stretch_width")
