"""A run's evaluation beyond its folds as figure files (PNG), written beside its tables
by ``entropice evaluate``: for a report or a paper, where the dashboard's interactive
plots cannot go.

- ``learning_curve.png``: ROC AUC and the land to scan for 90 % of the RTS area, on
  regions never trained on, against the labelled land trained on;
- ``transfer.png``: each region held out in turn (rows) by model (columns);
- ``transfer_map.png``: where the transfer fails, the labelled cells coloured by their
  region's held-out ROC AUC (eSPA+), on the group's land, north polar stereographic;
- ``temporal.png``: the next year's ROC AUC of each model, beside persistence and
  climatology.

Drawn with matplotlib's object API (no pyplot state), so any thread may draw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import replacing

FIGURES = ("learning_curve", "transfer", "transfer_map", "temporal")
"""The figure files (``<name>.png``) a run's evaluation may hold."""

LABELS = {"roc_auc": "ROC AUC of P(any RTS)",
          "land_for_90pct_rts": "land to scan for 90 % of the RTS area"}
DPI = 120


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _stamp(fig, run_id):
    if run_id:
        fig.suptitle(f"run {run_id}", x=0.99, ha="right", fontsize=7, color="0.4")


def learning_curve(table: pd.DataFrame, run_id=None):
    """Both scores against the labelled land trained on, one line per model: the mean
    over draws, whiskers one standard deviation."""
    fig = _figure(10, 4)
    axes = fig.subplots(1, 2)
    for ax, score in zip(axes, ("roc_auc", "land_for_90pct_rts"), strict=True):
        g = (table.groupby(["model", "train_regions"], sort=False)
             .agg(land=("train_land_km2", "mean"), mean=(score, "mean"), sd=(score, "std"))
             .reset_index().fillna({"sd": 0.0}))
        for model, d in g.groupby("model", sort=False):
            d = d.sort_values("land")
            ax.errorbar(d.land / 1e3, d["mean"], yerr=d.sd, marker="o", ms=4, capsize=3,
                        label=model)
        ax.set_xlabel("labelled land trained on (1000 km²)")
        ax.set_ylabel(LABELS[score])
        ax.set_title(f"{LABELS[score]}, unseen regions", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    _stamp(fig, run_id)
    return fig


def transfer(table: pd.DataFrame, run_id=None, score="roc_auc"):
    """A heat map of each region held out (rows) by model (columns), values written."""
    t = table.pivot(index="region", columns="model", values=score)[
        list(dict.fromkeys(table.model))]
    fig = _figure(1.6 + 1.3 * t.shape[1], 1.0 + 0.38 * t.shape[0])
    ax = fig.subplots()
    im = ax.imshow(t.values, cmap="RdYlGn", vmin=0.5, vmax=1.0, aspect="auto")
    ax.set_xticks(range(t.shape[1]), t.columns, rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(t.shape[0]), t.index, fontsize=8)
    for (i, j), v in np.ndenumerate(t.values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label=LABELS[score])
    ax.set_title("Each region held out: the score there", fontsize=10)
    _stamp(fig, run_id)
    return fig


def transfer_map(table: pd.DataFrame, ds, regions, run_id=None, model="eSPA+"):
    """The labelled cells coloured by their region's held-out ROC AUC (``model``), over
    the group's land cells (grey; every cell for a group without ``land_fraction``), in
    north polar stereographic kilometres."""
    from pyproj import Transformer

    auc = table[table.model == model].set_index("region").roc_auc
    lat, lon = ds.lat.values, ds.lon.values
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3413", always_xy=True).transform(lon, lat)
    x, y = np.asarray(x) / 1e3, np.asarray(y) / 1e3
    land = (np.asarray(ds.land_fraction.values) > 0.5 if "land_fraction" in ds
            else np.ones(len(lat), bool))
    value = pd.Series(regions).map(auc).to_numpy(dtype=float)
    fig = _figure(7, 6.5)
    ax = fig.subplots()
    ax.scatter(x[land], y[land], s=3, c="0.85", linewidths=0, rasterized=True)
    shown = np.isfinite(value)
    sc = ax.scatter(x[shown], y[shown], s=6, c=value[shown], cmap="RdYlGn", vmin=0.5,
                    vmax=1.0, linewidths=0, rasterized=True)
    for region, score in auc.items():
        at = np.asarray(regions) == region
        if at.any():
            ax.annotate(f"{region}\n{score:.2f}", (np.median(x[at]), np.median(y[at])),
                        fontsize=7, ha="center", va="bottom",
                        xytext=(0, 6), textcoords="offset points")
    fig.colorbar(sc, ax=ax, shrink=0.8,
                 label=f"{LABELS['roc_auc']} with the region held out ({model})")
    ax.set_aspect("equal")
    ax.set_xlabel("x (km, EPSG:3413)")
    ax.set_ylabel("y (km, EPSG:3413)")
    ax.set_title("Where the transfer fails: each region scored by a model trained on "
                 "the others", fontsize=10)
    _stamp(fig, run_id)
    return fig


def temporal(table: pd.DataFrame, run_id=None, note=""):
    """The next year's ROC AUC, one line per model (persistence dashed, climatology
    dotted)."""
    fig = _figure(7, 4)
    ax = fig.subplots()
    reference = {"persistence": "--", "climatology": ":"}
    for model, d in table.groupby("model", sort=False):
        ax.plot(d.year, d.roc_auc, marker="o", ms=4, label=model,
                linestyle=reference.get(model, "-"),
                color="0.3" if model in reference else None)
    ax.set_xticks(sorted(table.year.unique()))
    ax.set_xlabel("year predicted (trained on the years before)")
    ax.set_ylabel(LABELS["roc_auc"])
    ax.set_title("The next year", fontsize=10)
    if note:
        ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, va="bottom",
                wrap=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _stamp(fig, run_id)
    return fig


def _names(tables: dict, with_map=True) -> list[str]:
    """The figures ``tables`` allow, in :data:`FIGURES`' order."""
    made = {"learning_curve": "learning_curve" in tables, "transfer": "transfer" in tables,
            "transfer_map": with_map and "transfer" in tables,
            "temporal": "temporal" in tables}
    return [n for n in FIGURES if made[n]]


def drawn(path, tables: dict) -> bool:
    """Whether the run directory ``path`` holds every figure ``tables`` allow."""
    return all((Path(path) / f"{n}.png").exists() for n in _names(tables))


def write(path, tables: dict, info: dict, ds=None, regions=None) -> list[Path]:
    """Draw the figures ``tables`` allow into the run directory ``path`` (a map needs the
    group ``ds`` and its cells' ``regions``); figures no table allows are removed, so none
    outlives its table. Returns the files written."""
    from .transfer import change_note

    path, run_id = Path(path), info.get("run_id")
    draw = {"learning_curve": lambda: learning_curve(tables["learning_curve"], run_id),
            "transfer": lambda: transfer(tables["transfer"], run_id),
            "transfer_map": lambda: transfer_map(tables["transfer"], ds, regions, run_id),
            "temporal": lambda: temporal(tables["temporal"], run_id, change_note(info))}
    names = _names(tables, with_map=ds is not None and regions is not None)
    written = []
    for name in FIGURES:
        target = path / f"{name}.png"
        if name not in names:
            target.unlink(missing_ok=True)
            continue
        with replacing(target) as tmp:
            draw[name]().savefig(tmp, format="png")
        written.append(target)
    return written
