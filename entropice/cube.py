"""The on-disk cube: one zarr (v3) store, one group per grid and level.

Every group is an ``xarray.Dataset`` on dimension ``cells`` with the coordinate
``cell_ids`` that ``xdggs.decode`` reads. Writes are atomic: a group is written in
full to a staging directory inside the store and swapped into place with one
rename, so a killed process leaves the previous group readable. Each write records
its stage's provenance (config hash, input fingerprints, version, time) in the
group's attributes, which is how stages know they are up to date, and its manifest:
the key and checksum of every chunk it stored, against which every read is checked (a
chunk gone or damaged since raises a ``CubeError`` naming it, never reads as fill values).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import shutil
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from zarr.storage import LocalStore, WrapperStore

from . import __version__
from .grids import get_grid

SCHEMA_VERSION = 1
DEFAULT_PATH = Path("data/cube.zarr")
STAGING = ".staging"
PROVENANCE = "provenance"
MANIFEST = "chunk_manifest"
_CELL_VARS = ("lat", "lon", "area_km2", "land_fraction")
log = logging.getLogger("entropice")


class CubeError(ValueError):
    """A cube that cannot be opened or a group that breaks the cube's schema."""


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
    """Put ``staged`` at ``target``; the old ``target`` (if any) is removed after."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.rename(staged, target)
        return
    if _exchange(staged, target):
        shutil.rmtree(staged)
        return
    # elsewhere: two renames, with the old group kept until the new one is in place
    old = staged.with_name(staged.name + ".old")
    os.rename(target, old)
    os.rename(staged, target)
    shutil.rmtree(old)


def _install(staged: Path, target: Path):
    """Swap a staged group into place; the staging directory never outlives the call."""
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


# -- the chunk manifest ---------------------------------------------------------------------
# A group's attribute MANIFEST is {"checksum": "crc32", "arrays": {array: {chunk key:
# crc32 of the stored bytes, 8 hex digits}}}; written into the staged group's zarr.json, it
# is swapped in with the group's chunks.


def _checksum(data) -> str:
    """CRC-32 of a chunk's stored bytes (several GB/s: cheap beside writing them)."""
    return f"{zlib.crc32(data):08x}"


def _group_attrs(group_dir: Path) -> dict:
    """A group's attributes, read from its zarr.json (no array is opened)."""
    return json.loads((group_dir / "zarr.json").read_text()).get("attributes", {})


def _arrays(group_dir: Path) -> list[str]:
    """Names of the arrays stored in a group's directory."""
    return sorted(d.name for d in group_dir.iterdir() if (d / "zarr.json").exists())


def _chunk_keys(array_dir: Path) -> set[str]:
    """Keys (``c/0/1``) of the chunks stored in an array's directory: a listing."""
    keys = set()
    for root, _, files in os.walk(array_dir):
        rel = Path(root).relative_to(array_dir)
        keys.update((rel / f).as_posix() for f in files)
    keys.discard("zarr.json")
    return keys


def _seal(group_dir: Path, keep: dict):
    """Record a staged group's manifest: the chunks of every array with their checksums,
    those of ``keep`` (arrays hard-linked unchanged: array -> chunks) as recorded before."""
    arrays = {name: keep[name] if name in keep else {
        key: _checksum((group_dir / name / key).read_bytes())
        for key in _chunk_keys(group_dir / name)} for name in _arrays(group_dir)}
    _set_group_attrs(group_dir, {**_group_attrs(group_dir),
                                 MANIFEST: {"checksum": "crc32", "arrays": arrays}})


@dataclass(frozen=True)
class _Group:
    """A group on disk as its checks need it: its manifest (None: written before
    manifests) and the stage that last wrote each variable (its provenance)."""

    cube: Path
    name: str
    manifest: dict | None
    stages: dict

    @classmethod
    def at(cls, cube: Path, name: str) -> _Group:
        attrs = _group_attrs(cube / name)
        records = sorted(json.loads(attrs.get(PROVENANCE, "{}")).items(),
                         key=lambda item: item[1].get("time", ""))
        return cls(cube, name, attrs.get(MANIFEST, {}).get("arrays"),
                   {v: stage for stage, rec in records for v in rec.get("variables", [])})

    def remedy(self, var: str) -> str:
        """What rewrites ``var``: its stage, or for a coordinate the whole group."""
        if var in self.stages:
            return f"rerun stage {self.stages[var]} with --force"
        return (f"remove {self.cube / self.name} and rerun its stages "
                f"({', '.join(sorted(set(self.stages.values())))}) with --force")

    def line(self, var: str, key: str, problem: str) -> str:
        """One line of `entropice cube check`."""
        return f"{self.name} {var} {key}: {problem}; {self.remedy(var)}"

    def error(self, var: str, key: str, problem: str, more: int = 0) -> CubeError:
        """The error of a read that met a damaged chunk: where, and what repairs it."""
        others = f" (and {more} more chunk(s))" if more else ""
        return CubeError(
            f"group {self.name}, variable {var!r}: chunk {key} is {problem}{others}. Run "
            f"`entropice cube check {self.cube}` to list every damaged chunk, and "
            f"{self.remedy(var)} to write it anew.")

    def problems(self, checksums: bool = False) -> list[tuple[str, str, str]]:
        """(variable, chunk key, problem) of each chunk that is not as the manifest says:
        missing (a listing); with ``checksums`` also corrupt or not in the manifest."""
        out = []
        for var in sorted(set(self.manifest) | set(_arrays(self.cube / self.name))):
            expected, stored = self.manifest.get(var, {}), _chunk_keys(self.cube / self.name / var)
            if var in self.manifest and not (self.cube / self.name / var / "zarr.json").exists():
                out.append((var, "zarr.json", "missing"))  # zarr would drop the variable
            out += [(var, k, "missing") for k in sorted(set(expected) - stored)]
            if checksums:
                out += [(var, k, "corrupt") for k in sorted(set(expected) & stored)
                        if _checksum((self.cube / self.name / var / k).read_bytes())
                        != expected[k]]
                out += [(var, k, "not in the manifest") for k in sorted(stored - set(expected))]
        return out


class _CheckedStore(WrapperStore):
    """A group's store that checks every chunk it reads against the manifest, so that a
    chunk gone or damaged since it was written raises a CubeError naming it instead of
    reading as fill values or failing to decode with no name."""

    def __init__(self, store, group: _Group):
        super().__init__(store)
        self.group = group

    def _with_store(self, store):
        return type(self)(store, self.group)

    async def get(self, key, prototype, byte_range=None):
        """The stored bytes of ``key``, a chunk's checked against its checksum."""
        buf = await super().get(key, prototype, byte_range)
        var, _, chunk = key.partition("/")
        expected = (self.group.manifest or {}).get(var, {}).get(chunk)
        if expected is None or byte_range is not None:
            return buf
        if buf is None:
            raise self.group.error(var, chunk, "missing")
        if _checksum(buf.as_numpy_array()) != expected:
            raise self.group.error(var, chunk, "corrupt (its bytes are not those written)")
        return buf


@functools.cache
def _warn_unchecked(group_dir: Path):
    """Say once per process that a group's chunks cannot be checked."""
    log.warning("%s has no chunk manifest (written by an older entropice): its chunks are "
                "not checked; rerun its stages with --force to record one", group_dir)


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
            attrs = json.loads(meta.read_text()).get("attributes", {})
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
        self._pending = None  # (staged, target) of the writes of an open batch

    @classmethod
    def create(cls, path=DEFAULT_PATH, attrs=None) -> Cube:
        """Open the cube at ``path``, creating an empty one if there is none."""
        import zarr

        path = Path(path)
        if not (path / "zarr.json").exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            root = zarr.open_group(str(path), mode="w", zarr_format=3)
            root.attrs.update({"schema_version": SCHEMA_VERSION, "entropice_version": __version__,
                               "created": _now(), **(attrs or {})})
        return cls(path)

    def __repr__(self):
        return f"Cube({str(self.path)!r}, groups={self.groups()})"

    def set_attrs(self, **attrs):
        """Update the root attributes (the schema version cannot be changed)."""
        attrs.pop("schema_version", None)
        self.attrs.update(attrs)
        _set_group_attrs(self.path, self.attrs)

    # -- reading -------------------------------------------------------------------

    def groups(self) -> list[tuple[str, int]]:
        """(grid, level) of every group, sorted."""
        out = []
        for grid_dir in sorted(self.path.iterdir()) if self.path.exists() else []:
            if not grid_dir.is_dir() or grid_dir.name.startswith("."):
                continue
            for level_dir in grid_dir.iterdir():
                if level_dir.name.isdigit() and (level_dir / "zarr.json").exists():
                    out.append((grid_dir.name, int(level_dir.name)))
        return sorted(out)

    def __contains__(self, key):
        grid, level = key
        return (self.path / group_name(grid, level) / "zarr.json").exists()

    def read(self, grid: str, level: int) -> xr.Dataset:
        """The group as a lazy (dask-backed) dataset, each chunk checked against the
        group's manifest as it is read (a CubeError names one missing or corrupt).

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
        return _Group.at(self.path, group_name(grid, level))

    def _open(self, grid: str, level: int, listing: bool) -> xr.Dataset:
        """The group, its chunks checked as read; with ``listing`` all first checked to
        be there."""
        group = self._group(grid, level)
        if group.manifest is None:
            _warn_unchecked(self.path / group.name)
        missing = group.problems() if listing and group.manifest is not None else []
        if missing:
            raise group.error(*missing[0], more=len(missing) - 1)
        store = _CheckedStore(LocalStore(self.path / group.name, read_only=True), group)
        ds = xr.open_zarr(store, consolidated=False, zarr_format=3)
        ds.attrs.pop(MANIFEST, None)
        return ds

    def provenance(self, grid: str, level: int) -> dict:
        """Per stage: config hash, input fingerprints, version, time and variables."""
        group = self._group(grid, level)
        return json.loads(_group_attrs(self.path / group.name).get(PROVENANCE, "{}"))

    def is_up_to_date(self, grid, level, stage, config_hash, inputs) -> bool:
        """Whether ``stage`` last wrote this group with the same config and inputs."""
        if (grid, level) not in self:
            return False
        rec = self.provenance(grid, level).get(stage)
        return bool(rec) and rec.get("config_hash") == config_hash and rec.get(
            "inputs") == dict(inputs)

    # -- writing -------------------------------------------------------------------

    def _record(self, attrs, stage, config_hash, inputs, variables):
        prov = json.loads(attrs.get(PROVENANCE, "{}"))
        prov[stage] = {"config_hash": config_hash, "inputs": dict(inputs or {}),
                       "entropice_version": __version__, "time": _now(),
                       "variables": sorted(variables)}
        attrs[PROVENANCE] = json.dumps(prov, sort_keys=True)
        return attrs

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
        ds = _clean_for_zarr(ds)
        ds.attrs = self._record(dict(ds.attrs), stage, config_hash, inputs, ds.data_vars)
        ds.attrs.update(grid_name=grid, level=int(level))
        staged = self._staging()
        try:
            ds.to_zarr(staged, mode="w", consolidated=False, zarr_format=3)
            _seal(staged, keep={})
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        self._commit(staged, self.path / group_name(grid, level))

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
        current = self._open(grid, level, listing=False)
        if not np.array_equal(ds.cell_ids.values, current.cell_ids.values):
            raise CubeError(f"group {group_name(grid, level)}: the new variables are not on the "
                            "group's cells (reindex them to its cell_ids first).")
        ds = ds.assign_coords(cell_ids=current.cell_ids)
        validate_group(ds, grid, level)
        # new variables on some of the group's years (say) are put on all of them
        ds = ds.reindex({d: current[d].values for d in ds.dims if d != "cells"
                         and d in current.dims and set(ds[d].values) < set(current[d].values)})
        clash = [d for d in ds.dims if d != "cells" and d in current.dims
                 and not np.array_equal(ds[d].values, current[d].values)]
        before = json.loads(current.attrs.get(PROVENANCE, "{}")).get(stage, {})
        stale = sorted((set(before.get("variables", [])) - set(ds.data_vars))
                       & set(current.data_vars))
        attrs = self._record(dict(current.attrs), stage, config_hash, inputs, ds.data_vars)
        target = self.path / group_name(grid, level)
        recorded = self._group(grid, level).manifest or {}
        staged = self._staging()
        try:
            if clash:  # rewrite the group on the union of the coordinates
                merged = xr.merge([current.drop_vars(list(ds.data_vars) + stale,
                                                     errors="ignore"), ds],
                                  join="outer", combine_attrs="override")
                # lazily, a chunk of each dimension that changed at a time
                merged = _clean_for_zarr(merged.chunk({d: 1 for d in clash}))
                merged.attrs = attrs
                merged.to_zarr(staged, mode="w", consolidated=False, zarr_format=3)
                keep = {}
            else:
                _stage_copy(target, staged, skip=set(ds.data_vars) | set(stale))
                new = _clean_for_zarr(ds.drop_vars(
                    [c for c in ds.coords if c in current.coords]))
                for v in new.data_vars.values():  # the group's coordinates stay declared
                    shared = [c for c in current.coords if c not in current.dims
                              and set(current[c].dims) <= set(v.dims)]
                    if shared:
                        v.encoding["coordinates"] = " ".join(shared)
                new.attrs = {}
                new.to_zarr(staged, mode="a", consolidated=False, zarr_format=3)
                _set_group_attrs(staged, attrs)
                keep = {n: c for n, c in recorded.items() if n not in new.variables}
            _seal(staged, keep)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        self._commit(staged, target)

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

    def _commit(self, staged: Path, target: Path):
        """Swap a staged group into place now, or at the end of the open batch."""
        if self._pending is not None:
            self._pending.append((staged, target))
        else:
            _install(staged, target)

    @contextlib.contextmanager
    def batch(self):
        """Writes inside the ``with`` block are staged, and swapped in together when it
        ends; an error inside leaves every group as it was.

        A stage computes every group, then the groups are replaced one after the other
        (each swap is atomic and takes milliseconds: only a crash between two swaps
        leaves some groups new and others old, each of them whole).
        """
        if self._pending is not None:
            raise CubeError("a batch of writes is already open on this cube.")
        self._pending = []
        try:
            yield self
        except BaseException:
            for staged, _ in self._pending:
                shutil.rmtree(staged, ignore_errors=True)
            raise
        else:
            for staged, target in self._pending:
                _install(staged, target)
        finally:
            self._pending = None

    # -- description -----------------------------------------------------------

    def check(self) -> tuple[list[str], list[str], int]:
        """Every group's chunks against its manifest's checksums: (a line per chunk
        missing, corrupt or not in the manifest, naming the stage to rerun; a line per
        group written before manifests; the number of chunks checked)."""
        problems, unchecked, chunks = [], [], 0
        for grid, level in self.groups():
            group = self._group(grid, level)
            if group.manifest is None:
                unchecked.append(f"{group.name}: no manifest (written by an older entropice): "
                                 "rerun its stages with --force to record one")
                continue
            problems += [group.line(*p) for p in group.problems(checksums=True)]
            chunks += sum(len(c) for c in group.manifest.values())
        return problems, unchecked, chunks

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


def _set_group_attrs(store_path: Path, attrs: dict):
    meta_path = store_path / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"] = attrs
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, meta_path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now():
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
