"""Per-group write locks: writers serialise, each holding its group's lock file
(``.locks/h3_4.lock``, an exclusive ``flock``) from reading the group to swapping the new
one in, so that concurrent writers lose nothing."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

from .errors import _write_error

LOCKS = ".locks"
log = logging.getLogger("entropice")


@contextlib.contextmanager
def _locked(cube: Path, name: str, what: str, held: dict):
    """Hold the lock file ``<cube>/.locks/<name>.lock`` (an exclusive ``flock``) for the
    block, saying in the log (INFO) when it waits for another writer of ``what``; a lock
    already in ``held`` (lock name -> open file: those of a cube's open batch) is kept."""
    if name in held:
        yield
        return
    _acquire(cube, name, what, held)
    try:
        yield
    finally:
        _release(held, name)


def _acquire(cube: Path, name: str, what: str, held: dict):
    """Take the lock ``name`` unless ``held`` has it, and add it there; failing to (a
    full disk, no locks on this file system) is a one-line CubeError."""
    if name in held:
        return
    path = cube / LOCKS / f"{name}.lock"
    with contextlib.ExitStack() as undo:
        try:
            path.parent.mkdir(exist_ok=True)
            f = undo.enter_context(open(path, "a"))
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another writer of %s (it holds %s)", what, path)
                start = time.monotonic()
                fcntl.flock(f, fcntl.LOCK_EX)
                log.info("writing %s after %.1f s of waiting", what, time.monotonic() - start)
        except OSError as err:
            raise _write_error(err, what, cube) from err
        undo.pop_all()
    held[name] = f


def _release(held: dict, name: str):
    """Release the lock ``name`` and close its file; explicitly, since a copy of the
    file in a child forked meanwhile would keep the lock past the close."""
    f = held.pop(name)
    fcntl.flock(f, fcntl.LOCK_UN)
    f.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
