"""The pipeline configuration's schema: every section and key typed and range-checked
(pydantic, strict), so that a misspelt key or a value of the wrong type is an error
naming the file, the section and the key, never a silently used default.

:func:`validate` checks a parsed TOML document and returns it with the defaults filled
in; :func:`check` renders what a file resolves to (``entropice config check``).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .runs.settings import DEFAULTS as TRAIN_DEFAULTS
from .sources import arcticdem as _arcticdem
from .sources import darts as _darts
from .sources import era5 as _era5


class ConfigError(ValueError):
    """A configuration that cannot be used."""


Paths = str | list[str]
"""A path, glob or URL, or a list of them; relative paths are relative to the file."""
Year = Annotated[int, Field(ge=1940, le=2100)]  # ERA5 begins in 1940
Rows = Annotated[int, Field(ge=0)]  # 0: all


class _Section(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Domain(_Section):
    """Where and when: the latitude the Arctic begins at and the years built."""

    min_lat: float = Field(50.0, ge=-90.0, lt=90.0)
    years: list[Year] | None = Field(None, min_length=1)
    year_start_month: int = Field(10, ge=1, le=12)

    @field_validator("years")
    @classmethod
    def _unique(cls, years):
        if years is not None and len(set(years)) != len(years):
            raise ValueError(f"each year once; got {years}")
        return years


class Grids(_Section):
    """The levels of each grid, and the land mask."""

    h3: list[int] = []
    healpix: list[int] = []
    land: str = ""

    @field_validator("h3", "healpix")
    @classmethod
    def _levels(cls, levels, info):
        from .grids import get_grid

        for level in levels:
            get_grid(info.field_name, level)  # the grid's own range and message
        return levels

    @model_validator(mode="after")
    def _some(self):
        if not (self.h3 or self.healpix):
            raise ValueError("no levels: give h3 = [...] and/or healpix = [...]")
        return self


class Inventory(_Section):
    """One RTS inventory's files and the rules to read them."""

    paths: Paths = Field(min_length=1)
    layer: str | int | None = None
    year_column: str | None = None
    date_column: str | None = None
    year: Year | None = None
    crs: str | None = None
    coverage: Paths = ""


class Labels(_Section):
    """The RTS inventories (DARTS and others) and the density classes' edges."""

    darts: Paths = ""
    coverage: Paths = ""
    layer: str | int | None = None
    year_column: str | None = None
    date_column: str | None = None
    year: Year | None = None
    crs: str | None = None
    bin_edges: list[Annotated[float, Field(gt=0.0, le=1.0)]] = Field(
        list(_darts.DEFAULT_BIN_EDGES), min_length=1)
    inventories: list[Inventory] = []

    @field_validator("bin_edges")
    @classmethod
    def _increasing(cls, edges):
        if any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"the edges must increase; got {edges}")
        return edges


class Era5(_Section):
    """ERA5 files, the units of mislabelled ones, and the trend's window."""

    paths: Paths = []
    trend_window: int = Field(10, ge=2, le=100)
    units: dict[Literal[tuple(_era5.NAMES)], str] = {}
    daily_means: bool | None = None


class ArcticDEM(_Section):
    """ArcticDEM tiles (or a STAC catalogue) and the statistics of each cell."""

    paths: Paths = []
    stats: list[str] = Field(list(_arcticdem.STATS), min_length=1)

    @field_validator("stats")
    @classmethod
    def _known(cls, stats):
        from .aggregate.raster import _parse_stats

        _parse_stats(stats)
        return stats


class AlphaEarth(_Section):
    """AlphaEarth embedding rasters and the principal components of the band means
    written beside them (0: none)."""

    paths: Paths = []
    n_components: int = Field(0, ge=0, le=64)


_T = TRAIN_DEFAULTS


class ESPAGrid(_Section):
    """eSPA+'s search grid: each key an ESPAClassifier parameter, a list of values."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    n_boxes: list[Annotated[int, Field(ge=1)]] = Field(_T["grid"]["n_boxes"], min_length=1)
    eps_C: list[float | Literal["inf"]] = Field(_T["grid"]["eps_C"], min_length=1)
    eps_W: list[float | Literal["inf"]] = Field(_T["grid"]["eps_W"], min_length=1)
    class_weight: list[Literal["balanced"]] = Field(_T["grid"]["class_weight"], min_length=1)

    @model_validator(mode="after")
    def _params(self):
        from .espa import ESPAClassifier

        known = ESPAClassifier().get_params()
        for key in self.model_extra or {}:
            if key not in known:
                raise ValueError(f"unknown eSPA+ parameter {key!r}{_did_you_mean(key, known)}")
        for key in ("eps_C", "eps_W"):
            if any(isinstance(v, float) and v <= 0 for v in getattr(self, key)):
                raise ValueError(f"{key} values must be positive")
        return self


class Train(_Section):
    """Training: eSPA+ beside baselines with nested spatial cross-validation."""

    models: str = "models"
    features: list[str] = Field(list(_T["features"]), min_length=1)
    target: Literal["rts_class", "any"] = _T["target"]
    missing: Literal["impute", "drop"] = _T["missing"]
    n_folds: int = Field(_T["n_folds"], ge=2, le=100)
    inner_folds: int = Field(_T["inner_folds"], ge=2, le=100)
    ancestor_level: int | None = Field(_T["ancestor_level"], ge=0)
    grid: ESPAGrid = ESPAGrid()
    search_scoring: str = _T["search_scoring"]
    n_restarts: int = Field(_T["n_restarts"], ge=1)
    n_estimators: int = Field(_T["n_estimators"], ge=1)
    search_estimators: int = Field(_T["search_estimators"], ge=0)
    weight_prior: Literal["corr", "mi", "none"] = _T["weight_prior"]
    weighted_proba: bool = _T["weighted_proba"]
    permutation_repeats: int = Field(_T["permutation_repeats"], ge=0)
    baselines: list[Literal["RandomForest", "HistGradientBoosting", "LogisticRegression",
                            "Majority"]] = list(_T["baselines"])
    random_state: int = Field(_T["random_state"], ge=0)
    n_jobs: int = _T["n_jobs"]
    search_rows: Rows = _T["search_rows"]
    fit_rows: Rows = _T["fit_rows"]
    tree_rows: Rows = _T["tree_rows"]
    forest_rows: Rows = _T["forest_rows"]
    score_rows: Rows = _T["score_rows"]

    @field_validator("search_scoring")
    @classmethod
    def _scorer(cls, name):
        from sklearn.metrics import get_scorer_names

        names = get_scorer_names()
        if name != "ranking" and name not in names:
            raise ValueError("not a scorer: use \"ranking\" or a scikit-learn scorer name "
                             f"such as \"balanced_accuracy\"{_did_you_mean(name, names)}")
        return name


class Evaluate(_Section):
    """``entropice evaluate``: the groups measured, the repeats of each curve point, and
    whether eSPA+ is searched in each split."""

    groups: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9]+/\d+$")]] = []
    repeats: int = Field(3, ge=1, le=100)
    search: bool = True  # eSPA+ searched in each split (false: the run's parameters)


class Config(_Section):
    """A whole pipeline configuration."""

    cube: str = Field(min_length=1)
    domain: Domain = Domain()
    grids: Grids
    labels: Labels | None = None
    era5: Era5 | None = None
    arcticdem: ArcticDEM | None = None
    alphaearth: AlphaEarth | None = None
    train: Train | None = None
    evaluate: Evaluate | None = None


def _flat(ann):
    """Every type inside an annotation (``list[Inventory] | None``: list, Inventory, ...)."""
    yield ann
    for arg in getattr(ann, "__args__", ()):
        yield from _flat(arg)


SECTIONS = {name: next(a for a in _flat(field.annotation) if isinstance(a, type)
                        and issubclass(a, BaseModel))
            for name, field in Config.model_fields.items() if name != "cube"}
"""Each section's schema class."""


def _did_you_mean(key, choices) -> str:
    close = difflib.get_close_matches(str(key), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


_KINDS = {"string_type": "a string", "list_type": "a list", "int_type": "an integer",
          "float_type": "a number", "bool_type": "true or false", "dict_type": "a table",
          "model_type": "a table", "none_required": "nothing"}
"""What each pydantic type error expected, in words."""


def _model_at(loc) -> type[BaseModel]:
    """The schema class that holds the key at ``loc`` (its last part)."""
    model = Config
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue
        found = [a for a in _flat(field.annotation) if isinstance(a, type)
                 and issubclass(a, BaseModel)]
        if found:
            model = found[0]
    return model


def _key_path(err) -> tuple:
    """An error's ``loc`` without pydantic's union branches (``'str'``,
    ``'list[str]'``); an unknown key's own name is kept, whatever it is."""
    loc = err["loc"]
    keep = len(loc) - 1 if err["type"] == "extra_forbidden" else len(loc)
    return tuple(p for i, p in enumerate(loc) if i >= keep or isinstance(p, int) or (
        p != "[key]" and not any(c in p for c in "[]-") and p not in (
            "str", "int", "float", "bool", "list", "dict", "none")))


def _where(loc) -> str:
    """``[train] grid.eps_C``, ``[[labels.inventories]] entry 2 year``, ``[grids]``, or
    ``cube``."""
    if len(loc) == 1:
        return f"[{loc[0]}]" if loc[0] in SECTIONS else str(loc[0])
    if loc[1:2] == ("inventories",) and len(loc) > 2 and isinstance(loc[2], int):
        rest = ".".join(str(p) for p in loc[3:] if isinstance(p, str))
        return f"[[{loc[0]}.inventories]] entry {loc[2] + 1}" + (f" {rest}" if rest else "")
    return f"[{loc[0]}] " + ".".join(str(p) for p in loc[1:] if isinstance(p, str))


def _home(key) -> str:
    """Where a key misplaced in another section belongs (`` (a key of [alphaearth])``)."""
    homes = [name for name, model in SECTIONS.items() if key in model.model_fields]
    return f" (a key of [{homes[0]}])" if homes else ""


HINTS = {("labels", "inventories"): "write each entry as [[labels.inventories]], with "
                                    "double brackets"}
"""A word more for mistakes the schema's message does not explain."""


def _problems(errors) -> list[str]:
    """pydantic's errors as sentences naming the section and the key; the branches of
    one union error (a string, or a list) become one sentence."""
    grouped: dict[tuple, list] = {}
    for err in errors:
        grouped.setdefault(_key_path(err), []).append(err)
    return [_problem(loc, errs) for loc, errs in grouped.items()]


def _problem(loc, errs) -> str:
    err, where = errs[0], _where(loc)
    value = err.get("input")
    got = "" if isinstance(value, dict) or "got" in err["msg"] else f" (got {value!r})"
    hint = f"; {HINTS[loc]}" if loc in HINTS else ""
    if err["type"] == "extra_forbidden":
        key, known = loc[-1], _model_at(loc).model_fields
        if len(loc) == 1:
            return (f"unknown section or key {key!r}{_did_you_mean(key, known)} "
                    f"(the sections are {', '.join(SECTIONS)})")
        hint = _did_you_mean(key, known) or _home(key)
        return (f"{_where(loc[:-1])}: unknown key {key!r}{hint} "
                f"(the keys are {', '.join(known)})")
    if err["type"] == "missing":
        return f"{where} is required"
    if "[key]" in err["loc"]:
        return f"{where}: unknown key: {_message(err)}"
    if len(errs) > 1 or err["type"] in _KINDS:
        kinds = dict.fromkeys(_KINDS.get(e["type"], _message(e)) for e in errs)
        return f"{where}: expected {' or '.join(kinds)}{got}{hint}"
    return f"{where}: {_message(err)}{got}{hint}"


def _message(err) -> str:
    msg = err["msg"].removeprefix("Value error, ").rstrip(".")
    return msg[0].lower() + msg[1:]


def validate(doc: dict, path="the configuration", *, defaults=False) -> dict:
    """Check a parsed configuration against the schema.

    Parameters
    ----------
    doc : dict
        The parsed TOML document.
    path : str or Path
        The file, named in every message.
    defaults : bool
        Fill in every default (what :func:`check` prints); otherwise only the keys the
        file gives, so that each stage's recorded configuration hash stays the file's.

    Returns
    -------
    dict
        The document, its values as the schema types them.

    Raises
    ------
    ConfigError
        One line naming ``path`` and, for each problem, the section, the key and what
        was expected.
    """
    try:
        cfg = Config.model_validate(doc)
    except ValidationError as err:
        raise ConfigError(f"{path}: " + "; ".join(_problems(err.errors()))) from None
    return cfg.model_dump(exclude_none=True, exclude_unset=not defaults)


def check(path) -> str:
    """What a configuration file resolves to, as TOML: every section with its defaults,
    paths resolved, and how many files each path matches."""
    from .pipeline import _expand, _path

    cfg = {**validate(read_toml(path), path, defaults=True),
           "_dir": str(Path(path).parent.resolve())}
    lines = [f"# {path}: valid", f'cube = "{_path(cfg, cfg["cube"])}"']
    for section, values in cfg.items():
        if not isinstance(values, dict):
            continue
        lines.append(f"\n[{section}]")
        for key, value in values.items():
            note = ""
            if key == "models":
                value = str(_path(cfg, value))
            elif key in ("paths", "darts", "coverage", "land") and value:
                try:
                    note = f"  # {len(_expand(cfg, value, key))} file(s)"
                except ConfigError:
                    note = "  # no file matches"
            lines.append(f"{key} = {_toml(value)}{note}")
    return "\n".join(lines)


def read_toml(path) -> dict:
    """A TOML file parsed; an error naming it when it is missing or not TOML."""
    import tomllib

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no pipeline configuration at {path}.")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text (UTF-8) file.") from None


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)
