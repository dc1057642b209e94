"""Files replaced whole: a writer writes a temporary file of its own beside the target
and swaps it in, so that a reader sees the old file or the new one, never a part, and
two writers never rename each other's temporary file."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path


def _remove(path: Path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(path):
    """A temporary path beside ``path`` (hidden, named for this writer) to write a file
    or a directory to; it replaces ``path`` when the block ends, and is removed if the
    block fails. An old directory is first renamed aside (a reader sees it whole or
    not at all), then removed; it is put back if the new one cannot take its place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    aside = tmp.with_suffix(".old")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{path} was not written (nothing at {tmp}).")
        if path.is_dir() and not path.is_symlink():
            os.replace(path, aside)
        try:
            os.replace(tmp, path)
        except OSError:
            if aside.exists():
                os.replace(aside, path)
            raise
    finally:
        _remove(tmp)
        _remove(aside)
