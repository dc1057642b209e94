"""The cube's errors: ``CubeError`` (a cube that cannot be opened or a group that breaks
the cube's schema) and ``CubeWriteError``, the one-line error of a write that failed on an
OSError (a full disk ...), raised by the cube, its manifest and its write locks alike."""

from __future__ import annotations

from pathlib import Path


class CubeError(ValueError):
    """A cube that cannot be opened or a group that breaks the cube's schema."""


class CubeWriteError(CubeError, OSError):
    """A write that failed on an OSError (a full disk ...), in one line: still an OSError
    for callers that caught those before writes said which group failed."""


def _write_error(err: OSError, what: str, where: Path, done=()) -> CubeWriteError:
    """The one-line error of a write that failed on ``err`` (a full disk ...): its cause,
    what was written where, and what was changed (``done``: groups already replaced)."""
    cause = err.strerror or str(err) or type(err).__name__
    changed = (f"{', '.join(done)} were already replaced, the other groups were not"
               if done else "nothing was changed")
    return CubeWriteError(f"{cause[:1].lower()}{cause[1:]} while writing {what} to {where}; "
                          f"{changed}")
