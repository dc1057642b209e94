"""How a group's variables read as the dashboard's layers, one rule each.

A layer is a variable of a group, one class of the predicted probabilities written
``"pred_proba:<class>"``, or the probability of any RTS (``"pred_any"``, one minus that of
the first class, none); a class is named by its variable's CF ``flag_meanings`` (a
model keeps those of its labels); a feature's source is its ``source`` attribute
(written by the stage that made it).
"""

from __future__ import annotations

import numpy as np

SOURCES = {"era5": "ERA5 climate", "arcticdem": "ArcticDEM terrain",
           "alphaearth": "AlphaEarth embeddings"}
"""The features' sources, by their ``source`` attribute, with their heading in the menu."""
LABEL_LAYERS = ["rts_density", "rts_count", "rts_class", "rts_area_km2"]
CELL_LAYERS = ["land_fraction", "area_km2"]
PREDICTIONS = {"expected RTS density": "pred_density",
               "predicted class": "pred_class", "prediction entropy": "pred_entropy",
               "uncertainty (members' spread of P(any RTS))": "pred_spread",
               "uncertainty across folds (their models' spread of P(any RTS))":
                   "pred_fold_spread",
               "novelty (outside the training data)": "pred_novelty"}
"""A group's prediction layers beside the class probabilities, by their label in the
menu (those the group holds; ``pred_density``, the expected RTS area per unit of land,
only from a run that kept its classes' RTS densities), in the menu's order."""
NOVELTY = "pred_novelty"
"""How far a cell's features lie outside the training data: the share of the training
samples nearer to their box (see ``StoredModel.novelty``)."""
NOVEL = 0.99
"""Novelty above which a prediction is an extrapolation: the cell lies farther from
every box than 99 % of the training samples."""
PROBA = "pred_proba"
"""The predicted probabilities (year, cells, class): one layer per class."""
ANY = "pred_any"
"""The predicted probability of any RTS: one minus that of the first class (none)."""


def proba_layer(c) -> str:
    """The layer of one class's predicted probability."""
    return f"{PROBA}:{int(c)}"


def split_layer(layer: str) -> tuple[str, int | None]:
    """(variable, class) of a layer; the class is None but for a class's probability."""
    name, _, cls = layer.partition(":")
    return name, int(cls) if cls else None


def column_name(layer: str) -> str:
    """A layer's name where a colon is not welcome (a table's column, a file's name)."""
    return layer.replace(":", "_")


def is_prediction(layer: str) -> bool:
    """Whether a layer is one of a model's predictions."""
    return split_layer(layer)[0] in (PROBA, ANY, *PREDICTIONS.values())


def has_predictions(ds) -> bool:
    """Whether a group holds a model's predictions."""
    return PROBA in ds


def class_labels(da, classes) -> list[str]:
    """Names of class values of a class variable (``rts_class``, ``pred_class``): its
    ``flag_meanings`` matched to its ``flag_values`` (else to 0, 1, ...); the value itself
    where it has no name."""
    names = class_names(da)
    return [names.get(int(c), str(int(c))) for c in classes]


def class_names(da) -> dict[int, str]:
    """A class variable's (``rts_class``, ``pred_class``) ``{value: name}``: its
    ``flag_meanings`` matched to its ``flag_values`` (else to 0, 1, ...)."""
    meanings = da.attrs.get("flag_meanings", "").split()
    return {int(v): m for v, m in zip(da.attrs.get("flag_values", range(len(meanings))),
                                      meanings)}


LIT = "#ff2d95"
"""The colour of cells lit by a box or a brush, wherever they are drawn."""
CLASS_COLOURS = ["#d9d9d9", "#fdcc8a", "#fc8d59", "#b30000"]
"""Colours of the RTS classes, none to high (grey, then light to dark red); more classes
take a sequential colour map."""


def class_legend(ds, layer: str) -> tuple[list[tuple[int, str]], str] | None:
    """The classes of a class layer (``rts_class``, ``pred_class``): ``[(class value,
    legend entry)]``, each entry the class's name and its range of RTS area in % of land
    from the labels' ``bin_edges`` (``low (<= 0.01 %)``), and what the ranges measure
    (empty without edges); None for other layers."""
    name, cls = split_layer(layer)
    if cls is not None or name not in ds or "flag_meanings" not in ds[name].attrs:
        return None
    flags = class_names(ds[name])
    values, names = list(flags), list(flags.values())
    edges = (ds["rts_class"].attrs.get("bin_edges") if "rts_class" in ds else None) or []
    if len(edges) + 2 != len(values):
        return list(zip(values, names)), ""
    pct = [f"{100 * float(e):.3g}" for e in edges]
    ranges = ([f"<= {pct[0]} %"] + [f"{a}-{b} %" for a, b in zip(pct[:-1], pct[1:])]
              + [f"> {pct[-1]} %"])
    return ([(values[0], names[0])] + [(v, f"{n} ({r})") for v, n, r in
                                       zip(values[1:], names[1:], ranges)],
            "RTS area in % of land")


def class_colours(n: int) -> list[str]:
    """``n`` colours for classes ordered from none to the densest: grey, then light to
    dark red (interpolated when there are more than four)."""
    if n <= len(CLASS_COLOURS):
        return CLASS_COLOURS[:n]
    lo, hi = (np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)]) for c in
              (CLASS_COLOURS[1], CLASS_COLOURS[-1]))
    steps = np.linspace(0.0, 1.0, n - 1)[:, None]
    return [CLASS_COLOURS[0]] + ["#" + "".join(f"{int(round(v)):02x}" for v in rgb)
                                 for rgb in lo + steps * (hi - lo)]


def model_class_labels(model) -> list[str]:
    """Names of a model's classes in the order of its outputs: its ``classes`` (the
    labels' ``flag_meanings`` when it was trained) at its label values."""
    names = dict(enumerate(model.meta.get("classes") or []))
    return [names.get(int(c), str(int(c))) for c in model.classes_]


def source_of(da) -> str | None:
    """The source a variable comes from: its ``source`` attribute."""
    return da.attrs.get("source")


def features(ds) -> dict[str, list[str]]:
    """A group's features by source (those of ``SOURCES``), names sorted."""
    out: dict[str, list[str]] = {}
    for name in sorted(ds.data_vars):
        source = source_of(ds[name])
        if source in SOURCES:
            out.setdefault(source, []).append(name)
    return out


def feature_names(ds) -> list[str]:
    """A group's features in one list, by source as :func:`features` orders them."""
    return [name for names in features(ds).values() for name in names]


def layer_menu(ds) -> dict[str, dict[str, str]]:
    """A group's layers under their headings, each a {label: layer} mapping."""
    out: dict[str, dict[str, str]] = {}
    if has_predictions(ds):
        classes = ds[PROBA]["class"].values
        out["Predictions"] = {"P(any RTS)": ANY, **{
            label: name for label, name in PREDICTIONS.items() if name in ds}, **{
            f"P({name})": proba_layer(c)
            for name, c in zip(class_labels(ds.pred_class, classes), classes)}}
    labels = {v: v for v in LABEL_LAYERS if v in ds}
    if labels:
        out["Labels"] = labels
    for source, names in features(ds).items():
        out[SOURCES[source]] = {n: n for n in names}
    out["Cells"] = {v: v for v in CELL_LAYERS if v in ds}
    return out


def layer_names(ds) -> list[str]:
    """Every layer of a group, in the menu's order."""
    return [n for names in layer_menu(ds).values() for n in names.values()]


def default_layer(layers: list[str]) -> str:
    """The layer a group opens on: the probability of any RTS, else the RTS density, else
    the first."""
    for name in (ANY, "rts_density"):
        if name in layers:
            return name
    return layers[0]


def novel(ds, year) -> np.ndarray | None:
    """Which cells' predictions in a year are extrapolations (novelty above ``NOVEL``);
    None where the predictions carry no novelty (a run trained before it was kept)."""
    if NOVELTY not in ds:
        return None
    return values(ds, NOVELTY, year) > NOVEL


def values(ds, layer: str, year) -> np.ndarray:
    """A layer's value in every cell of a group in a year (float, NaN where missing)."""
    name, cls = split_layer(layer)
    if name == ANY and PROBA in ds:
        first = ds[PROBA]["class"].values[0]
        return 1.0 - values(ds, proba_layer(first), year)
    if name not in ds:
        raise KeyError(f"the group has no variable {name!r}.")
    da = ds[name]
    if cls is not None:
        da = da.sel({"class": cls})
    if "year" in da.dims:
        da = da.sel(year=year)
    return np.asarray(da.values, dtype=np.float64)


def describe(ds, layer: str) -> tuple[str, str]:
    """(long name, units) of a layer; units are empty for pure numbers."""
    name, cls = split_layer(layer)
    if name == ANY:
        none = class_labels(ds.pred_class, ds[PROBA]["class"].values[:1])[0]
        return f"predicted probability of any RTS, 1 - P({none})", ""
    attrs = ds[name].attrs
    long = attrs.get("long_name", name)
    if cls is not None:
        long = f"predicted probability, P({class_labels(ds.pred_class, [cls])[0]})"
    units = attrs.get("units", "")
    return long, "" if units == "1" else units
