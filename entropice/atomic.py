"""Files replaced whole: a writer writes a temporary file of its own beside the target
and swaps it in, so that a reader sees the old file or the new one, never a part, and
two writers never rename each other's temporary file."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


@contextlib.contextmanager
def replacing(path):
    """A temporary path beside ``path`` (hidden, named for this writer) to write to;
    it replaces ``path`` when the block ends, and is removed if the block fails."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
