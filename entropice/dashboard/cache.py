"""Results shared by every session of the dashboard, safe to ask for from several threads
at once: the store's groups, models and colour ranges, and the map's pixel lookups."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from concurrent.futures import Future


class SharedCache:
    """A function's results by its arguments, the ``size`` last used kept, shared by every
    session and safe to call from several threads at once.

    The prefetches compute in threads of their own beside the sessions' (see
    ``CubeStore.prefetch_boxes`` and ``prefetch_levels``); ``pn.cache`` evicts without
    a lock, so two threads could evict the same entry or read one just evicted. Here the
    cache is read and changed under a lock, and each result is computed once: a caller
    asking for what another thread is computing waits for it (a group of 1.66M cells is
    not loaded twice), while other arguments are computed meanwhile.

    A subclass may keep its results by something other than the arguments (``key``) and
    compute them itself (``compute``), with ``func`` None.

    Parameters
    ----------
    func : callable or None
        The function, of hashable positional arguments.
    size : int
        Results kept; the least recently used goes first.
    """

    def __init__(self, func, size: int):
        self.func, self.size = func, size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[tuple, Future] = {}  # keys -> their result to come
        if func is not None:
            functools.update_wrapper(self, func)

    def key(self, *args):
        """What the result of a call with ``args`` is kept by: the arguments."""
        return args

    def compute(self, *args):
        """The result of a call with ``args``: ``func(*args)``."""
        return self.func(*args)

    def __call__(self, *args):
        key = self.key(*args)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            pending = self._computing.get(key)
            mine = pending is None
            if mine:
                pending = self._computing[key] = Future()
        if not mine:  # another thread computes it: its result (or its error)
            return pending.result()
        try:
            value = self.compute(*args)
        except BaseException as err:
            with self._lock:
                del self._computing[key]
            pending.set_exception(err)
            raise
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            del self._computing[key]
        pending.set_result(value)
        return value


def shared_cache(size: int):
    """Decorate a function with a :class:`SharedCache` of ``size`` results."""
    return lambda func: SharedCache(func, size)
