"""The one owner of model runs: where they live, what a run id is, which run of a group
is current, the summary tables, and a run's files.

A project's runs share one directory (by default ``models/`` beside the cube):

- ``<run_id>/``: ``arrays.npz`` and ``model.json`` (the model, never pickled),
  ``folds/<k>/`` (the same two files of each outer fold's eSPA+, fitted without that
  fold's land), ``folds.csv``, ``metrics.json``, ``relevance.csv``; after ``entropice
  evaluate`` also ``transfer.csv``, ``learning_curve.csv``, ``temporal.csv`` and
  ``evaluation.json``;
- ``latest.json``: for each group (``h3/5``), its current run and what it was trained
  on (the config hash and the cube data's provenance), with its summary rows;
- ``summary.csv`` and ``summary.md``: the current runs' metrics, one row per model.

Pipeline, dashboard, CLI and notebooks read runs only through :class:`RunStore`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd

from ..atomic import replacing
from ..cube import group_name
from .model import MODEL_FORMAT, StoredModel, load_model, save_model

REGISTRY = "latest.json"
RELEVANCE_COLUMNS = ["model", "measure", "fold", "member", "feature", "value"]
SUMMARY_COLUMNS = ["grid", "level", "model", "balanced_accuracy", "macro_f1", "roc_auc",
                   "log_loss", "brier", "land_for_90pct_rts"]
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _write_atomically(path: Path, text: str):
    with replacing(path) as tmp:
        tmp.write_text(text)


class RunStore:
    """The model runs in one directory.

    Parameters
    ----------
    root : str or Path
        The directory (created when the first run is written).
    """

    def __init__(self, root):
        self.root = Path(root)

    def __repr__(self):
        return f"RunStore({str(self.root)!r})"

    @classmethod
    def of_cube(cls, cube_path, attrs=None) -> RunStore:
        """The runs of a cube: where its ``models`` attribute says (the train stage
        records it), else ``models/`` beside the cube."""
        attrs = attrs or {}
        return cls(attrs.get("models") or Path(cube_path).parent / "models")

    # -- runs ---------------------------------------------------------------------------

    def new_run(self, grid, config_hash: str) -> str:
        """A new run id for a group: ``<grid><level>-<UTC time>-<config hash>``, its
        directory created (never one that exists)."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        base = f"{grid.name}{grid.level}-{stamp}-{config_hash[:6]}"
        self.root.mkdir(parents=True, exist_ok=True)
        for k in range(1000):
            run_id = base if k == 0 else f"{base}-{k}"
            try:
                (self.root / run_id).mkdir()
                return run_id
            except FileExistsError:
                continue
        raise RuntimeError(f"no free run id for {base} in {self.root}.")

    def path(self, run_id: str) -> Path:
        """The directory of a run (a plain name: no path can be smuggled in)."""
        if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
            raise ValueError(f"not a run id: {run_id!r}.")
        return self.root / run_id

    def meta(self, run_id: str) -> dict:
        """A run's ``model.json``: its grid, level, features, classes, parameters."""
        path = self.path(run_id) / "model.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read run {run_id} in {self.root}: {err}") from None

    def ids(self, grid=None) -> list[str]:
        """The runs this entropice reads (runs of an older model format are left out:
        ``entropice train --force`` makes them anew), of one grid and level if given,
        newest first."""
        if not self.root.is_dir():
            return []
        found = []
        for d in self.root.iterdir():
            if not (d / "model.json").is_file() or not _RUN_ID.fullmatch(d.name):
                continue
            try:
                meta = self.meta(d.name)
            except ValueError:
                continue
            if meta.get("format") != MODEL_FORMAT:
                continue
            if grid is not None and (meta.get("grid"), meta.get("level")) != (grid.name,
                                                                             grid.level):
                continue
            found.append((meta.get("created", ""), d.name))
        return [run_id for _, run_id in sorted(found, reverse=True)]

    def save(self, run_id: str, model, feature_names, meta: dict, *, folds=None,
             fold_models=None, relevance=None, metrics=None):
        """Write a run: the model (arrays and JSON), the outer folds' models (fold ->
        model), and its folds (the samples' folds), relevance and metrics."""
        path = self.path(run_id)
        save_model(path, model, feature_names, {
            "run_id": run_id, "created": dt.datetime.now(dt.UTC).isoformat(), **meta},
            fold_models=fold_models)
        if folds is not None:
            folds.to_csv(path / "folds.csv", index=False)
        if relevance is not None:
            pd.DataFrame(relevance, columns=RELEVANCE_COLUMNS).to_csv(path / "relevance.csv",
                                                                      index=False)
        if metrics is not None:
            (path / "metrics.json").write_text(json.dumps(metrics, indent=2))

    def load(self, run_id: str) -> StoredModel:
        """A run's model (with its outer folds' models), rebuilt from its arrays; it
        predicts exactly as when trained."""
        return load_model(self.path(run_id))

    def metrics(self, run_id: str) -> dict:
        """A run's ``metrics.json`` (empty for runs stored without one)."""
        path = self.path(run_id) / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def relevance(self, run_id: str) -> pd.DataFrame:
        """A run's relevance: per model and feature, eSPA+'s weight and every model's
        permutation importance, as mean and standard deviation over outer folds (and
        ensemble members); the final model's weights (fold -1) are left out."""
        path = self.path(run_id) / "relevance.csv"
        if not path.exists():
            return pd.DataFrame(columns=["model", "measure", "feature", "mean", "std", "count"])
        df = pd.read_csv(path)
        df = df[df.fold >= 0]
        return (df.groupby(["model", "measure", "feature"]).value.agg(["mean", "std", "count"])
                .reset_index())

    EVALUATIONS = ("transfer", "learning_curve", "temporal")
    """The tables ``entropice evaluate`` adds to a run (see :mod:`entropice.runs.transfer`)."""

    def write_evaluation(self, run_id: str, tables: dict, info: dict):
        """Add a run's evaluation beyond its folds: ``<name>.csv`` for each table (one of
        :attr:`EVALUATIONS`) and ``evaluation.json`` (``info``: regions, label change)."""
        path = self.path(run_id)
        unknown = set(tables) - set(self.EVALUATIONS)
        if unknown:
            raise ValueError(f"unknown evaluation {sorted(unknown)[0]!r}; one of "
                             f"{self.EVALUATIONS}.")
        for name in self.EVALUATIONS:  # a measure not made now leaves no older table
            frame = tables.get(name)
            if frame is None or not len(frame):
                (path / f"{name}.csv").unlink(missing_ok=True)
                continue
            with replacing(path / f"{name}.csv") as tmp:
                frame.to_csv(tmp, index=False)
        _write_atomically(path / "evaluation.json", json.dumps(info, indent=2, default=str))

    def evaluation(self, run_id: str) -> tuple[dict, dict]:
        """A run's evaluation tables (by name, those written) and its info (both empty
        for a run never evaluated)."""
        path = self.path(run_id)
        tables = {n: pd.read_csv(path / f"{n}.csv") for n in self.EVALUATIONS
                  if (path / f"{n}.csv").exists()}
        info = path / "evaluation.json"
        return tables, (json.loads(info.read_text()) if info.exists() else {})

    def folds(self, run_id: str) -> pd.DataFrame:
        """A run's samples (``cell_ids``, ``year``) and their outer fold."""
        return pd.read_csv(self.path(run_id) / "folds.csv")

    # -- the current run of each group ----------------------------------------------------

    def registry(self) -> dict:
        """``latest.json``: per group, its current run and what it was trained on."""
        path = self.root / REGISTRY
        return json.loads(path.read_text()) if path.exists() else {}

    def entry(self, grid) -> dict:
        """The registry entry of a group (empty if it has none)."""
        return self.registry().get(group_name(grid.name, grid.level), {})

    def current(self, grid) -> str | None:
        """The current run of a group: the registry's (the one its predictions come
        from), else the newest readable one; None if the group has no run."""
        run_id = self.entry(grid).get("run_id")
        if run_id and (self.root / run_id / "model.json").exists():
            return run_id
        ids = self.ids(grid)
        return ids[0] if ids else None

    def set_current(self, grid, run_id: str, **info):
        """Make a run its group's current one, with what it was trained on (``info``)."""
        registry = self.registry()
        registry[group_name(grid.name, grid.level)] = {"run_id": run_id, **info}
        self.root.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.root / REGISTRY, json.dumps(registry, indent=2))

    # -- summaries ------------------------------------------------------------------------

    def write_summary(self, rows):
        """The summary of the current runs: ``summary.csv`` and ``summary.md``."""
        summary = pd.DataFrame(rows)
        if not len(summary):
            return
        self.root.mkdir(parents=True, exist_ok=True)
        summary.to_csv(self.root / "summary.csv", index=False)
        cols = [c for c in SUMMARY_COLUMNS if c in summary]
        _write_atomically(self.root / "summary.md", markdown_table(summary[cols]))

    def summary(self) -> pd.DataFrame | None:
        """The summary of the current runs (None before any run)."""
        path = self.root / "summary.csv"
        return pd.read_csv(path) if path.exists() else None

    def summary_markdown(self) -> str | None:
        """The summary as the Markdown table ``summary.md`` holds (None before any run)."""
        path = self.root / "summary.md"
        return path.read_text() if path.exists() else None


def markdown_table(df) -> str:
    """A data frame as a Markdown table, floats with three decimals."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
             for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, df.columns)) + " |",
             "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells]) + "\n"
