"""The pipeline stages, in one registry: each stage's name, what it does, where its
inputs are configured and what it writes. The CLI's commands, the ``pipeline/``
scripts and ``entropice run`` are derived from it; the work itself is in
:mod:`entropice.pipeline` (imported only when a stage runs, so the CLI starts fast)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One pipeline stage."""

    name: str
    help: str
    """One line for ``entropice <name> --help`` and the README."""
    inputs: str
    """Where the configuration names its inputs (``[era5] paths``)."""
    writes: str
    """What it writes."""
    source: bool = False
    """A source stage: ``run`` skips it when the configuration names no inputs for it."""

    def run(self, cfg, *, force=False, quiet=False):
        """Run the stage on every group of the configuration; ``[(grid, level, status)]``."""
        from . import pipeline

        return getattr(pipeline, f"stage_{self.name}")(cfg, force=force, quiet=quiet)

    def configured(self, cfg) -> bool:
        """Whether the configuration gives the stage its inputs."""
        if self.name == "grids":
            return True
        if self.name == "labels":
            section = cfg.get("labels", {})
            return bool(section.get("darts") or section.get("inventories"))
        if self.name in ("train", "predict"):
            return "train" in cfg and STAGES["labels"].configured(cfg)
        return bool(cfg.get(self.name, {}).get("paths"))


STAGES = {s.name: s for s in (
    Stage("grids", "Cells of every grid and level: ids, centres, areas, land fraction.",
          "[grids] (levels; land mask optional)",
          "cell_ids, lat, lon, area_km2, land_fraction"),
    Stage("labels", "RTS labels from the inventories: count, area, density and class per "
                    "cell and year.",
          "[labels] darts or [[labels.inventories]]",
          "rts_count, rts_area_km2, rts_density, rts_class", source=True),
    Stage("era5", "Climate features from ERA5 per cell and year.", "[era5] paths",
          "era5_*", source=True),
    Stage("arcticdem", "Terrain statistics from ArcticDEM per cell.", "[arcticdem] paths",
          "dem_*", source=True),
    Stage("alphaearth", "AlphaEarth embedding means (and principal components) per cell "
                        "and year.", "[alphaearth] paths", "emb_*", source=True),
    Stage("train", "eSPA+ and baselines on every group with spatial cross-validation; runs "
                   "go to models/<run_id>/ and a summary table to models/summary.md.",
          "[train] (and labels)", "a run per group in the run store"),
    Stage("predict", "Predicted class probabilities, class, entropy, expected RTS density, "
                     "uncertainty and novelty for every cell and year.", "the current runs",
          "pred_proba, pred_class, pred_entropy, pred_spread, pred_novelty, "
          "pred_fold_spread, pred_density"),
)}
"""Every stage, in the order ``run`` runs them."""


def stages_of(cfg) -> tuple[str, ...]:
    """The stages a configuration runs: grids, each source stage whose inputs it names,
    then train and predict if it has a [train] section and labels."""
    return tuple(name for name, s in STAGES.items() if s.configured(cfg))


def skipped_stages(cfg) -> tuple[str, ...]:
    """The source stages a configuration leaves out (no inputs named)."""
    return tuple(name for name, s in STAGES.items() if s.source and not s.configured(cfg))
