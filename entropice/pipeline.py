"""The pipeline stages: from raw files to the cube, one stage at a time.

Each stage reads its sources once and writes its variables into every (grid, level)
group of the cube. A stage records a hash of its configuration and the fingerprints
of its input files in each group; when both are unchanged the group is skipped
(``force`` redoes it). A failing stage leaves every group as it was: the groups are
staged and swapped in together once all are computed.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd

from .config import ConfigError, Domain, Inventory, read_toml, validate
from .cube import Cube, config_hash, fingerprint
from .grids import GRIDS, get_grid
from .stages import STAGES, skipped_stages, stages_of

log = logging.getLogger("entropice")


def load_config(path) -> dict:
    """Read a pipeline TOML file, checked against :mod:`entropice.config`'s schema;
    relative paths in it are relative to the file."""
    cfg = validate(read_toml(path), path)
    cfg["_dir"] = str(Path(path).parent.resolve())
    # the domain complete (every stage's hash holds it), its defaults the schema's
    cfg["domain"] = Domain(**cfg.get("domain", {})).model_dump(exclude_none=True)
    return cfg


def _path(cfg, value) -> Path:
    p = Path(value)
    return p if p.is_absolute() else Path(os.path.normpath(Path(cfg["_dir"]) / p))


def _paths(cfg, section, key="paths") -> list[str]:
    """Input files of a section (globs expanded, in order); an error if none exist."""
    values = cfg.get(section, {}).get(key)
    if not values:
        raise ConfigError(f"[{section}] {key} is empty: say where the {section} data are.")
    return _expand(cfg, values, f"[{section}] {key}")


def _expand(cfg, values, where) -> list[str]:
    """Files of a path, glob or URL (or a list of them), relative to the config."""
    values = [values] if isinstance(values, str) else values
    out = []
    for v in values:
        if "://" in str(v):
            out.append(str(v))
            continue
        p = _path(cfg, v)
        matches = sorted(glob.glob(str(p))) if any(c in str(p) for c in "*?[") else (
            [str(p)] if p.exists() else [])
        if not matches:
            raise ConfigError(f"{where}: no file matches {p}.")
        out.extend(matches)
    return out


def _groups(cfg):
    grids = cfg.get("grids", {})
    out = list(dict.fromkeys((name, int(level)) for name in GRIDS
                             for level in grids.get(name, [])))
    if not out:
        raise ConfigError("[grids] names no levels: give "
                          f"{' and/or '.join(f'{n} = [...]' for n in GRIDS)}.")
    for name, level in out:
        get_grid(name, level)  # a clear error for a level out of range
    return out


def _hash(cfg, section):
    return config_hash({"domain": cfg["domain"], section: cfg.get(section, {})})


SIDECARS = (".dbf", ".shx", ".prj", ".cpg", ".qix", ".sbn", ".sbx")
"""The files a shapefile is made of besides its ``.shp``."""


def _fingerprints(cfg, paths):
    """Each input's content fingerprint, keyed by its path relative to the config (so two
    files of one name in different folders are both tracked; a moved project is not
    stale); a shapefile's sidecar files count too."""
    out = {}
    for p in paths:
        if "://" in p:
            out[p] = p
            continue
        files = [Path(p)]
        if p.lower().endswith(".shp"):
            files += [q for q in sorted(Path(p).parent.glob(Path(p).stem + ".*"))
                      if q.suffix.lower() in SIDECARS]
        for f in files:
            out[os.path.relpath(f, cfg["_dir"])] = fingerprint(f)
    return out


def _progress(items, quiet, desc, unit="group"):
    if quiet:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=unit)


@contextlib.contextmanager
def _steps(items, quiet, desc, unit):
    """A progress bar over ``items`` updated by hand (``bar.update()``), silent when
    ``quiet``."""
    from tqdm.auto import tqdm

    with tqdm(total=len(items), desc=desc, unit=unit, disable=quiet) as bar:
        yield bar


def _advance(bar, done, total):
    """A progress bar at ``done`` of ``total`` (a total first known as the work starts)."""
    bar.total = total
    bar.update(done - bar.n)


DATA_HINT = ("Which real data sets to download, and from where: the README's table under "
             "'The pipeline' and docs/real-data.md. To try Entropice without them, the "
             "offline demo has its own configuration and cube: `entropice demo`.")


def check_inputs(cfg, stages):
    """Every input file the ``stages`` will read exists (URLs are left to the stage);
    a ConfigError naming the first missing one otherwise, before anything is written."""
    checks = {
        "grids": lambda: _land_path(cfg),
        "labels": lambda: _inventories(cfg),
        **{src: (lambda src=src: _paths(cfg, src))
           for src in ("era5", "arcticdem", "alphaearth")},
    }
    for stage in stages:
        if stage in checks and STAGES[stage].configured(cfg):
            try:
                checks[stage]()
            except ConfigError as err:
                raise ConfigError(f"{stage}: {err} Nothing was written. {DATA_HINT}") from None


def _land_path(cfg) -> Path | None:
    """The file of [grids] land (None: all land); an error if it is missing."""
    value = cfg.get("grids", {}).get("land")
    if not value:
        return None
    path = _path(cfg, value)
    if not path.exists():
        raise ConfigError(f"[grids] land: no file at {path}.")
    return path


def run_stage(stage: str, cfg: dict, *, force=False, quiet=False, scheduler=None):
    """Run one stage on every group; returns ``[(grid, level, "written" | "up to date")]``.
    Its input files are checked first: a missing one writes nothing."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}.")
    check_inputs(cfg, [stage])
    client = backend = nullcontext()
    if scheduler:
        import joblib
        from distributed import Client

        client = Client(scheduler)
        backend = joblib.parallel_config(backend="dask")  # the searches fan out too
    with client, backend:
        return STAGES[stage].run(cfg, force=force, quiet=quiet)


def _for_each_group(cfg, stage, cube, *, up_to_date, work, quiet, new_group=False,
                    prepare=None):
    """The loop of every stage: for each group of the configuration, ``work(name, level)``
    unless ``up_to_date(name, level)``; ``prepare(todo)`` first, with the groups to do
    (for work shared between them); ``[(grid, level, "written" | "up to date")]``."""
    groups = _groups(cfg)
    for name, level in groups:
        if not new_group and (name, level) not in cube:
            raise ConfigError(f"the cube has no group {name}/{level}: run the grids stage "
                              "first (`entropice grids`).")
    current = {g: up_to_date(*g) for g in groups}
    for name, level in groups:
        if current[name, level]:
            log.info("%s: %s/%s is up to date", stage, name, level)
    todo = [g for g in groups if not current[g]]
    if todo and prepare is not None:
        prepare(todo)
    for name, level in _progress(todo, quiet, stage):
        work(name, level)
    return [(name, level, "up to date" if current[name, level] else "written")
            for name, level in groups]


def _each_group(cfg, stage, inputs, compute, *, force, quiet, new_group=False, prepare=None,
                hashed=None, why=None):
    """Call ``compute(grid, level, cube, scratch)`` for every group not up to date, then
    write the results: all groups are staged first and swapped in together
    (:meth:`Cube.batch`), so a stage that fails on any group leaves every group as it
    was. ``scratch`` is a directory for parts written as they are made (the result may
    read them lazily), removed once the group is staged; ``prepare(todo, scratch)`` is
    called first with the groups to compute, and ``scratch(grid, level)``, which gives
    each group's directory (work shared between groups). ``hashed`` is more of what the
    results depend on, hashed with the stage's configuration.

    ``inputs`` are the fingerprints of what the stage reads, recorded with each group: a
    dict, or ``inputs(grid, level, cube)`` for inputs that differ by group (predict: the
    group's run and the records of the stages that wrote its features), read once per
    group, so that what is recorded is what was checked. A group redone because an input
    changed says which at INFO: ``why(key)`` (default: "KEY changed")."""
    cube = Cube.create(_path(cfg, cfg["cube"]))
    chash = _hash(cfg, stage) if hashed is None else config_hash(
        {"domain": cfg["domain"], stage: cfg.get(stage, {}), **hashed})

    @functools.cache
    def inputs_of(name, level):
        return dict(inputs(name, level, cube) if callable(inputs) else inputs)

    def up_to_date(name, level):
        """Whether the group's record of the stage is current; if not, what changed."""
        if force:
            return False
        now = inputs_of(name, level)
        if cube.is_up_to_date(name, level, stage, chash, now):
            return True
        record = (name, level) in cube and cube.provenance(name, level).get(stage)
        if record:  # written before: say what changed since
            before = record.get("inputs", {})
            if record.get("config_hash") != chash:
                log.info("%s: %s/%s: configuration changed", stage, name, level)
            for key in sorted(before.keys() | now.keys()):
                if before.get(key) != now.get(key):
                    log.info("%s: %s/%s: %s", stage, name, level,
                             f"{key} is no longer an input" if key not in now
                             else why(key) if why else f"{key} changed")
        return False

    scratches = {}  # a group's scratch directory, open from prepare until it is staged

    def scratch(name, level):
        if (name, level) not in scratches:
            scratches[name, level] = stack = contextlib.ExitStack()
            stack.path = stack.enter_context(cube.scratch())
        return scratches[name, level].path

    def write(name, level):
        try:
            ds = compute(name, level, cube, scratch(name, level))
            whole = new_group and not ((name, level) in cube and np.array_equal(
                cube.read(name, level).cell_ids.values, ds.cell_ids.values))
            (cube.write_group if whole else cube.add_variables)(
                ds, name, level, stage=stage, config_hash=chash, inputs=inputs_of(name, level))
            _check_not_empty(stage, name, level, cube, list(ds.data_vars))
        finally:
            scratches.pop((name, level)).close()
        log.info("%s: staged %s/%s", stage, name, level)

    with cube.batch(), contextlib.ExitStack() as cleanup:
        cleanup.callback(lambda: [s.close() for s in scratches.values()])
        done = _for_each_group(
            cfg, stage, cube, quiet=quiet, new_group=new_group, work=write,
            prepare=prepare and (lambda todo: prepare(todo, scratch)), up_to_date=up_to_date)
    if any(status == "written" for *_, status in done):
        log.info("%s: wrote %d group(s)", stage, sum(s == "written" for *_, s in done))
    return done


# -- the stages ----------------------------------------------------------------------------


def _check_not_empty(stage, name, level, cube, variables):
    """A source stage whose every value on a group is missing read nothing of its inputs
    there (a wrong CRS or extent): an error, not a group of NaN. Checked on the staged
    write (from the chunks it stored: nothing is read twice), which the error inside the
    stage's batch then discards."""
    if not STAGES[stage].source or not variables:
        return
    if len(cube.empty_variables(name, level, variables)) == len(variables):
        raise ConfigError(f"{stage}: every value on {name}/{level} is missing: the inputs "
                          f"({STAGES[stage].inputs}) do not cover any of its cells. Check "
                          "their CRS and extent against [domain] min_lat; nothing was "
                          "written.")


def _land(cfg):
    """The land mask or polygons of [grids] land (None: all land)."""
    path = _land_path(cfg)
    if path is None:
        return None, {}
    if path.suffix.lower() in (".tif", ".tiff", ".nc", ".zarr"):
        from .sources import remote

        # read whole now: a damaged file fails here, naming itself
        mask = remote.open_raster(path, "[grids] land mask", chunks=None)
        mask = mask.squeeze("band", drop=True)
        mask.name = "land"
        values = mask.values[np.isfinite(mask.values) & (mask.values != mask.rio.nodata)]
        if values.size and not (values.min() >= 0 and values.max() <= 1):
            raise ConfigError(f"[grids] land mask {path}: values from {values.min():g} to "
                              f"{values.max():g}; expected 1 for land, 0 for water (or a "
                              "land share between them): a damaged or wrong file.")
        return mask, _fingerprints(cfg, [str(path)])
    import warnings

    import geopandas as gpd

    from .aggregate.polygons import check_rows

    try:  # shapely's warnings on NaN coordinates: check_rows names the row below
        with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
            land = gpd.read_file(path)
    except Exception as err:  # noqa: BLE001 - the readers raise many types
        raise ConfigError(f"[grids] land: cannot read {path}: {err}; expected land "
                          "polygons (GeoPackage, Shapefile ...).") from None
    check_rows(land.geometry.values, f"[grids] land {path}")
    return land, _fingerprints(cfg, [str(path)])


def stage_grids(cfg, *, force=False, quiet=False):
    """Cells of every grid and level: ids, centres, areas and land fraction."""
    from .aggregate import land_fraction

    min_lat = cfg["domain"]["min_lat"]
    land, inputs = _land(cfg)

    def compute(name, level, cube, scratch):
        grid = get_grid(name, level)
        cells = grid.cells(min_lat)
        cells["land_fraction"] = (
            ("cells", np.ones(cells.sizes["cells"]),
             {"units": "1", "long_name": "land share of the cell area"}) if land is None
            else land_fraction(grid, land, min_lat).variable)
        return cells

    return _each_group(cfg, "grids", inputs, compute, force=force, quiet=quiet, new_group=True)


def _years(cfg, ds):
    years = cfg["domain"].get("years")
    if years is None or "year" not in ds.dims:
        return ds
    keep = [y for y in ds.year.values if y in set(years)]
    if not keep:
        raise ConfigError(f"none of the years {[int(y) for y in ds.year.values]} is among "
                          "[domain] years "
                          f"{years}.")
    return ds.sel(year=keep)


INVENTORY_KEYS = tuple(Inventory.model_fields)


def _inventories(cfg) -> list[dict]:
    """The RTS inventories of [labels]: ``darts`` (and ``coverage``), and every
    [[labels.inventories]] entry, each with its files and its rules."""
    section = cfg.get("labels", {})
    entries = [dict(e) for e in section.get("inventories", [])]
    if section.get("darts"):
        entries.insert(0, {"paths": section["darts"], **{
            k: section[k] for k in INVENTORY_KEYS[1:] if section.get(k) not in (None, "")}})
    if not entries:
        raise ConfigError("[labels] names no RTS inventory: give darts = \"...\" or "
                          "[[labels.inventories]] entries with paths = [...].")
    for i, e in enumerate(entries):
        where = "[labels] darts" if section.get("darts") and i == 0 else \
            f"[[labels.inventories]] entry {i + 1 - bool(section.get('darts'))}"
        if not e.get("paths"):
            raise ConfigError(f"{where}: paths is empty: say where the RTS inventory is.")
        e["files"] = _expand(cfg, e["paths"], f"{where} paths")
        e["coverage"] = (_expand(cfg, e["coverage"], f"{where} coverage")
                         if e.get("coverage") else None)
        e["where"] = where
    return entries


def _read_coverage(entry, path):
    """One coverage file of an inventory entry, with its CRS; errors name the file."""
    import warnings

    import geopandas as gpd

    from .aggregate.polygons import check_rows

    try:  # shapely's warnings on NaN coordinates: check_rows names the row below
        with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
            cov = gpd.read_file(path)
    except Exception as err:  # noqa: BLE001 - the readers raise many types
        raise ConfigError(f"{entry['where']} coverage: cannot read {path}: {err}") from None
    if cov.crs is None:
        raise ConfigError(f"{entry['where']} coverage: {path} has no CRS.")
    check_rows(cov.geometry.values, f"{entry['where']} coverage {path}")
    return cov


def _read_inventories(entries):
    """Every inventory's distinct RTS footprints, and the mapped land (None: all land),
    prepared once for every group (:func:`darts.prepare`)."""
    import geopandas as gpd

    from .sources import darts

    frames, coverage, everywhere = [], [], False
    for e in entries:
        rules = {k: e.get(k) for k in ("layer", "year_column", "date_column", "year", "crs")}
        parts = [darts.open(f, **rules) for f in e["files"]]
        for gdf, f in zip(parts, e["files"]):
            log.info("labels: %s: %d footprints (%d RTS), years %s", f, len(gdf),
                     int(gdf.rts.sum()), sorted(set(gdf.year.tolist())))
        frames.extend(parts)
        years = sorted(set().union(*(set(g.year) for g in parts)))
        if e["coverage"]:
            for f in e["coverage"]:
                cov = _read_coverage(e, f)
                if "year" not in cov.columns:  # one footprint for the inventory's years
                    cov = pd.concat([cov[["geometry"]].assign(year=y) for y in years])
                coverage.append(cov[["year", "geometry"]])
        elif all(g.rts.all() for g in parts):
            everywhere = True  # an inventory without coverage maps the whole domain
    crs = frames[0].crs
    gdf = gpd.GeoDataFrame(pd.concat([g.to_crs(crs) for g in frames], ignore_index=True),
                           geometry="geometry", crs=crs)
    if everywhere:
        if coverage or not gdf.rts.all():
            log.info("labels: an inventory without coverage maps the whole domain; the "
                     "coverage of the others is not used")
        return darts.prepare(gdf[gdf.rts])
    cov = (gpd.GeoDataFrame(pd.concat([c.to_crs(crs) for c in coverage], ignore_index=True),
                            geometry="geometry", crs=crs) if coverage else None)
    return darts.prepare(gdf, cov)


def stage_labels(cfg, *, force=False, quiet=False):
    """RTS labels from the inventories: count, area, density and class per cell and year."""
    from .sources import darts

    section = cfg.get("labels", {})
    entries = _inventories(cfg)
    inputs = _fingerprints(cfg, [f for e in entries
                                 for f in e["files"] + (e["coverage"] or [])])
    sources = functools.cache(lambda: _read_inventories(entries))

    def compute(name, level, cube, scratch):
        gdf, coverage = sources()
        land = cube.read(name, level).land_fraction.values
        ds = darts.to_cells(gdf, get_grid(name, level), land_fraction=land, coverage=coverage,
                            bin_edges=section.get("bin_edges", darts.DEFAULT_BIN_EDGES),
                            min_lat=cfg["domain"]["min_lat"], prepared=True, store=scratch)
        return _years(cfg, ds)

    return _each_group(cfg, "labels", inputs, compute, force=force, quiet=quiet)


def stage_era5(cfg, *, force=False, quiet=False):
    """Climate features from ERA5 per cell and year."""
    from .sources import era5

    paths = _paths(cfg, "era5")
    inputs = _fingerprints(cfg, paths)
    section = cfg.get("era5", {})

    @functools.cache
    def features():
        ds = era5.open(paths, min_lat=cfg["domain"]["min_lat"], units=section.get("units"),
                       daily_means=section.get("daily_means"))
        # every year feeds the trend; only the config's years go onto the cells
        return _years(cfg, era5.features(ds, year_start_month=cfg["domain"][
            "year_start_month"], trend_window=section.get("trend_window", 10)))

    def compute(name, level, cube, scratch):
        return era5.features_to_cells(features(), get_grid(name, level),
                                      min_lat=cfg["domain"]["min_lat"], store=scratch)

    return _each_group(cfg, "era5", inputs, compute, force=force, quiet=quiet)


def _bbox(cfg):
    """The domain's lon/lat extent, a degree wider than its cells' centres (for STAC
    catalogues and what is fetched of remote rasters)."""
    return (-180.0, max(-90.0, float(cfg["domain"]["min_lat"]) - 1.0), 180.0, 90.0)


def _finest(cfg) -> dict:
    """The finest configured level of each grid system: every level of a system is
    derived from it, whichever groups are redone."""
    finest = {}
    for name, level in _groups(cfg):
        finest[name] = max(finest.get(name, level), level)
    return finest


def stage_arcticdem(cfg, *, force=False, quiet=False):
    """Terrain statistics from ArcticDEM per cell: the terrain computed once, and every
    level of a grid system from one pixel index (``arcticdem.to_levels``)."""
    from .sources import arcticdem

    paths = _paths(cfg, "arcticdem")
    inputs = _fingerprints(cfg, paths)
    stats = tuple(cfg.get("arcticdem", {}).get("stats", arcticdem.STATS))
    results = {}
    finest = _finest(cfg)

    def prepare(todo, scratch):
        log.info("arcticdem: terrain onto %s in one pass",
                 ", ".join(f"{n}/{lv}" for n, lv in todo))
        dem = arcticdem.open(paths, bbox=_bbox(cfg))
        # steps: each block counted and reduced, then each level assembled; the total is
        # reported before the work starts (a DEM in one block shows its steps too)
        with _steps([], quiet, "arcticdem", "step") as bar:
            results.update(arcticdem.to_levels(
                dem, [get_grid(*g) for g in todo],
                stats=stats, min_lat=cfg["domain"]["min_lat"],
                finest=[get_grid(n, lv) for n, lv in finest.items()],
                progress=lambda done, total: _advance(bar, done, total)))

    def compute(name, level, cube, scratch):
        return results.pop((name, level))

    return _each_group(cfg, "arcticdem", inputs, compute, force=force, quiet=quiet,
                       prepare=prepare, hashed={"levels derived from": finest})


def stage_alphaearth(cfg, *, force=False, quiet=False):
    """Satellite embedding means (and principal components) per cell and year: each
    year's raster reduced once per grid system, every level from the index of its
    finest configured one (``alphaearth.to_levels``)."""
    from .sources import alphaearth

    paths = _paths(cfg, "alphaearth")
    inputs = _fingerprints(cfg, paths)
    n_pc = cfg.get("alphaearth", {}).get("n_components") or None
    results = {}
    finest = _finest(cfg)

    def prepare(todo, scratch):
        rasters = alphaearth.open(paths, bbox=_bbox(cfg), keep_years=cfg["domain"].get("years"))
        log.info("alphaearth: %d year(s) onto %s in one pass each", len(rasters),
                 ", ".join(f"{g}/{lv}" for g, lv in todo))
        with _steps(rasters, quiet, "alphaearth", "year") as bar:
            results.update(alphaearth.to_levels(
                rasters, [get_grid(*g) for g in todo], n_components=n_pc,
                min_lat=cfg["domain"]["min_lat"], stores={g: scratch(*g) for g in todo},
                finest=[get_grid(n, lv) for n, lv in finest.items()],
                progress=lambda year: bar.update()))

    def compute(name, level, cube, scratch):
        return results.pop((name, level))

    return _each_group(cfg, "alphaearth", inputs, compute, force=force, quiet=quiet,
                       prepare=prepare, hashed={"levels derived from": finest})


def run_store(cfg):
    """The runs of a configuration ([train] models, default models/ beside the config)."""
    from .runs import RunStore

    return RunStore(_path(cfg, cfg.get("train", {}).get("models", "models")))


def stage_train(cfg, *, force=False, quiet=False):
    """eSPA+ and the baselines on every group, with spatial cross-validation; each run is
    stored in the run store (models/<run_id>/), and a summary table beside them."""
    from .runs import train_group

    if not STAGES["labels"].configured(cfg):
        raise ConfigError("train needs labels: [labels] names no RTS inventory (give darts "
                          "= \"...\" or [[labels.inventories]] entries).")
    cube = Cube(_path(cfg, cfg["cube"]))
    section = _present(cfg, cfg.get("train", {}))  # the features the sources give
    chash = config_hash({"train": section, "domain": cfg["domain"]})
    store = run_store(cfg)
    cube.set_attrs(models=str(store.root.resolve()))  # where the dashboard finds runs
    rows = []

    def data_of(name, level):  # the data trained on: every stage's record but predict's
        return config_hash({k: v for k, v in cube.provenance(name, level).items()
                            if k != "predict"})

    def up_to_date(name, level):
        entry = store.entry(get_grid(name, level))
        current = not force and entry.get("config_hash") == chash and entry.get(
            "data") == data_of(name, level)
        if current:
            rows.extend(entry.get("rows", []))
        return current

    def train(name, level):
        run = train_group(cube.read(name, level), section, store=store, quiet=quiet)
        entry_rows = [{"grid": name, "level": level, "model": m, **{
            k: v for k, v in met.items() if k != "confusion_matrix"},
            **({"land_for_90pct_rts": run["triage"][m]["land_share_needed"]["0.90"]}
               if run["triage"] else {})} for m, met in run["metrics"].items()]
        store.set_current(get_grid(name, level), run["run_id"], config_hash=chash,
                          data=data_of(name, level), rows=entry_rows)
        rows.extend(entry_rows)

    done = _for_each_group(cfg, "train", cube, up_to_date=up_to_date, work=train, quiet=quiet)
    order = {(name, level): k for k, (name, level, _) in enumerate(done)}
    rows.sort(key=lambda r: order.get((r["grid"], int(r["level"])), len(order)))  # stable
    store.write_summary(rows)
    return done


def _present(cfg, section):
    """The [train] section without the feature patterns of sources the config leaves out."""
    from .runs import DEFAULTS

    features = section.get("features", DEFAULTS["features"])
    # the feature prefix each skipped source stage writes ("era5_" of "era5_*")
    prefix = {st: STAGES[st].writes.removesuffix("*") for st in skipped_stages(cfg)
              if STAGES[st].writes.endswith("_*")}
    gone = [st for st, p in prefix.items() if any(f.startswith(p) for f in features)]
    keep = [f for f in features if not any(f.startswith(prefix[st]) for st in gone)]
    if gone:
        log.warning("train: no %s in the configuration: the features %s are left out",
                    " or ".join(gone), ", ".join(sorted(set(features) - set(keep))))
    if not keep:
        raise ConfigError("[train] features: none of the configured sources gives any of "
                          f"{features}.")
    return {**section, "features": keep} if gone else section


def stage_predict(cfg, *, force=False, quiet=False):
    """Predictions of each group's current run for every cell and year. A group's
    predictions are up to date while its run and the provenance records of the stages
    that wrote the run's features (:meth:`Cube.writers`) are those they were made from:
    features rewritten without retraining (`entropice era5` rerun) are predicted anew."""
    from .runs import predict_group

    store = run_store(cfg)

    @functools.cache
    def run_of(name, level):  # read once: the run predicted with is the run recorded
        return store.entry(get_grid(name, level)).get("run_id")

    def inputs(name, level, cube):
        run_id = run_of(name, level)
        features = [] if run_id is None else [
            f for f in store.meta(run_id)["feature_names"] if not f.endswith("_missing")]
        return {"run": run_id, **cube.writers(name, level, features)}

    def compute(name, level, cube, scratch):
        run_id = run_of(name, level)
        if run_id is None:
            raise ConfigError(f"no trained run for {name}/{level}: run the train stage first "
                              "(`entropice train`).")
        return predict_group(cube.read(name, level), store.load(run_id), store=scratch)

    def why(key):
        return ("a new run" if key == "run" else f"{key} rewritten") + \
            " since the last prediction"

    return _each_group(cfg, "predict", inputs, compute, force=force, quiet=quiet, why=why)


def parse_group(text, where="--group") -> tuple[str, int]:
    """``"h3/5"`` as ``("h3", 5)``; a clear error naming ``where`` otherwise."""
    name, _, level = str(text).partition("/")
    if name not in GRIDS or not level.isdigit():
        raise ConfigError(f"{where} takes GRID/LEVEL such as h3/5 (grids: "
                          f"{', '.join(GRIDS)}); got {text!r}.")
    get_grid(name, int(level))  # a level out of range
    return name, int(level)


def coverage_regions(cfg):
    """The inventories' coverage footprints with their ``region`` (a footprint's own
    ``region`` column, else its file's name and row), or None without coverage."""
    import geopandas as gpd

    parts = []
    for e in _inventories(cfg):
        for f in e["coverage"] or []:
            cov = _read_coverage(e, f)
            names = (cov["region"].astype(str) if "region" in cov.columns else
                     pd.Series([f"{Path(f).stem} {i + 1}" for i in range(len(cov))]))
            parts.append(gpd.GeoDataFrame({"region": names.values},
                                          geometry=cov.geometry.values, crs=cov.crs).to_crs(4326))
    if not parts:
        return None
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry",
                            crs=4326).dissolve("region").reset_index()


def _with_regions(cube, name, level, coverage):
    """A group (lazy) and the labelled region of each of its cells."""
    from .runs import transfer

    ds = cube.read(name, level)
    return ds, transfer.cell_regions(ds, coverage)


def evaluate_runs(cfg, *, force=False, quiet=False, repeats=None, groups=None,
                  search=None):
    """Each group's current run measured beyond its folds (:mod:`entropice.runs.transfer`):
    leave-one-region-out transfer, learning curves by labelled area and temporal
    validation, written into the run (a run evaluated with as many draws from the same
    data is left as it is, unless ``force``; the data: the provenance records of the
    stages that wrote what the measures read, the run's features, the labels and the
    cells, and the coverage files' fingerprints, so that a rerun of `entropice labels`
    redoes it). The groups and the learning curves' draws are ``groups`` and
    ``repeats``, else [evaluate] ``groups`` (``["h3/4"]``; default every group) and
    ``repeats`` (default 3). eSPA+'s parameters come from a search in each split on its
    training samples alone (as training searches them;
    :data:`~entropice.runs.transfer.SEARCH`), so that no held-out region or later year
    chooses them, or with ``search`` false ([evaluate] ``search``) are the run's own.
    The tables' figures are drawn into the run too (:mod:`entropice.runs.figures`).
    Returns {(grid, level): (run_id, tables, info)}."""
    from .runs import figures, transfer

    section = cfg.get("evaluate", {})
    search = bool(section.get("search", True)) if search is None else search
    parameters = ("eSPA+ searched in each split on its training samples" if search else
                  "eSPA+ with the run's chosen parameters (searched on every labelled "
                  "sample)") + ", the baselines untuned"
    repeats = int(repeats or section.get("repeats", 3))
    if groups is None and section.get("groups"):
        groups = [parse_group(g, "[evaluate] groups") for g in section["groups"]]
    store = run_store(cfg)
    cube = Cube(_path(cfg, cfg["cube"]))
    labelled = STAGES["labels"].configured(cfg)
    coverage = coverage_regions(cfg) if labelled else None
    files = _fingerprints(cfg, [f for e in _inventories(cfg) for f in e["coverage"] or []]
                          ) if labelled else {}
    out = {}
    for name, level in groups or _groups(cfg):
        run_id = store.current(get_grid(name, level))
        if run_id is None:
            raise ConfigError(f"no trained run for {name}/{level}: run the train stage first "
                              "(`entropice train`).")
        meta = store.meta(run_id)
        features = [f for f in meta["feature_names"] if not f.endswith("_missing")]
        data = {**files, **cube.writers(name, level, [
            *features, "rts_class", "rts_count", "rts_area_km2", "lat", "lon", "area_km2",
            "land_fraction"])}
        tables, info = store.evaluation(run_id)
        if (not force and info.get("run_id") == run_id and info.get("repeats") == repeats
                and info.get("parameters") == parameters):
            before = info.get("data", {})
            rewritten = sorted(k for k in before.keys() | data.keys()
                               if before.get(k) != data.get(k))
            for key in rewritten:
                log.info("evaluate %s/%s: %s rewritten since the last evaluation", name,
                         level, key)
            if not rewritten:
                if not figures.drawn(store.path(run_id), tables):  # evaluated before them
                    figures.write(store.path(run_id), tables, info,
                                  *_with_regions(cube, name, level, coverage))
                out[name, level] = (run_id, tables, info)
                continue
        params = transfer.SEARCH if search else meta.get("best_params") or None
        # the run's own features and target: the same models as its folds measured
        section = {**cfg.get("train", {}), "target": meta.get("target", "rts_class"),
                   "features": features}
        ds, regions = _with_regions(cube, name, level, coverage)
        samples = transfer.Samples(ds, section, regions)  # read once for every measure
        steps = [("transfer", functools.partial(transfer.leave_one_region_out, ds, regions,
                                                section, params, samples=samples)),
                 ("learning_curve", functools.partial(transfer.learning_curve, ds, regions,
                                                      section, params, repeats=repeats,
                                                      samples=samples)),
                 ("temporal", functools.partial(transfer.temporal_validation, ds, section,
                                                params, samples=samples))]
        counts = pd.Series(regions[regions != transfer.UNLABELLED]).value_counts()
        # what the samples allow: two regions to hold one out, one more than a learning
        # curve holds out, two labelled years for the next one
        n_regions = len(set(samples.regions) - {transfer.UNLABELLED})
        n_years = len(np.unique(samples.years))
        possible = {"transfer": n_regions >= 2, "learning_curve": n_regions > transfer.N_TEST,
                    "temporal": n_years >= 2}
        skipped = {k: v for k, v in {
            "transfer": f"{n_regions} labelled region(s): none to hold out",
            "learning_curve": f"{n_regions} labelled region(s): a learning curve needs "
                              f"{transfer.N_TEST + 1} ({transfer.N_TEST} held out)",
            "temporal": f"{n_years} labelled year(s): no next year to predict"}.items()
            if not possible[k]}
        for what, why in skipped.items():
            log.warning("evaluate %s/%s: no %s (%s)", name, level, what, why)
        tables, changed = {}, None
        todo = [(what, step) for what, step in steps if possible[what]]
        fits = transfer.planned_fits(samples, repeats)
        # a step per fit (split x model), every measure's counted before the first
        with _steps(range(sum(fits[what] for what, _ in todo)), quiet,
                    f"evaluate {name}/{level}", "fit") as bar:
            for what, step in todo:
                bar.set_description(f"evaluate {name}/{level} {what}")
                result = step(bar=bar)
                if what == "temporal":
                    result, changed = result
                tables[what] = result
        info = {"run_id": run_id, "repeats": repeats, "data": data,
                "regions": counts.to_dict(),
                "regions_from": "coverage" if coverage is not None else "k-means",
                "labels_changed_share": (None if changed is None or np.isnan(changed)
                                         else changed), "skipped": skipped,
                "parameters": parameters}
        store.write_evaluation(run_id, tables, info)
        figures.write(store.path(run_id), tables, info, ds, regions)
        out[name, level] = (run_id, tables, info)
    return out


def run_all(cfg, *, force=False, quiet=False, scheduler=None, stages=None):
    """Run the stages in order (by default those the configuration names inputs for),
    once every input file of every one of them is found: a missing file writes nothing."""
    stages = stages_of(cfg) if stages is None else stages
    check_inputs(cfg, stages)
    return {s: run_stage(s, cfg, force=force, quiet=quiet, scheduler=scheduler) for s in stages}


__all__ = ["ConfigError", "load_config", "run_all", "run_stage"]
