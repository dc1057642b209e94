"""Map pixels in North Polar Stereographic (EPSG:3413) to grid cells, and the land and
coastline drawn beneath them.

The map is an image whose pixels are looked up by cell: each pixel's cell is found once
per grid, level and view (inverse projection, then the grid's point-to-cell), and a layer
is coloured by indexing its values, so a layer change costs one gather. A view's pixels
are split over two threads (numba's loops, the grids' lookups and numpy release the GIL).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyproj

from ..aggregate.land import globe_land_share
from ..grids import get_grid
from ..sources.remote import cache_dir
from . import _kernels

POLAR_CRS = "EPSG:3413"


@functools.cache
def _to_lonlat():
    return pyproj.Transformer.from_crs(POLAR_CRS, "EPSG:4326", always_xy=True)


@functools.cache
def _to_polar():
    return pyproj.Transformer.from_crs("EPSG:4326", POLAR_CRS, always_xy=True)


def to_polar(lon, lat):
    """Lon/lat (degrees) to EPSG:3413 metres."""
    return _to_polar().transform(np.asarray(lon, float), np.asarray(lat, float))


LOOKUP_THREADS = 2
"""Threads a view's pixels are split over (its inverse projection, its point-to-cell):
numba's loops, the grids' lookups (h3ronpy, healpy) and numpy release the GIL, so the
parts run at once where the machine has a core to spare."""
PARALLEL_PIXELS = 50_000
"""Fewer pixels than this are worked on in the calling thread alone."""


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="map-lookup")


def in_parts(work, rows, columns):
    """``work(part)`` for slices ``part`` of ``range(rows)`` that together cover it, in
    the lookup threads (``LOOKUP_THREADS``), for ``rows`` of ``columns`` pixels; all at
    once in this thread below ``PARALLEL_PIXELS`` pixels."""
    if rows * columns < PARALLEL_PIXELS or rows < LOOKUP_THREADS:
        work(slice(0, rows))
        return
    bounds = np.linspace(0, rows, LOOKUP_THREADS + 1).astype(int)
    for done in [_pool().submit(work, slice(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]:
        done.result()


def pixel_centres(x_range, y_range, width, height):
    """Centres of an image's pixels; rows run from the top (north of the map) down."""
    (x0, x1), (y0, y1) = x_range, y_range
    xs = x0 + (np.arange(width) + 0.5) * (x1 - x0) / width
    ys = y1 - (np.arange(height) + 0.5) * (y1 - y0) / height
    return xs, ys


def pixel_lonlat(x_range, y_range, width, height):
    """Lon/lat of every pixel centre, each (height, width), read-only. The last few
    views' are remembered: the cells' lookup and the land beneath share one inverse
    projection (about 0.015 s of CPU for 640 x 640 pixels)."""
    return _pixel_lonlat(tuple(map(float, x_range)), tuple(map(float, y_range)), int(width),
                         int(height))


@functools.lru_cache(maxsize=4)
def _pixel_lonlat(x_range, y_range, width, height):
    xs, ys = pixel_centres(x_range, y_range, width, height)
    lon, lat = grid_lonlat(xs, ys)
    lon.flags.writeable = lat.flags.writeable = False
    return lon, lat


def grid_lonlat(xs, ys):
    """``to_lonlat`` of the points ``(xs[j], ys[i])``, each (len(ys), len(xs)), in one
    numba pass (a third of the time) with the same table of latitudes: the nearest and
    farthest points from the pole are those nearest and farthest along each axis."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    if not (len(xs) and len(ys)):
        return to_lonlat(*np.meshgrid(xs, ys))
    ax, ay = np.abs(xs), np.abs(ys)
    near, far = np.hypot(ax.min(), ay.min()), np.hypot(ax.max(), ay.max())
    radii = np.linspace(near, far, RADIUS_SAMPLES)
    _, lat_at = _to_lonlat().transform(np.zeros_like(radii), -radii)
    if not np.all(np.isfinite(lat_at)):  # beyond the projection's reach: pyproj itself
        return to_lonlat(*np.meshgrid(xs, ys))
    lon, lat = (np.empty((len(ys), len(xs))) for _ in range(2))
    step = (far - near) / (RADIUS_SAMPLES - 1)
    in_parts(lambda r: _kernels.polar_lonlat(xs, ys[r], near, step, lat_at, LON_0, lon[r],
                                             lat[r]), len(ys), len(xs))
    return lon, lat


LON_0 = -45.0  # EPSG:3413's central meridian (polar stereographic, north pole)
RADIUS_SAMPLES = 8192


def to_lonlat(x, y):
    """EPSG:3413 metres to lon/lat (degrees), four times faster than pyproj on a view's
    pixels: the longitude exactly (the angle about the pole), the latitude, which
    depends on the distance from the pole alone, interpolated in a table pyproj makes
    for the distances at hand (within 1e-6 degrees, a few millimetres, over views up to
    the size of the Earth; far coarser views lose less than a pixel)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    rho = np.hypot(x, y)
    if not rho.size:
        return rho.copy(), rho.copy()
    radii = np.linspace(rho.min(), rho.max(), RADIUS_SAMPLES)
    _, lat_at = _to_lonlat().transform(np.zeros_like(radii), -radii)
    if not np.all(np.isfinite(lat_at)):  # beyond the projection's reach: pyproj itself
        lon, lat = _to_lonlat().transform(x.ravel(), y.ravel())
        return lon.reshape(x.shape), lat.reshape(x.shape)
    lat = np.interp(rho, radii, lat_at)
    lon = (LON_0 + np.degrees(np.arctan2(x, -y)) + 180.0) % 360.0 - 180.0
    return lon, lat


def cell_margin(grid) -> float:
    """Degrees of latitude beyond which no cell reaches past its centre's latitude: four
    times a cell's side (the square root of its area), at least half a degree."""
    ids = grid.latlon_to_cells(np.array([50.0, 70.0, 89.9]), np.array([0.0, 100.0, -170.0]))
    side = np.degrees(np.sqrt(np.max(grid.spherical_areas(ids))))
    return max(0.5, 4.0 * float(side))


class PixelLookup:
    """Which cell of a group each pixel of a view shows (-1: none), remembered per view.

    Safe to call from several threads at once (the page's sessions and the prefetch of
    neighbouring levels, see ``CubeStore.prefetch_levels``): a view is looked up once, a
    second caller asking for it waits for the first one's result.

    Parameters
    ----------
    grid, level : str, int
        The group's grid and level.
    cell_ids : numpy.ndarray
        The group's sorted cell ids; the lookup returns positions into it.
    size : int
        Views remembered, the least recently used forgotten first.
    min_lat : float, optional
        The southernmost cell centre of the group: pixels farther south than a cell
        reaches (``cell_margin``) are known to show no cell and are not looked up (the
        corners of a view of the whole domain, a fifth of its pixels).
    """

    def __init__(self, grid, level, cell_ids, size=8, min_lat=None):
        self.grid = get_grid(grid, level)
        self.cell_ids = np.asarray(cell_ids)
        self.index = _kernels.IdIndex(self.cell_ids)
        self.south = -90.0
        if min_lat is not None and np.isfinite(min_lat):
            self.south = max(-90.0, float(min_lat) - cell_margin(self.grid))
        self._cache: OrderedDict = OrderedDict()
        self._computing: dict[tuple, Future] = {}
        self._lock = threading.Lock()
        self._size = size

    def __call__(self, x_range, y_range, width, height) -> np.ndarray:
        key = (tuple(np.round(x_range, 3)), tuple(np.round(y_range, 3)), width, height)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            pending = self._computing.get(key)
            mine = pending is None
            if mine:
                pending = self._computing[key] = Future()
        if not mine:  # another thread looks this view up: its result
            return pending.result()
        try:
            idx = self._lookup(x_range, y_range, width, height)
        except BaseException as err:
            with self._lock:
                del self._computing[key]
            pending.set_exception(err)
            raise
        with self._lock:
            self._cache[key] = idx
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
            del self._computing[key]
        pending.set_result(idx)
        return idx

    def _lookup(self, x_range, y_range, width, height):
        lon, lat = pixel_lonlat(x_range, y_range, width, height)
        lon, lat = lon.ravel(), lat.ravel()
        out = np.full(lon.size, -1, dtype=np.int64)
        if not len(self.cell_ids):
            return out.reshape(height, width)
        where = np.flatnonzero(np.isfinite(lat) & (lat >= self.south))

        def find(part):
            part = where[part]
            out[part] = self.index.positions(self.grid.latlon_to_cells(lat[part], lon[part]))

        in_parts(find, len(where), 1)
        return out.reshape(height, width)


LAND_STEP = 0.05  # degrees
LAND_MIN_LAT = 40.0


def _cache_path() -> Path:
    """Where the land share is kept: the dashboard's part of the local cache
    (``$ENTROPICE_CACHE/dashboard``, by default ``~/.cache/entropice/dashboard``); with
    ``ENTROPICE_CACHE_DIR`` set, that directory's ``dashboard/`` (as the aggregation's
    on-disk index cache honours it)."""
    root = os.environ.get("ENTROPICE_CACHE_DIR")
    folder = Path(root) / "dashboard" if root else cache_dir("dashboard")
    return folder / f"land-{LAND_STEP}-{LAND_MIN_LAT}.npy"


def _globe_land_share() -> np.ndarray:
    factor = int(round(LAND_STEP * 120))  # the GLOBE mask has 120 rows per degree
    return globe_land_share(LAND_MIN_LAT, factor).values


def save_land_share():
    """Compute the land share and keep it on disk (``_cache_path``); a child process
    of the dashboard runs this."""
    path = _cache_path()
    land = _globe_land_share()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.npy")
    np.save(tmp, land)
    os.replace(tmp, path)


@functools.cache
def land_share() -> np.ndarray:
    """Land share on a LAND_STEP lat/lon grid north of LAND_MIN_LAT, rows from the north:
    block means of the NOAA GLOBE 30'' mask (package ``global-land-mask``, offline).
    Decompressing that mask takes seconds and about 1 GB, so it is done once, in a child
    process (the dashboard's server never holds the mask), and the result kept on disk;
    where the cache cannot be written, here."""
    path = _cache_path()
    if not path.exists():
        try:
            subprocess.run([sys.executable, "-c", "from entropice.dashboard.lookup import "
                            "save_land_share; save_land_share()"],
                           check=True, capture_output=True, timeout=600)
        except (OSError, subprocess.SubprocessError):
            pass
    if path.exists():
        return np.load(path)
    return _globe_land_share()


PARALLELS, MERIDIANS = 10.0, 30.0  # the graticule's spacing, degrees
MERIDIANS_TO = 88.0  # meridians stop short of the pole, where they all meet


def _edges(band: np.ndarray) -> np.ndarray:
    """Pixels beside a pixel of another band: one-pixel lines between bands."""
    b = np.pad(band, 1, mode="edge")
    return ((b[1:-1, 1:-1] != b[:-2, 1:-1]) | (b[1:-1, 1:-1] != b[1:-1, :-2]))


def land_image(x_range, y_range, width, height) -> np.ndarray:
    """At each pixel of a view: 1 on land, 2 on the coast (land beside water), NaN on
    water. The coastline is drawn into the image, not as lines: the browser redraws
    every vertex of a line on every change, an image costs one blit."""
    land = land_share()
    lon, lat = pixel_lonlat(x_range, y_range, width, height)
    ok = np.isfinite(lat) & (lat > LAND_MIN_LAT)
    r = np.clip(((90.0 - np.where(ok, lat, 90.0)) / LAND_STEP).astype(int), 0, land.shape[0] - 1)
    c = np.clip(((np.nan_to_num(lon) + 180.0) / LAND_STEP).astype(int), 0, land.shape[1] - 1)
    is_land = ok & (land[r, c] >= 0.5)
    water = np.pad(~is_land, 1, mode="edge")
    coast = is_land & (water[:-2, 1:-1] | water[2:, 1:-1] | water[1:-1, :-2] | water[1:-1, 2:])
    return np.where(is_land, np.where(coast, 2.0, 1.0), np.nan)


def land_and_lines(x_range, y_range, width, height) -> tuple[np.ndarray, np.ndarray]:
    """The land of a view (1 on land, 0 elsewhere) and its lines (2 on the coast, 3 on
    the graticule, 0 elsewhere), as bytes: ``land_image`` and ``graticule_image`` in one
    numba pass (a fifth of the time)."""
    lon, lat = pixel_lonlat(x_range, y_range, width, height)
    fill, lines = (np.empty(lat.shape, dtype=np.uint8) for _ in range(2))
    _kernels.land_lines(lon, lat, land_share(), LAND_STEP, LAND_MIN_LAT, PARALLELS,
                        MERIDIANS, MERIDIANS_TO, fill, lines)
    return fill, lines


def graticule_image(x_range, y_range, width, height) -> np.ndarray:
    """True at the pixels of a view on the graticule: parallels every 10 degrees,
    meridians every 30 (stopping short of the pole), one pixel wide. An image, as the
    coast is, because HoloViews re-sends a line layer with every frame of the map."""
    lon, lat = pixel_lonlat(x_range, y_range, width, height)
    fin = np.isfinite(lat)
    parallels = _edges(np.floor(np.where(fin, lat, 90.0) / PARALLELS)) & fin
    lon_band = np.floor((np.nan_to_num(lon) + 180.0) / MERIDIANS) % (360.0 / MERIDIANS)
    return parallels | (_edges(lon_band) & fin & (lat < MERIDIANS_TO))
