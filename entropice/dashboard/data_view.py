"""The data: how a feature is distributed in the cells of each RTS class."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from .layers import class_labels, features
from .view import View


def by_class(ds, feature, year) -> pd.DataFrame:
    """A feature's values in the labelled cells of a year, with their class name."""
    cls = ds.rts_class.sel(year=year).values
    da = ds[feature].sel(year=year) if "year" in ds[feature].dims else ds[feature]
    v = np.asarray(da.values, dtype=np.float64)
    ok = np.isfinite(cls) & np.isfinite(v)
    return pd.DataFrame({"class": class_labels(ds.rts_class, cls[ok]), feature: v[ok]})


class DataView(View):
    """Violins of the chosen feature per RTS class (labelled cells of the chosen year)."""

    feature = param.Selector(objects=[], doc="Feature")

    def __init__(self, **params):
        super().__init__(**params)
        self._features()

    @param.depends("selection.grid", "selection.level", watch=True)
    def _features(self):
        names = [n for group in features(self.selection.dataset).values() for n in group]
        self.param.feature.objects = names
        if self.feature not in names and names:
            self.feature = "era5_tdd_sum" if "era5_tdd_sum" in names else names[0]

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
        return hv.Violin(df, kdims=["class"], vdims=[self.feature]).opts(
            width=720, height=420, violin_fill_color="class", cmap="viridis",
            ylabel=f"{long} [{units}]" if units else long,
            title=f"{self.feature} by RTS class, {s.year} ({len(df):,} cells)")

    def __panel__(self):
        return pn.Column(pn.widgets.Select.from_param(self.param.feature, width=320),
                         self.plot)
