"""The ``entropice`` command: one sub-command per pipeline stage, the demo and the cube."""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

import typer

from . import __version__
from .stages import STAGES


def _bounded_memory():
    """Settings for a process that runs stages: the stages read each raster block once,
    so GDAL's block cache (5 % of the RAM by default) would only hold memory; and large
    arrays are mapped and unmapped by the allocator rather than kept in its heap once
    freed (glibc raises that threshold with every free), so that a stage's memory falls
    back between its parts instead of growing by fragments."""
    os.environ.setdefault("GDAL_CACHEMAX", "256")
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 2**20)  # M_MMAP_THRESHOLD: 1 MiB, fixed
    except (OSError, AttributeError):  # not glibc
        pass


_bounded_memory()

app = typer.Typer(
    name="entropice",
    help=(
        "Entropice: where are Retrogressive Thaw Slumps dense across the Arctic? "
        "Build the multi-resolution grid cube, fit eSPA+ and explore it."
    ),
    no_args_is_help=True,
    add_completion=False,
)

CONFIG = typer.Option(Path("pipeline/config.toml"), "--config", "-c",
                      help="Pipeline configuration (TOML).")
FORCE = typer.Option(False, "--force", help="Redo groups that are up to date.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
SCHEDULER = typer.Option(None, "--scheduler",
                         help="dask.distributed scheduler address (tcp://...) for raster work.")
LOG_LEVEL = typer.Option("WARNING", "--log-level", help="DEBUG, INFO, WARNING or ERROR.")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"entropice {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Entropice command line."""


def _fail(err: Exception):
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(1)


def _setup_logging(level: str):
    logging.basicConfig(level=getattr(logging, level.upper(), logging.WARNING),
                        format="%(levelname)s %(name)s: %(message)s")


def _run(stages, config, force, quiet, scheduler, log_level, only=None):
    from .cube import CubeError
    from .grids import GRIDS
    from .pipeline import check_inputs, load_config, parse_group, run_stage, run_store

    _setup_logging(log_level)
    try:
        cfg = load_config(config)
        if only:  # "h3/5" ...: restrict the groups
            picked = {}
            for name, level in (parse_group(g) for g in only):
                picked.setdefault(name, []).append(level)
            cfg["grids"] = {**cfg.get("grids", {}),
                            **{name: picked.get(name, []) for name in GRIDS}}
        check_inputs(cfg, stages)  # every stage's inputs, before the first one writes
        for stage in stages:
            done = run_stage(stage, cfg, force=force, quiet=quiet, scheduler=scheduler)
            written = sum(1 for *_, status in done if status == "written")
            typer.echo(f"{stage}: {written} group(s) written, {len(done) - written} up to date")
            summary = run_store(cfg).summary_markdown() if stage == "train" else None
            if summary:
                typer.echo(summary)
    except (ValueError, CubeError) as err:
        _fail(err)


def _stage_command(stage: str):
    def command(config: Path = CONFIG, force: bool = FORCE, quiet: bool = QUIET,
                scheduler: str | None = SCHEDULER, log_level: str = LOG_LEVEL) -> None:
        _run([stage], config, force, quiet, scheduler, log_level)

    command.__doc__ = STAGES[stage].help
    return command


for _stage in STAGES.values():
    if _stage.name != "train":
        app.command(_stage.name, help=_stage.help)(_stage_command(_stage.name))


@app.command("train", help=STAGES["train"].help)
def train_command(config: Path = CONFIG, force: bool = FORCE, quiet: bool = QUIET,
                  scheduler: str | None = SCHEDULER, log_level: str = LOG_LEVEL,
                  all_groups: bool = typer.Option(False, "--all",
                                                  help="Every grid and level of the config "
                                                       "(the default without --group)."),
                  group: list[str] = typer.Option(None, "--group",
                                                  help="Only this group, as GRID/LEVEL "
                                                       "(h3/5); repeatable.")) -> None:
    if all_groups and group:
        _fail(ValueError("--all and --group exclude each other."))
    _run(["train"], config, force, quiet, scheduler, log_level, only=group)


@app.command("evaluate")
def evaluate_command(config: Path = CONFIG, force: bool = FORCE, quiet: bool = QUIET,
                     log_level: str = LOG_LEVEL,
                     repeats: int = typer.Option(None, "--repeats", min=1,
                                                 help="Draws of held-out regions for the "
                                                      "learning curves (default: [evaluate] "
                                                      "repeats, else 3)."),
                     group: list[str] = typer.Option(None, "--group",
                                                     help="Only this group, as GRID/LEVEL "
                                                          "(h3/5); repeatable.")) -> None:
    """Each group's current run beyond its folds: leave-one-region-out transfer, learning
    curves by labelled area and temporal validation, written into the run."""
    from .cube import CubeError
    from .pipeline import evaluate_runs, load_config, parse_group

    _setup_logging(log_level)
    try:
        cfg = load_config(config)
        groups = [parse_group(g) for g in group] if group else None
        done = evaluate_runs(cfg, force=force, quiet=quiet, repeats=repeats, groups=groups)
    except (ValueError, CubeError) as err:
        _fail(err)
    for (name, level), (run_id, tables, info) in done.items():
        typer.echo(f"\n{name}/{level}, run {run_id}: {len(info['regions'])} labelled regions "
                   f"({info['regions_from']}); written to its run directory")
        typer.echo(evaluation_summary(tables, info))


def evaluation_summary(tables, info) -> str:
    """The evaluation's headline figures as text: ROC AUC of P(any RTS) per model, on
    held-out regions, along the learning curve and on the next year."""
    from .runs import markdown_table
    from .runs.transfer import change_note

    out = [f"no {what}: {why}" for what, why in info.get("skipped", {}).items()]
    if "transfer" in tables:
        out.append("leave-one-region-out ROC AUC (mean over regions, worst region):")
        out.append(markdown_table(tables["transfer"].groupby("model", sort=False).roc_auc
                                  .agg(["mean", "min"]).round(3).reset_index()))
    if "learning_curve" in tables:
        curve = tables["learning_curve"].groupby(["train_regions", "model"], sort=False).agg(
            land_km2=("train_land_km2", "mean"), roc_auc=("roc_auc", "mean"),
            land_for_90pct_rts=("land_for_90pct_rts", "mean")).round(3).reset_index()
        curve["land_km2"] = curve["land_km2"].round().astype(int)
        out.append("learning curve (held-out regions; mean over draws; nan: the held-out "
                   "cells all hold RTS, or none):")
        out.append(markdown_table(curve))
    if "temporal" in tables:
        out.append("next year (trained on the years before):")
        out.append(markdown_table(tables["temporal"].groupby("model", sort=False)[
            ["roc_auc", "balanced_accuracy"]].mean().round(3).reset_index()))
    note = change_note(info)
    if "temporal" in tables and note:
        out.append(note)
    return "\n".join(out)


@app.command("run")
def run_all(config: Path = CONFIG, force: bool = FORCE, quiet: bool = QUIET,
            scheduler: str | None = SCHEDULER, log_level: str = LOG_LEVEL) -> None:
    """Run every stage in order: grids, then labels, era5, arcticdem and alphaearth where
    the configuration names their inputs, then train and predict when it has a train
    section."""
    from .pipeline import ConfigError, load_config
    from .stages import skipped_stages, stages_of

    try:
        cfg = load_config(config)
    except ConfigError as err:
        _fail(err)
    stages = list(stages_of(cfg))
    skipped = skipped_stages(cfg)
    if skipped:
        typer.echo(f"skipped (no inputs in {config}): {', '.join(skipped)}")
    if "train" in cfg and "train" not in stages:
        typer.echo("skipped: train, predict (they need labels: [labels] names no RTS "
                   "inventory)")
    _run(stages, config, force, quiet, scheduler, log_level)


@app.command("demo")
def demo(
    cube: Path = typer.Option(Path("data/cube.zarr"), "--cube", help="Where to build the cube."),
    force: bool = FORCE, quiet: bool = QUIET, log_level: str = LOG_LEVEL,
) -> None:
    """Build a demo cube with no network: real land, terrain and climate from data that
    ships in packages, synthetic RTS and embeddings; then say how to explore it."""
    from . import demo as demo_source
    from .cube import CubeError

    _setup_logging(log_level)
    try:
        demo_source.build(cube, force=force, quiet=quiet)
    except (ValueError, CubeError) as err:
        _fail(err)
    from .cube import Cube
    from .runs import RunStore

    store = RunStore.of_cube(cube, Cube(cube).attrs)
    summary = store.summary_markdown()
    if summary:
        typer.echo("\neSPA+ beside the baselines, out-of-fold on spatial folds:\n\n"
                   + summary)
    for key, entry in store.registry().items():
        tables, info = store.evaluation(entry["run_id"])
        if tables:
            typer.echo(f"\n{key} on regions and years it never trained on "
                       f"(`entropice evaluate`; notebook 05):\n")
            typer.echo(evaluation_summary(tables, info))
    typer.echo(f"\nThe demo cube is at {cube}. Explore it on a map with\n\n"
               f"    entropice app --cube {cube}\n\n"
               f"(or `panel serve app/ --args --cube {cube}`), or read it with\n\n"
               f"    entropice cube info {cube}")


@app.command("app")
def app_command(
    cube: Path = typer.Option(Path("data/cube.zarr"), "--cube", help="The cube to show."),
    models: Path = typer.Option(None, "--models", help="Model runs (default: where the "
                                "cube's last training put them, else beside the cube)."),
    address: str = typer.Option("127.0.0.1", "--address",
                                help="Interface to listen on (0.0.0.0: every one; a "
                                "client on another machine is still refused)."),
    port: int = typer.Option(5006, "--port"),
    show: bool = typer.Option(False, "--show", help="Open a browser tab."),
) -> None:
    """Serve the dashboard (the same page as `panel serve app/`) to this machine: it
    listens on 127.0.0.1 unless --address says otherwise, and refuses other machines'
    sessions whatever the address (it has no login; `panel serve app/` has)."""
    import panel as pn

    from .dashboard import build
    from .dashboard.page import ALLOW_REMOTE

    if not Path(cube).exists():
        _fail(ValueError(f"no cube at {cube}: build one with `entropice demo`."))
    if os.environ.get(ALLOW_REMOTE) == "1":
        _fail(ValueError(f"{ALLOW_REMOTE}=1: `entropice app` has no login, so it serves "
                         "this machine only; serve other machines with `panel serve app/` "
                         "and --basic-auth or --oauth-provider (see the README)."))
    typer.echo(f"Serving the dashboard of {cube} at http://{address}:{port}/app (Ctrl+C stops)")
    pn.serve({"app": lambda: build(cube, models)}, address=address, port=port, show=show,
             websocket_origin=[f"{address}:{port}", f"localhost:{port}"], title="Entropice",
             print_url=False)


config_app = typer.Typer(help="Check a pipeline configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(
    path: Path = typer.Argument(Path("pipeline/config.toml"),
                                help="Pipeline configuration (TOML)."),
) -> None:
    """Check a configuration against the schema (unknown keys, types, ranges) and print
    what it resolves to: every key with its default, paths resolved, files matched."""
    from .config import ConfigError, check

    try:
        typer.echo(check(path))
    except ConfigError as err:
        _fail(err)


cube_app = typer.Typer(help="Inspect the cube.", no_args_is_help=True)
app.add_typer(cube_app, name="cube")


@cube_app.command("info")
def cube_info(
    path: str = typer.Argument("data/cube.zarr", help="Path of the cube (a zarr store)."),
) -> None:
    """Print the cube's grids, levels, cell counts, variables with units and provenance."""
    from .cube import Cube, CubeError

    try:
        typer.echo(Cube(path).info())
    except CubeError as err:
        _fail(err)


@cube_app.command("check")
def cube_check(
    path: str = typer.Argument("data/cube.zarr", help="Path of the cube (a zarr store)."),
    record: bool = typer.Option(False, "--record",
                                help="For groups written by an older entropice (no "
                                     "manifest): decode every chunk and, if all decode, "
                                     "record their manifest."),
) -> None:
    """Verify every chunk of every group against the checksums recorded when it was
    written: one line per chunk missing, corrupt or not in the manifest (or per group
    whose metadata is garbage), with the stage to rerun; exit code 1 if there is any."""
    from .cube import Cube, CubeError

    try:
        cube = Cube(path)
        problems, notes, chunks = cube.check(record=record)
    except CubeError as err:
        _fail(err)
    for line in notes + problems:
        typer.echo(line)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"cube ok: {len(cube.groups())} groups, {chunks} chunks checked")
