"""The chunk manifest and the groups' metadata: the key and checksum of every chunk a
write stored, against which every read is checked, so that a chunk gone, damaged or
undecodable raises a ``CubeError`` naming it, never reads as fill values; and the
group's ``zarr.json``, which this module alone reads and writes for the cube.

A group's attribute MANIFEST is {"checksum": "crc32", "arrays": {array: {chunk key:
crc32 of the stored bytes, 8 hex digits}}}; written into the staged group's zarr.json, it
is swapped in with the group's chunks.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from zarr.storage import LocalStore, WrapperStore

from .atomic import replacing
from .errors import CubeError

PROVENANCE = "provenance"
MANIFEST = "chunk_manifest"
log = logging.getLogger("entropice")


def _checksum(data) -> str:
    """CRC-32 of a chunk's stored bytes (several GB/s: cheap beside writing them)."""
    return f"{zlib.crc32(data):08x}"


# -- the groups' zarr.json ----------------------------------------------------------------


def _read_json(meta: Path) -> dict:
    """A zarr.json as a dict; a ValueError saying why if it is not a JSON object."""
    doc = json.loads(meta.read_bytes())
    if not isinstance(doc, dict) or not isinstance(doc.get("attributes", {}), dict):
        raise ValueError("not a zarr metadata object")
    return doc


def _group_attrs(group_dir: Path) -> dict:
    """A group's attributes, read from its zarr.json (no array is opened)."""
    return _read_json(group_dir / "zarr.json").get("attributes", {})


def _set_group_attrs(group_dir: Path, attrs: dict):
    """Replace a group's attributes in its zarr.json (atomically)."""
    meta = _read_json(group_dir / "zarr.json")
    _write_json(group_dir / "zarr.json", {**meta, "attributes": attrs})


def _write_json(path: Path, obj):
    """Replace ``path`` with ``obj`` as JSON, whole (:func:`entropice.atomic.replacing`)."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))


# -- the manifest -------------------------------------------------------------------------


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


def _provenance(attrs: dict, name: str, meta: Path) -> dict:
    """The provenance attribute of group ``name`` (stage -> record), or a CubeError
    naming the group, the attribute, the file and the repair if it is garbage."""
    try:
        prov = json.loads(attrs.get(PROVENANCE, "{}"))
        if not isinstance(prov, dict) or not all(isinstance(r, dict) for r in prov.values()):
            raise ValueError("not an object of stage records")
    except (TypeError, ValueError) as err:
        raise CubeError(f"the {PROVENANCE} attribute of group {name} in {meta} is not valid "
                        f"JSON ({err}); rerun the group's stages with --force, or remove the "
                        "group") from None
    return prov


@dataclass(frozen=True)
class _Group:
    """A group as its checks need it: its manifest (None: written before manifests) and
    attributes as they were when it was opened, whose provenance names the stage that
    last wrote each variable (parsed only when needed, so that garbage there does not
    block reads). ``dir`` is where it is read: in the cube, or staged by an open batch."""

    cube: Path
    name: str
    dir: Path
    manifest: dict | None
    attrs: dict

    @classmethod
    def at(cls, cube: Path, name: str, where: Path | None = None) -> _Group:
        """Group ``name`` of the cube at ``cube``, read from ``where`` (default: its place
        in the cube); a CubeError naming the group and its file if that is not JSON."""
        where = where or cube / name
        try:
            attrs = _group_attrs(where)
        except ValueError as err:
            raise CubeError(
                f"group {name}: its metadata {where / 'zarr.json'} is not valid JSON ({err}); "
                f"remove {cube / name} and rerun the grids stage, which writes the group "
                "anew, then its other stages (`entropice run`)") from None
        manifest = attrs.get(MANIFEST)
        return cls(cube, name, where, manifest.get("arrays") if isinstance(manifest, dict)
                   else None, attrs)

    def provenance(self) -> dict:
        """Per stage its record (a CubeError if the attribute is garbage)."""
        return _provenance(self.attrs, self.name, self.dir / "zarr.json")

    def remedy(self, var: str) -> str:
        """What rewrites ``var``: its stage, or for a coordinate the whole group."""
        records = sorted(self.provenance().items(), key=lambda item: item[1].get("time", ""))
        stages = {v: stage for stage, rec in records for v in rec.get("variables", [])}
        if var in stages:
            return f"rerun stage {stages[var]} with --force"
        return (f"remove {self.cube / self.name} and rerun its stages "
                f"({', '.join(sorted(set(stages.values())))}) with --force")

    def line(self, var: str, key: str, problem: str) -> str:
        """One line of `entropice cube check`."""
        return f"{self.name} {var} {key}: {problem}; {self.remedy(var)}"

    def error(self, var: str, key: str, problem: str, more: int = 0) -> CubeError:
        """The error of a read that met a damaged chunk: where, and what repairs it."""
        others = f" (and {more} more chunk(s))" if more else ""
        record = "" if self.manifest is not None else " --record"
        return CubeError(
            f"group {self.name}, variable {var!r}: chunk {key} is {problem}{others}. Run "
            f"`entropice cube check {self.cube}{record}` to list every damaged chunk, and "
            f"{self.remedy(var)} to write it anew.")

    def last_write(self) -> str:
        """The stage of the newest record of the group's provenance, with its time."""
        records = self.provenance()
        stage = max(records, key=lambda s: records[s].get("time", ""), default=None)
        return f"stage {stage} at {records[stage].get('time')}" if stage else "no stage"

    def damaged(self, var: str, key: str, problem: str) -> CubeError:
        """The error of a chunk of this group, opened earlier, that does not read: that
        another writer rewrote (or removed) the group since, if one did, else
        :meth:`error`."""
        try:
            now = _Group.at(self.cube, self.name, self.dir)
        except (OSError, CubeError):
            now = None
        if now is not None and now.attrs == self.attrs:
            return self.error(var, key, problem)
        by = "removed or is being rewritten"
        if now is not None:
            try:
                by = f"rewritten by another writer ({now.last_write()})"
            except CubeError:  # garbage provenance
                by = "rewritten by another writer"
        return CubeError(
            f"group {self.name} was {by} after it was opened (chunk {key} of variable "
            f"{var!r} is no longer the one opened); reopen the group (Cube.read) and read "
            "it again.")

    def problems(self, checksums: bool = False) -> list[tuple[str, str, str]]:
        """(variable, chunk key, problem) of each chunk that is not as the manifest says:
        missing (a listing) or an array's metadata not JSON; with ``checksums`` also
        corrupt or not in the manifest."""
        out = []
        for var in sorted(set(self.manifest) | set(_arrays(self.dir))):
            expected, stored = self.manifest.get(var, {}), _chunk_keys(self.dir / var)
            out += _metadata_problems(self.dir / var, var in self.manifest)
            out += [(var, k, "missing") for k in sorted(set(expected) - stored)]
            if checksums:
                out += [(var, k, "corrupt") for k in sorted(set(expected) & stored)
                        if _checksum((self.dir / var / k).read_bytes()) != expected[k]]
                out += [(var, k, "not in the manifest") for k in sorted(stored - set(expected))]
        return out

    def undecodable(self) -> list[tuple[str, str, str]]:
        """(variable, chunk key, problem) of each stored chunk that does not decode, or is
        no chunk of its array, and of each array's metadata that is not JSON: the check
        of a group without a manifest, every chunk decoded once, before one is recorded."""
        out = []
        for var in _arrays(self.dir):
            broken = _metadata_problems(self.dir / var, False)
            if broken:
                out += broken
                continue
            try:
                array = zarr.open_array(LocalStore(self.dir, read_only=True), path=var,
                                        mode="r", zarr_format=3)
            except Exception as err:  # JSON, but not an array's metadata
                out.append((var, "zarr.json", f"not an array's metadata ({err})"))
                continue
            chunks = {array.metadata.encode_chunk_key(c): c
                      for c in itertools.product(*map(range, array.cdata_shape))}
            for key in sorted(_chunk_keys(self.dir / var)):
                if key not in chunks:
                    out.append((var, key, "not a chunk of the array"))
                    continue
                try:
                    array.get_block_selection(chunks[key])
                except Exception as err:  # whatever the codec raises: the finding
                    out.append((var, key, _undecodable(err)))
        return out

    def no_values(self, var: str) -> bool:
        """Whether every value of ``var`` is missing, known from the chunk listing alone:
        its fill value is NaN and no chunk is stored (writes store no chunk of fill values
        only)."""
        array = zarr.open_array(LocalStore(self.dir, read_only=True), path=var, mode="r",
                                zarr_format=3)
        fill = np.asarray(array.fill_value)
        return fill.dtype.kind in "fc" and bool(np.isnan(fill)) and not _chunk_keys(
            self.dir / var)


def _undecodable(err: Exception) -> str:
    """The problem of a chunk whose bytes its codecs do not decode."""
    return f"not decodable ({type(err).__name__}: {err})"


def _metadata_problems(array_dir: Path, recorded: bool) -> list[tuple[str, str, str]]:
    """An array's zarr.json missing (zarr would drop the variable: only an array of the
    manifest can be missed) or not JSON, as (variable, "zarr.json", problem)."""
    try:
        _read_json(array_dir / "zarr.json")
    except FileNotFoundError:
        return [(array_dir.name, "zarr.json", "missing")] if recorded else []
    except ValueError as err:
        return [(array_dir.name, "zarr.json", f"not valid JSON ({err})")]
    return []


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
        """The stored bytes of ``key``: a chunk's checked against its checksum, an
        array's metadata checked to be JSON."""
        buf = await super().get(key, prototype, byte_range)
        var, _, chunk = key.partition("/")
        if chunk == "zarr.json" and buf is not None:
            try:
                json.loads(buf.to_bytes())
            except ValueError as err:
                raise self.group.error(var, chunk, f"not valid JSON ({err})") from None
        expected = (self.group.manifest or {}).get(var, {}).get(chunk)
        if expected is None or byte_range is not None:
            return buf
        if buf is None:
            raise self.group.damaged(var, chunk, "missing")
        if _checksum(buf.as_numpy_array()) != expected:
            raise self.group.damaged(var, chunk, "corrupt (its bytes are not those written)")
        return buf


def _named_pipeline():
    """zarr's codec pipeline, but a chunk of a checked store that fails to decode (bytes
    damaged in a group without a manifest, a codec's metadata changed) raises a CubeError
    naming the group, the variable and the chunk, not the codec's bare error; its dotted
    path, or None with a zarr whose pipeline is not the one this was written against
    (zarr 3.0-3.1: ``BatchedCodecPipeline.read_batch``), where a checked store still
    names chunks missing or damaged and only an undecodable one goes unnamed."""
    version = tuple(int(p) for p in zarr.__version__.split(".")[:2] if p.isdigit())
    if not (3, 0) <= version < (3, 2):
        return None
    try:
        from zarr.core.codec_pipeline import BatchedCodecPipeline
        from zarr.registry import register_pipeline
    except ImportError:
        return None

    class _NamedPipeline(BatchedCodecPipeline):
        async def read_batch(self, batch_info, out, drop_axes=()):
            batch_info = list(batch_info)
            try:
                await super().read_batch(batch_info, out, drop_axes)
            except CubeError:
                raise
            except Exception as err:
                if not all(isinstance(g.store, _CheckedStore) for g, *_ in batch_info):
                    raise
                for getter, spec, *_ in batch_info:  # which chunk: each decoded alone
                    try:
                        await self.decode_batch([(await getter.get(spec.prototype), spec)])
                    except CubeError:  # missing or corrupt: named by the store already
                        raise
                    except Exception as one:
                        var, _, chunk = getter.path.partition("/")
                        raise getter.store.group.damaged(var, chunk,
                                                         _undecodable(one)) from err
                raise

    _NamedPipeline.__qualname__ = "_NamedPipeline"  # its registry name: manifest._NamedPipeline
    register_pipeline(_NamedPipeline)
    return f"{__name__}._NamedPipeline"


_PIPELINE = _named_pipeline()
_PIPELINE_SET = threading.Lock()


@contextlib.contextmanager
def _naming_chunks():
    """Arrays opened in the block read through :func:`_named_pipeline`'s pipeline (zarr
    picks an array's pipeline when it is opened, from its global configuration)."""
    if _PIPELINE is None:
        yield
        return
    with _PIPELINE_SET, zarr.config.set({"codec_pipeline.path": _PIPELINE}):
        yield


@functools.cache
def _warn_unchecked(cube: Path, name: str):
    """Say once per process that a group's chunks cannot be checked, and how to have them."""
    log.warning("group %s of %s has no chunk manifest (written by an older entropice): its "
                "chunks are not checked; `entropice cube check %s --record` records one",
                name, cube, cube)
