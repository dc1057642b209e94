"""The on-disk cube: one zarr (v3) store, one group per grid and level.

Every group is an ``xarray.Dataset`` on dimension ``cells`` with the coordinate
``cell_ids`` that ``xdggs.decode`` reads. Writes are atomic: a group is written in
full to a staging directory inside the store and swapped into place with one
rename, so a killed process leaves the previous group readable; a write that fails
(a full disk) removes its staging directory and raises a one-line ``CubeError``.
Writers serialise: each holds its group's lock file (``.locks/h3_4.lock``) from reading
the group to swapping the new one in, so that concurrent writers lose nothing. Each write
records its stage's provenance (config hash, input fingerprints, version, time) in the
group's attributes, which is how stages know they are up to date, and its manifest:
the key and checksum of every chunk it stored, against which every read is checked (a
chunk gone, damaged or undecodable raises a ``CubeError`` naming it, never reads as fill
values; a group another writer swapped in after it was opened is named as such).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import xarray as xr
from zarr.storage import LocalStore

from . import __version__
from .errors import CubeError, _write_error
from .errors import CubeWriteError as CubeWriteError  # re-exported
from .grids import get_grid
from .locks import LOCKS as LOCKS  # re-exported
from .locks import _acquire, _alive, _locked, _release
from .manifest import (
    MANIFEST,
    PROVENANCE,
    _CheckedStore,
    _Group,
    _group_attrs,
    _naming_chunks,
    _provenance,
    _seal,
    _set_group_attrs,
    _warn_unchecked,
    _write_json,
)

SCHEMA_VERSION = 1
DEFAULT_PATH = Path("data/cube.zarr")
STAGING = ".staging"
_CELL_VARS = ("lat", "lon", "area_km2", "land_fraction")
log = logging.getLogger("entropice")


# -- atomic directory swaps ---------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _swap_into_place(staged: Path, target: Path):
    """Put ``staged`` at ``target``, or raise with ``target`` as it was; after an
    exchange the old ``target`` is at ``staged``, for the caller to remove."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.rename(staged, target)
        return
    if _exchange(staged, target):
        return
    # elsewhere: two renames, with the old group put back if the second fails
    old = staged.with_name(staged.name + ".old")
    os.rename(target, old)
    try:
        os.rename(staged, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _install(staged: Path, target: Path):
    """Swap a staged group into place; the staging directory never outlives the call,
    and once the new group is in place, failing to remove the old one is no error."""
    try:
        _swap_into_place(staged, target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _stage_copy(src: Path, dst: Path, skip=()):
    """Copy a group for editing: chunk files are hard-linked (never written in place:
    replaced variables are skipped and written anew), metadata files copied."""
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        if rel.parts and rel.parts[0] in skip:
            dirs[:] = []
            continue
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for f in files:
            s, d = Path(root) / f, dst / rel / f
            if f == "zarr.json":
                shutil.copy2(s, d)
            else:
                try:
                    os.link(s, d)
                except OSError:
                    shutil.copy2(s, d)


# -- fingerprints and provenance ----------------------------------------------------------


def config_hash(config) -> str:
    """Stable short hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(path) -> str:
    """Content fingerprint of a file or directory (size, and a hash of the bytes).

    Files above 64 MiB hash their first and last 8 MiB with the size and mtime.
    """
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(path)).encode())
                h.update(fingerprint(p).encode())
        return h.hexdigest()[:16]
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= 64 * 2**20:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
        else:
            h.update(f.read(8 * 2**20))
            f.seek(-8 * 2**20, os.SEEK_END)
            h.update(f.read())
            h.update(str(path.stat().st_mtime_ns).encode())
    return h.hexdigest()[:16]


# -- schema ------------------------------------------------------------------------------


def group_name(grid: str, level: int) -> str:
    return f"{grid}/{int(level)}"


def validate_group(ds: xr.Dataset, grid: str, level: int):
    """Check a dataset against the cube's schema for group (grid, level)."""
    where = f"group {group_name(grid, level)}"
    if "cell_ids" not in ds.coords or ds.cell_ids.dims != ("cells",):
        raise CubeError(f"{where}: needs a 'cell_ids' coordinate on dimension 'cells'.")
    if ds.cell_ids.dtype != np.uint64:
        raise CubeError(f"{where}: cell_ids must be uint64, not {ds.cell_ids.dtype}.")
    problem = get_grid(grid, level).check_attrs(ds.cell_ids.attrs)
    if problem:
        raise CubeError(f"{where}: {problem}.")
    ids = ds.cell_ids.values
    if len(ids) > 1 and not np.all(ids[1:] > ids[:-1]):
        raise CubeError(f"{where}: cell_ids must be sorted and unique.")
    for name, var in ds.data_vars.items():
        missing = [k for k in ("units", "long_name") if k not in var.attrs]
        if missing:
            raise CubeError(f"{where}: variable {name!r} lacks the {' and '.join(missing)} "
                            "attribute(s) the cube requires.")


def _clean_for_zarr(ds: xr.Dataset) -> xr.Dataset:
    """Drop stale encodings; store features and labels (variables with a ``source``)
    as float32, which halves the cube and keeps 7 digits."""
    ds = ds.copy()
    for name, v in ds.variables.items():
        v.encoding = {k: val for k, val in v.encoding.items() if k in ("dtype", "_FillValue")}
        if name in ds.data_vars and "source" in v.attrs and v.dtype == np.float64:
            v.encoding["dtype"] = "float32"
    return ds


# -- the cube ---------------------------------------------------------------------------


class Cube:
    """The zarr cube at ``path``.

    ``Cube(path)`` opens an existing cube (a clear error if there is none, or it has
    another schema version); ``Cube.create(path)`` makes an empty one if needed.
    """

    def __init__(self, path=DEFAULT_PATH):
        self.path = Path(path)
        meta = self.path / "zarr.json"
        if not meta.exists():
            raise CubeError(f"no cube at {self.path}: build one with `entropice demo` or the "
                            "pipeline (`entropice grids` ...).")
        try:
            attrs = _group_attrs(self.path)  # the root group's
        except (OSError, ValueError) as err:
            raise CubeError(f"{meta} is not readable zarr metadata: {err}") from None
        version = attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise CubeError(
                f"the cube at {self.path} has schema version {version}; this entropice "
                f"({__version__}) reads version {SCHEMA_VERSION}. Rebuild the cube with "
                "`entropice demo` or the pipeline."
            )
        self.attrs = attrs
        self._pending = None  # group name -> staged: the writes of an open batch
        self._held = {}  # lock name -> the open lock file this cube holds it with

    @classmethod
    def create(cls, path=DEFAULT_PATH, attrs=None) -> Cube:
        """Open the cube at ``path``, creating an empty one if there is none (under the
        root lock, so that a second process creating it at the same time keeps the
        first one's cube, groups and all)."""
        path = Path(path)
        if not (path / "zarr.json").exists():
            path.mkdir(parents=True, exist_ok=True)
            with _locked(path, "root", "the root attributes", {}):
                if not (path / "zarr.json").exists():
                    _write_json(path / "zarr.json", {
                        "attributes": {"schema_version": SCHEMA_VERSION,
                                       "entropice_version": __version__, "created": _now(),
                                       **(attrs or {})},
                        "zarr_format": 3, "node_type": "group"})
        return cls(path)

    def __repr__(self):
        return f"Cube({str(self.path)!r}, groups={self.groups()})"

    def set_attrs(self, **attrs):
        """Update the root attributes (the schema version cannot be changed): under the
        root lock, on those on disk, so that concurrent updates of other keys are kept."""
        attrs.pop("schema_version", None)
        with _locked(self.path, "root", "the root attributes", self._held):
            merged = {**_group_attrs(self.path), **attrs}
            try:
                _set_group_attrs(self.path, merged)
            except OSError as err:
                raise _write_error(err, "the root attributes", self.path) from err
        self.attrs = merged

    # -- reading -------------------------------------------------------------------

    def groups(self) -> list[tuple[str, int]]:
        """(grid, level) of every group, sorted (in a batch, those it wrote too)."""
        out = set()
        for grid_dir in sorted(self.path.iterdir()) if self.path.exists() else []:
            if not grid_dir.is_dir() or grid_dir.name.startswith("."):
                continue
            for level_dir in grid_dir.iterdir():
                if level_dir.name.isdigit() and (level_dir / "zarr.json").exists():
                    out.add((grid_dir.name, int(level_dir.name)))
        for name in self._pending or {}:
            grid, level = name.split("/")
            out.add((grid, int(level)))
        return sorted(out)

    def __contains__(self, key):
        return (self._dir(group_name(*key)) / "zarr.json").exists()

    def _dir(self, name: str) -> Path:
        """Where group ``name`` is: staged by the open batch if it wrote it, so that its
        later writes and reads see that write; else in the cube."""
        return (self._pending or {}).get(name, self.path / name)

    def read(self, grid: str, level: int) -> xr.Dataset:
        """The group as a lazy (dask-backed) dataset, each chunk checked against the
        group's manifest as it is read (a CubeError names one missing, corrupt or not
        decodable, or says that another writer rewrote the group since it was opened).
        Inside a batch, a group it wrote reads as written.

        Outside a batch of writes every chunk of the manifest is first checked to be
        there (a listing), so that training or predicting fails at once; a stage that
        rewrites groups (inside a batch) reads without that listing, so that rerunning
        it repairs a group whose own variables lost a chunk.
        """
        return self._open(grid, level, listing=self._pending is None)

    def _group(self, grid: str, level: int) -> _Group:
        if (grid, level) not in self:
            have = ", ".join(group_name(*g) for g in self.groups()) or "none"
            raise CubeError(f"the cube at {self.path} has no group {group_name(grid, level)} "
                            f"(groups: {have}).")
        name = group_name(grid, level)
        return _Group.at(self.path, name, self._dir(name))

    def _open(self, grid: str, level: int, listing: bool) -> xr.Dataset:
        """The group, its chunks checked as read; with ``listing`` all first checked to
        be there."""
        group = self._group(grid, level)
        if group.manifest is None:
            _warn_unchecked(self.path, group.name)
        missing = group.problems() if listing and group.manifest is not None else []
        if missing:
            raise group.error(*missing[0], more=len(missing) - 1)
        store = _CheckedStore(LocalStore(group.dir, read_only=True), group)
        with _naming_chunks():
            ds = xr.open_zarr(store, consolidated=False, zarr_format=3)
        ds.attrs.pop(MANIFEST, None)
        return ds

    def provenance(self, grid: str, level: int) -> dict:
        """Per stage: config hash, input fingerprints, version, time and variables."""
        return self._group(grid, level).provenance()

    def empty_variables(self, grid: str, level: int, variables) -> list[str]:
        """Those of ``variables`` of the group whose every value is missing, known from
        the chunks stored, not read (writes store no chunk whose values are all missing);
        in a batch, as the batch wrote them."""
        group = self._group(grid, level)
        return [v for v in variables if group.no_values(v)]

    def is_up_to_date(self, grid, level, stage, config_hash, inputs) -> bool:
        """Whether ``stage`` last wrote this group with the same config and inputs."""
        if (grid, level) not in self:
            return False
        rec = self.provenance(grid, level).get(stage)
        return bool(rec) and rec.get("config_hash") == config_hash and rec.get(
            "inputs") == dict(inputs)

    # -- writing -------------------------------------------------------------------

    def _record(self, attrs, name, stage, config_hash, inputs, variables):
        """(``attrs`` with ``stage``'s record in the provenance, the stage's record before).
        A provenance that is garbage is replaced by this record alone, with a warning:
        that is how rerunning a stage with --force repairs it."""
        try:
            prov = _provenance(attrs, name, self.path / name / "zarr.json")
        except CubeError as err:
            log.warning("%s. Stage %s replaces it with its own record: the group's other "
                        "stages will rerun.", err, stage)
            prov = {}
        before = prov.get(stage, {})
        prov[stage] = {"config_hash": config_hash, "inputs": dict(inputs or {}),
                       "entropice_version": __version__, "time": _now(),
                       "variables": sorted(variables)}
        return {**attrs, PROVENANCE: json.dumps(prov, sort_keys=True)}, before

    def _staging(self) -> Path:
        """A fresh staging directory; those of writers that died are removed."""
        root = self.path / STAGING
        root.mkdir(parents=True, exist_ok=True)
        for old in root.iterdir():
            pid = old.name.split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        return root / f"{os.getpid()}-{uuid.uuid4().hex}"

    def write_group(self, ds: xr.Dataset, grid: str, level: int, *, stage: str,
                    config_hash: str = "", inputs=None):
        """Write (or replace) a whole group atomically and record the stage."""
        validate_group(ds, grid, level)
        name = group_name(grid, level)
        ds = _clean_for_zarr(ds)
        ds.attrs, _ = self._record(dict(ds.attrs), name, stage, config_hash, inputs,
                                   ds.data_vars)
        ds.attrs.update(grid_name=grid, level=int(level))
        with self._writing(name), self._stage(name) as staged:
            ds.to_zarr(staged, mode="w", consolidated=False, zarr_format=3,
                       write_empty_chunks=False)
            _seal(staged, keep={})
            self._commit(name, staged)

    def add_variables(self, ds: xr.Dataset, grid: str, level: int, *, stage: str,
                      config_hash: str = "", inputs=None):
        """Add (or replace) variables of an existing group atomically.

        ``ds`` must be on the group's cells. Variables of the same name are replaced,
        and those ``stage`` wrote before but no longer gives are removed (so a re-run
        without an input leaves none of its old features); the rest of the group is
        kept (hard-linked, not copied). New dimensions (such as ``year``) are added; a
        dimension coordinate that differs from the group's makes the group be
        rewritten on the union of both.
        """
        name = group_name(grid, level)
        with self._writing(name):  # from reading the group to swapping the new one in
            self._add_variables(ds, grid, level, stage=stage, config_hash=config_hash,
                                inputs=inputs)

    def _add_variables(self, ds, grid, level, *, stage, config_hash, inputs):
        """:meth:`add_variables`, its group's lock held."""
        name = group_name(grid, level)
        current = self._open(grid, level, listing=False)
        if not np.array_equal(ds.cell_ids.values, current.cell_ids.values):
            raise CubeError(f"group {name}: the new variables are not on the "
                            "group's cells (reindex them to its cell_ids first).")
        ds = ds.assign_coords(cell_ids=current.cell_ids)
        validate_group(ds, grid, level)
        # new variables on some of the group's years (say) are put on all of them
        ds = ds.reindex({d: current[d].values for d in ds.dims if d != "cells"
                         and d in current.dims and set(ds[d].values) < set(current[d].values)})
        clash = [d for d in ds.dims if d != "cells" and d in current.dims
                 and not np.array_equal(ds[d].values, current[d].values)]
        attrs, before = self._record(dict(current.attrs), name, stage, config_hash, inputs,
                                     ds.data_vars)
        stale = sorted((set(before.get("variables", [])) - set(ds.data_vars))
                       & set(current.data_vars))
        group = self._group(grid, level)
        recorded = group.manifest or {}
        with self._stage(name) as staged:
            if clash:  # rewrite the group on the union of the coordinates
                merged = xr.merge([current.drop_vars(list(ds.data_vars) + stale,
                                                     errors="ignore"), ds],
                                  join="outer", combine_attrs="override")
                # lazily, a chunk of each dimension that changed at a time
                merged = _clean_for_zarr(merged.chunk({d: 1 for d in clash}))
                merged.attrs = attrs
                merged.to_zarr(staged, mode="w", consolidated=False, zarr_format=3,
                               write_empty_chunks=False)
                keep = {}
            else:
                _stage_copy(group.dir, staged, skip=set(ds.data_vars) | set(stale))
                new = _clean_for_zarr(ds.drop_vars(
                    [c for c in ds.coords if c in current.coords]))
                for v in new.data_vars.values():  # the group's coordinates stay declared
                    shared = [c for c in current.coords if c not in current.dims
                              and set(current[c].dims) <= set(v.dims)]
                    if shared:
                        v.encoding["coordinates"] = " ".join(shared)
                new.attrs = {}
                new.to_zarr(staged, mode="a", consolidated=False, zarr_format=3,
                            write_empty_chunks=False)
                _set_group_attrs(staged, attrs)
                keep = {n: c for n, c in recorded.items() if n not in new.variables}
            _seal(staged, keep)
            self._commit(name, staged)

    @contextlib.contextmanager
    def scratch(self):
        """A private directory inside the cube for a stage's intermediate files (parts
        written as they are made, so that memory holds one), removed when the block
        ends, or by the next writer if this process dies."""
        path = self._staging()
        path.mkdir(parents=True)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def _writing(self, name: str):
        """Hold the locks of a write of group ``name`` from reading the group to swapping
        the new one in: the group's lock for the block; in a batch, which swaps its groups
        in when it ends, the batch lock and then the group's, until then. Batches so take
        their groups' locks one batch at a time, in whatever order their stages write
        them, and a writer outside a batch waits for no other lock while it holds its
        group's: no two writers can wait for each other."""
        lock = name.replace("/", "_")
        if self._pending is None:
            with _locked(self.path, lock, name, self._held):
                yield
        else:
            _acquire(self.path, "batch", "a batch of groups", self._held)
            _acquire(self.path, lock, name, self._held)
            yield

    @contextlib.contextmanager
    def _stage(self, name: str):
        """A fresh staging directory for group ``name``, removed if the block fails; a
        failure to write (an OSError: a full disk ...) raises a one-line CubeError."""
        try:
            with contextlib.ExitStack() as undo:
                staged = self._staging()
                undo.callback(shutil.rmtree, staged, ignore_errors=True)
                yield staged
                undo.pop_all()
        except OSError as err:
            raise _write_error(err, name, self.path) from err

    def _commit(self, name: str, staged: Path):
        """Swap a staged group into place now, or at the end of the open batch (replacing
        the batch's earlier write of the group, which this one was made from)."""
        if self._pending is None:
            _install(staged, self.path / name)
            return
        earlier = self._pending.get(name)
        self._pending[name] = staged
        if earlier is not None:
            shutil.rmtree(earlier, ignore_errors=True)

    @contextlib.contextmanager
    def batch(self):
        """Writes inside the ``with`` block are staged, and swapped in together when it
        ends; an error inside leaves every group as it was. Reads and writes of a group
        the batch wrote see that write (a second ``add_variables`` keeps the first's
        variables; a second ``write_group`` replaces the group as written).

        A stage computes every group, then the groups are replaced one after the other
        (each swap is atomic and takes milliseconds: only a crash between two swaps
        leaves some groups new and others old, each of them whole). The locks of the
        groups written are held from their first write until they are swapped in (see
        :meth:`_writing`): another writer waits.
        """
        if self._pending is not None:
            raise CubeError("a batch of writes is already open on this cube.")
        self._pending = {}
        try:
            yield self
            done = []
            for name, staged in self._pending.items():
                try:
                    _install(staged, self.path / name)
                except OSError as err:
                    raise _write_error(err, name, self.path, done) from err
                done.append(name)
        finally:
            for staged in self._pending.values():  # those not swapped in (an error)
                shutil.rmtree(staged, ignore_errors=True)
            self._pending = None
            for lock in list(self._held):
                _release(self._held, lock)

    # -- description -----------------------------------------------------------

    def check(self, record: bool = False) -> tuple[list[str], list[str], int]:
        """Every group's chunks against its manifest's checksums: (a line per chunk
        missing, corrupt or not in the manifest, naming the stage to rerun, and per group
        whose metadata is garbage; a line per group written before manifests; the number
        of chunks checked). With ``record``, such a group has every chunk decoded and, if
        all do, its manifest recorded (a line says so), and is checked from then on."""
        problems, notes, chunks = [], [], 0
        for grid, level in self.groups():
            try:
                group = self._group(grid, level)
                group.provenance()  # which names the stage that rewrites a chunk
                if group.manifest is None and record:
                    undecodable, group = self._adopt(grid, level)
                    problems += [group.line(*p) for p in undecodable]
                    if group.manifest is not None:
                        notes.append(f"{group.name}: written by an older entropice: every "
                                     "chunk decoded, its manifest recorded")
            except CubeError as err:
                problems.append(str(err))
                continue
            if group.manifest is None:
                if not record:
                    notes.append(f"{group.name}: no manifest (written by an older "
                                 "entropice): its chunks are not checked; `entropice cube "
                                 f"check {self.path} --record` records one")
                continue
            problems += [group.line(*p) for p in group.problems(checksums=True)]
            chunks += sum(len(c) for c in group.manifest.values())
        return problems, notes, chunks

    def _adopt(self, grid: str, level: int) -> tuple[list, _Group]:
        """Bring a group written before manifests under checking: under its lock, decode
        every chunk stored (proving they read) and, if all do, record its manifest; (the
        problems found, the group as it is now)."""
        name = group_name(grid, level)
        with self._writing(name):
            group = self._group(grid, level)
            if group.manifest is not None:  # a writer recorded one meanwhile
                return [], group
            undecodable = group.undecodable()
            if not undecodable:
                try:
                    _seal(group.dir, keep={})
                except OSError as err:  # a read-only cube, a full disk
                    raise _write_error(err, name, self.path) from err
            return undecodable, self._group(grid, level)

    def info(self) -> str:
        """A description: groups, cell counts, variables with units, provenance."""
        lines = [f"cube {self.path} (schema version {SCHEMA_VERSION}, written by entropice "
                 f"{self.attrs.get('entropice_version', '?')})"]
        for key in ("synthetic", "licences"):
            if key in self.attrs:
                lines.append(f"  {key}: {self.attrs[key]}")
        groups = self.groups()
        if not groups:
            lines.append("  no groups yet")
        for grid, level in groups:
            ds = self._open(grid, level, listing=False)  # describes a damaged cube too
            dims = ", ".join(f"{d}={n}" for d, n in ds.sizes.items())
            lines.append(f"\n{group_name(grid, level)}  ({dims})")
            for name in sorted(ds.data_vars, key=lambda n: (n not in _CELL_VARS, n)):
                var = ds[name]
                other = [d for d in var.dims if d != "cells"]
                extra = f" [{', '.join(other)}]" if other else ""
                lines.append(f"  {name:<28} {var.attrs.get('units', '?'):<14} "
                             f"{var.attrs.get('long_name', '')}{extra}")
            for stage, rec in self.provenance(grid, level).items():
                inputs = ", ".join(f"{k}:{v}" for k, v in rec.get("inputs", {}).items()) or "-"
                lines.append(f"  provenance {stage}: config {rec.get('config_hash') or '-'}, "
                             f"inputs {inputs}, entropice {rec.get('entropice_version')}, "
                             f"{rec.get('time')}")
        return "\n".join(lines)

    def writers(self, grid: str, level: int, variables) -> dict:
        """For each stage that last wrote one of ``variables`` of the group, a hash of its
        provenance record (config, inputs, version, time). A stage that reads those
        variables records this among its inputs, so that it is stale once any of them is
        rewritten (and a reader killed before it wrote keeps its old record: stale too)."""
        records = self.provenance(grid, level)
        last = {v: stage for stage, rec in sorted(records.items(),
                                                  key=lambda item: item[1].get("time", ""))
                for v in rec.get("variables", [])}
        return {stage: config_hash(records[stage])
                for stage in sorted({last[v] for v in variables if v in last})}


def _now():
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
