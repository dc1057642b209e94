"""Numba loops of the map's per-pixel work: a view's inverse projection, the positions
of its pixels' cells in a group, its land and lines. Each equals the numpy formula it
replaces (the tests hold them equal) in one pass over the pixels, without the numpy
formula's temporary arrays; none holds the GIL, so the halves of a view can run at once.
"""

from __future__ import annotations

import numba as nb
import numpy as np

BUCKETS_PER_ID = 2
"""Buckets of the id index (``IdIndex``) per id, rounded up to a power of two."""


class IdIndex:
    """Where each id of a sorted array is, found in one or two steps: the ids are
    bucketed by their value (``(id - low) >> shift``) and a bucket's ids searched alone.
    ``np.searchsorted`` on 1.66M ids takes 21 steps a query, the last ten of them cache
    misses (60 ns a query on 400,000 pixels); an H3 or HEALPix domain's ids fill their
    range evenly enough that a bucket holds a few ids.

    Parameters
    ----------
    ids : numpy.ndarray
        Sorted unique ids (unsigned 64-bit).
    """

    def __init__(self, ids):
        self.ids = np.ascontiguousarray(ids, dtype=np.uint64)
        n = len(self.ids)
        self.low = int(self.ids[0]) if n else 0
        span = int(self.ids[-1]) - self.low if n else 0
        want = max(1, BUCKETS_PER_ID * n - 1).bit_length()  # log2 of the buckets wanted
        self.shift = max(0, span.bit_length() - want)
        buckets = (span >> self.shift) + 1
        key = ((self.ids - np.uint64(self.low)) >> np.uint64(self.shift)).astype(np.int64)
        self.starts = np.zeros(buckets + 1, dtype=np.int32 if n < 2**31 else np.int64)
        np.cumsum(np.bincount(key, minlength=buckets), out=self.starts[1:])

    def positions(self, ids, out=None) -> np.ndarray:
        """Position of each id in the sorted ids, -1 where it is not there."""
        ids = np.ascontiguousarray(ids, dtype=np.uint64)
        out = np.empty(len(ids), dtype=np.int64) if out is None else out
        _positions(self.ids, self.starts, np.uint64(self.low), np.uint64(self.shift), ids,
                   out)
        return out


@nb.njit(cache=True, nogil=True)
def _positions(sorted_ids, starts, low, shift, ids, out):
    n_buckets = len(starts) - 1
    for k in range(len(ids)):
        q = ids[k]
        out[k] = -1
        if q < low:
            continue
        b = (q - low) >> shift
        if b >= n_buckets:
            continue
        lo, hi = starts[b], starts[b + 1]
        while lo < hi:  # the first id not below q
            mid = (lo + hi) >> 1
            if sorted_ids[mid] < q:
                lo = mid + 1
            else:
                hi = mid
        if lo < starts[b + 1] and sorted_ids[lo] == q:
            out[k] = lo


@nb.njit(cache=True, nogil=True)
def polar_lonlat(xs, ys, r0, dr, lat_at, lon_0, lon, lat):
    """Lon/lat of the pixel centres ``(ys[i], xs[j])`` of a view in polar stereographic
    metres, into ``lon`` and ``lat`` (each (len(ys), len(xs))): the longitude the angle
    about the pole, the latitude interpolated in ``lat_at``, the latitude at the
    distances ``r0 + k dr`` from the pole (``lookup.to_lonlat``'s formula)."""
    last = len(lat_at) - 1
    for i in range(len(ys)):
        y = ys[i]
        for j in range(len(xs)):
            x = xs[j]
            t = (np.hypot(x, y) - r0) / dr if dr > 0 else 0.0
            if t <= 0.0:
                lat[i, j] = lat_at[0]
            elif t >= last:
                lat[i, j] = lat_at[last]
            else:
                k = int(t)
                lat[i, j] = lat_at[k] + (t - k) * (lat_at[k + 1] - lat_at[k])
            lon[i, j] = (lon_0 + np.degrees(np.arctan2(x, -y)) + 180.0) % 360.0 - 180.0


@nb.njit(cache=True, nogil=True, inline="always")
def is_land(land, sides, step, la, lo):
    """Whether the land share ``land`` (a ``step``-degree grid, rows from the north,
    columns from 180 W) is at least a half at ``(la, lo)``, interpolated bilinearly
    between the boxes' centres (wrapping in longitude; beyond the centres of the grid's
    first and last rows, those rows'): the coast a smooth line between the boxes'
    centres, not the boxes' stairs. ``sides`` (``lookup.land_sides``) says where the four
    boxes around a point are all on one side of a half, and the share between them then
    too (each lerp ``a + f (b - a)``, ``0 <= f < 1``, stays between ``a`` and ``b`` as
    rounded): only the few points between boxes on both sides are interpolated, and a
    view reads one byte a pixel where it would read four floats. Inlined into the
    pixels' loop by numba (a call a pixel would take ten times as long)."""
    nr, nc = land.shape
    t = (90.0 - la) / step - 0.5
    r0 = int(np.floor(t))
    fr = t - r0
    if r0 < 0:
        r0, r1, fr = 0, 0, 0.0
    elif r0 >= nr - 1:
        r0, r1, fr = nr - 1, nr - 1, 0.0
    else:
        r1 = r0 + 1
    u = (lo + 180.0) / step - 0.5
    c0 = int(np.floor(u))
    fc = u - c0
    if c0 < 0 or c0 >= nc:  # ``c0 % nc`` for longitudes within a turn of [-180, 180)
        # (not ``%`` itself, nor ``/``: either may raise and so slow the loop tenfold)
        c0 = min(max(c0 + nc if c0 < 0 else c0 - nc, 0), nc - 1)
    side = sides[r0, c0]
    if side != 2:
        return side == 1
    c1 = c0 + 1 if c0 < nc - 1 else 0
    a, b = np.float64(land[r0, c0]), np.float64(land[r0, c1])
    top = a + fc * (b - a)
    a, b = np.float64(land[r1, c0]), np.float64(land[r1, c1])
    bottom = a + fc * (b - a)
    return top + fr * (bottom - top) >= 0.5


@nb.njit(cache=True, nogil=True)
def land_lines(lon, lat, land, sides, step, min_lat, parallels, meridians,
               meridians_to, fill, lines):
    """The land (1 on land, 0 elsewhere) and the lines above the cells (2 on the coast,
    3 on the graticule, 0 elsewhere) at each pixel of a view, into ``fill`` and
    ``lines`` (``lookup.land_and_lines``; the tests hold it equal to numpy formulas):
    the land share ``land`` on a ``step``-degree grid north of ``min_lat``, rows from
    the north, interpolated bilinearly between the boxes' centres at each pixel's
    centre, land where at least a half (``is_land``, ``sides`` its shortcut); parallels
    every ``parallels`` degrees, meridians every ``meridians`` up to
    ``meridians_to``."""
    ny, nx = lat.shape
    n_bands = int(round(360.0 / meridians))
    par = np.empty((ny, nx), dtype=np.int32)  # the pixel's band of latitude
    mer = np.empty((ny, nx), dtype=np.int32)  # its band of longitude
    for i in range(ny):
        for j in range(nx):
            la, lo = lat[i, j], lon[i, j]
            fin = np.isfinite(la)
            lo = lo if np.isfinite(lo) else 0.0
            on = fin and la > min_lat
            if on:
                on = is_land(land, sides, step, la, lo)
            fill[i, j] = 1 if on else 0
            par[i, j] = int(np.floor((la if fin else 90.0) / parallels))
            mer[i, j] = int(np.floor((lo + 180.0) / meridians)) % n_bands
    for i in range(ny):
        for j in range(nx):
            la = lat[i, j]
            line = 0
            if fill[i, j] == 1:  # land beside water (beyond the edge: the edge pixel)
                if ((i > 0 and fill[i - 1, j] == 0) or (i < ny - 1 and fill[i + 1, j] == 0)
                        or (j > 0 and fill[i, j - 1] == 0)
                        or (j < nx - 1 and fill[i, j + 1] == 0)):
                    line = 2
            if line == 0 and np.isfinite(la):
                up, left = max(i - 1, 0), max(j - 1, 0)
                if par[i, j] != par[up, j] or par[i, j] != par[i, left]:
                    line = 3
                elif la < meridians_to and (mer[i, j] != mer[up, j]
                                            or mer[i, j] != mer[i, left]):
                    line = 3
            lines[i, j] = line


@nb.njit(cache=True, nogil=True)
def fill_runs(row, start, length, cell, out):
    """``out[row[k], start[k]:start[k] + length[k]] = cell[k]`` for each run ``k`` (a
    row's stretch of pixels in one cell)."""
    for k in range(len(row)):
        r, s = row[k], start[k]
        for j in range(s, s + length[k]):
            out[r, j] = cell[k]
