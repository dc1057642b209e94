"""The data: how a feature is distributed in the cells of each RTS class."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from .store import CubeStore


def by_class(ds, feature, year) -> pd.DataFrame:
    """A feature's values in the labelled cells of a year, with their class name."""
    cls = ds.rts_class.sel(year=year).values
    da = ds[feature].sel(year=year) if "year" in ds[feature].dims else ds[feature]
    v = np.asarray(da.values, dtype=np.float64)
    ok = np.isfinite(cls) & np.isfinite(v)
    names = ds.rts_class.attrs.get("flag_meanings", "").split()
    label = [names[int(c)] if int(c) < len(names) else str(int(c)) for c in cls[ok]]
    return pd.DataFrame({"class": label, feature: v[ok]})


class DataView(pn.viewable.Viewer):
    """Violins of the chosen feature per RTS class (labelled cells of the chosen year)."""

    store = param.ClassSelector(class_=CubeStore)
    feature = param.Selector(objects=[], doc="Feature")

    def __init__(self, **params):
        super().__init__(**params)
        self.store.param.watch(self._features, ["grid", "level"])
        self._features()

    def _features(self, *_):
        groups = self.store.layer_groups() if self.store.groups else {}
        names = [n for g, d in groups.items() if g not in ("Predictions", "Labels", "Cells")
                 for n in d.values()]
        self.param.feature.objects = names
        if self.feature not in names and names:
            self.feature = "era5_tdd_sum" if "era5_tdd_sum" in names else names[0]

    @param.depends("feature", "store.year", "store.level", "store.grid")
    def plot(self):
        ds = self.store.dataset
        if "rts_class" not in ds or not self.feature:
            return pn.pane.Alert("This group has no labels.", alert_type="warning")
        df = by_class(ds, self.feature, self.store.year)
        if df.empty:
            return pn.pane.Alert(f"No labelled cell has {self.feature} in {self.store.year}.",
                                 alert_type="warning")
        long = ds[self.feature].attrs.get("long_name", self.feature)
        units = ds[self.feature].attrs.get("units", "")
        return hv.Violin(df, kdims=["class"], vdims=[self.feature]).opts(
            width=720, height=420, violin_fill_color="class", cmap="viridis",
            ylabel=f"{long} [{units}]" if units else long,
            title=f"{self.feature} by RTS class, {self.store.year} ({len(df):,} cells)")

    def __panel__(self):
        return pn.Column(pn.widgets.Select.from_param(self.param.feature, width=320),
                         self.plot)
