"""The chunk manifest: the key and checksum of every chunk a write stored, against which
every read is checked, so that a chunk gone or damaged since raises a ``CubeError`` naming
it, never reads as fill values.

A group's attribute MANIFEST is {"checksum": "crc32", "arrays": {array: {chunk key:
crc32 of the stored bytes, 8 hex digits}}}; written into the staged group's zarr.json, it
is swapped in with the group's chunks.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from zarr.storage import WrapperStore

from .errors import CubeError

PROVENANCE = "provenance"
MANIFEST = "chunk_manifest"
log = logging.getLogger("entropice")


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
    from .cube import _set_group_attrs  # the cube's JSON writes (a top-level import: a cycle)

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
    """A group on disk as its checks need it: its manifest (None: written before
    manifests) and attributes, whose provenance names the stage that last wrote each
    variable (parsed only when needed, so that garbage there does not block reads)."""

    cube: Path
    name: str
    manifest: dict | None
    attrs: dict

    @classmethod
    def at(cls, cube: Path, name: str) -> _Group:
        attrs = _group_attrs(cube / name)
        return cls(cube, name, attrs.get(MANIFEST, {}).get("arrays"), attrs)

    def provenance(self) -> dict:
        """Per stage its record (a CubeError if the attribute is garbage)."""
        return _provenance(self.attrs, self.name, self.cube / self.name / "zarr.json")

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
