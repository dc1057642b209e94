"""Map pixels in North Polar Stereographic (EPSG:3413) to grid cells, and the land and
coastline drawn beneath them.

The map is an image whose pixels are looked up by cell: each pixel's cell is found once
per grid, level and view (inverse projection, then the grid's point-to-cell), and a layer
is coloured by indexing its values, so a layer change costs one gather. A view's pixels
are split over two threads (numba's loops, the grids' lookups and numpy release the GIL).
Zoomed in far enough that many pixels share a cell, only the pixels near the cells'
boundaries are looked up, as the raster index does (``PixelLookup.tracked``).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyproj

from ..aggregate._index import tracked_runs
from ..aggregate.land import globe_land_share
from ..atomic import replacing
from ..grids import get_grid
from ..sources.remote import cache_dir
from . import _kernels
from .cache import SharedCache

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


def cell_sides(grid) -> np.ndarray:
    """The sides (the square root of the area, in radians) of a few of a grid's cells
    between 50 N and the pole."""
    ids = grid.latlon_to_cells(np.array([50.0, 70.0, 89.9]), np.array([0.0, 100.0, -170.0]))
    return np.sqrt(grid.spherical_areas(ids))


def cell_margin(grid) -> float:
    """Degrees of latitude beyond which no cell reaches past its centre's latitude: four
    times a cell's side (the square root of its area), at least half a degree."""
    return max(0.5, 4.0 * float(np.degrees(np.max(cell_sides(grid)))))


EARTH_RADIUS = 6_371_007.0  # metres, of the sphere of the grids' areas
TRACK_BELOW = {"h3": 0.1}
"""Views of a grid named here whose pixels are narrower than this share of a cell's side
find their pixels' cells by tracking runs (``PixelLookup.tracked``), others pixel by
pixel. Tracking looks up about half the pixels of a view at an eighth of a cell's side,
an eighth of them at a fortieth, and its own passes cost about as much again: it pays
where the grid's point-to-cell is slow (h3ronpy's, 250 ns a point) and the pixels are
below a tenth of a cell's side (640 x 640 pixels at H3 level 6: 0.09 CPU s per pixel,
0.08-0.09 tracked at 0.13 of a side, 0.03 at 0.025); never for HEALPix (healpy's, 30 ns).
"""
TRACK_MIN_PIXELS = 20_000
"""Views of fewer pixels are looked up pixel by pixel (a clicked point's, 1 x 1): the
tracking's fixed cost is a few milliseconds."""


class PixelLookup(SharedCache):
    """Which cell of a group each pixel of a view shows (its position; -1: none),
    remembered per view: int32 positions (int64 for groups of 2**31 cells or more).

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
        super().__init__(None, size)
        self.grid = get_grid(grid, level)
        self.cell_ids = np.asarray(cell_ids)
        self.index = _kernels.IdIndex(self.cell_ids)
        self.south = -90.0
        if min_lat is not None and np.isfinite(min_lat):
            self.south = max(-90.0, float(min_lat) - cell_margin(self.grid))
        self.side = EARTH_RADIUS * float(np.min(cell_sides(self.grid)))  # metres
        # positions as int32 where they fit: half the memory of the views remembered
        self.dtype = np.int32 if len(self.cell_ids) < 2**31 else np.int64

    def key(self, x_range, y_range, width, height):
        """A view, to the millimetre."""
        return tuple(np.round(x_range, 3)), tuple(np.round(y_range, 3)), width, height

    def compute(self, x_range, y_range, width, height) -> np.ndarray:
        """The view's pixels' cells, looked up anew (``__call__`` remembers them): by
        tracking runs where the pixels are much narrower than the cells (``TRACK_BELOW``),
        else pixel by pixel; the two give the same cells."""
        pixel = max(abs(x_range[1] - x_range[0]) / width, abs(y_range[1] - y_range[0]) / height)
        if (width * height >= TRACK_MIN_PIXELS
                and pixel < TRACK_BELOW.get(self.grid.name, 0.0) * self.side):
            return self.tracked(x_range, y_range, width, height)
        return self.per_pixel(x_range, y_range, width, height)

    def per_pixel(self, x_range, y_range, width, height) -> np.ndarray:
        """The view's pixels' cells, each pixel's looked up (those north of
        ``south``)."""
        lon, lat = pixel_lonlat(x_range, y_range, width, height)
        lon, lat = lon.ravel(), lat.ravel()
        out = np.full(lon.size, -1, dtype=self.dtype)
        if not len(self.cell_ids):
            return out.reshape(height, width)
        where = np.flatnonzero(np.isfinite(lat) & (lat >= self.south))

        def find(part):
            part = where[part]
            out[part] = self.index.positions(self.grid.latlon_to_cells(lat[part], lon[part]))

        in_parts(find, len(where), 1)
        return out.reshape(height, width)

    def tracked(self, x_range, y_range, width, height) -> np.ndarray:
        """The view's pixels' cells, as ``per_pixel`` finds them, from the cells of a few
        pixels of each row: the raster index's tracking of runs
        (``aggregate._index.tracked_runs``; its README section "Pixel -> cell index"),
        which looks up the pixels around the boundaries between cells, each row's ends
        and every 256th pixel, and checks each row against its neighbours."""
        lon, lat = pixel_lonlat(x_range, y_range, width, height)
        out = np.full((height, width), -1, dtype=self.dtype)
        if not len(self.cell_ids):
            return out
        # in this thread: the tracking's own passes hold the GIL, and two parts of the
        # view would each check their first and last rows whole (a fifth more CPU)
        runs = tracked_runs(np.arange(width, dtype=np.float64),
                             np.arange(height, dtype=np.float64), self.grid, self.index.ids,
                             _ViewPixels(lon, lat))
        _kernels.fill_runs(*runs, out)
        out[~(lat >= self.south)] = -1  # as per_pixel, which looks these up not at all
        return out


class _ViewPixels:
    """A view's pixel centres' lon/lat, as the transformer ``tracked_runs`` asks for
    the lon/lat of the points it probes: here the points are (column, row) numbers, so
    that the tracking sees the very lon/lat ``per_pixel`` does (it wraps the longitude
    into [-180, 180) again, which leaves the inverse projection's own unchanged)."""

    def __init__(self, lon, lat):
        self.lon, self.lat = lon, lat

    def transform(self, columns, rows):
        at = np.asarray(rows, dtype=np.intp), np.asarray(columns, dtype=np.intp)
        return self.lon[at], self.lat[at]


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
    with replacing(path) as tmp, open(tmp, "wb") as f:  # a file: np.save adds no ".npy"
        np.save(f, land)


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


@functools.cache
def land_sides() -> np.ndarray:
    """The side of a half the land share (``land_share``) takes around each box's
    centre, as bytes: 0 where the box and its neighbours east, south and south-east (the
    last row its own south, the last column's east the first) are all below a half, 1
    where all are at least a half, 2 elsewhere (about 2% of the boxes). Bilinear
    interpolation between those four centres stays on their side where they agree, so
    the land beneath the map (``_kernels.is_land``) interpolates only near the coast."""
    half = land_share() >= 0.5
    two = np.concatenate([half[1:], half[-1:]])  # each box's and the one south of it
    every, some = half & two, half | two
    every &= np.roll(every, -1, axis=1)  # and the two east of those
    some |= np.roll(some, -1, axis=1)
    sides = some.view(np.uint8) * np.uint8(2)
    sides[every] = 1
    return sides


PARALLELS, MERIDIANS = 10.0, 30.0  # the graticule's spacing, degrees
MERIDIANS_TO = 88.0  # meridians stop short of the pole, where they all meet


def land_and_lines(x_range, y_range, width, height) -> tuple[np.ndarray, np.ndarray]:
    """The land of a view (1 on land, 0 elsewhere) and its lines (2 on the coast, 3 on
    the graticule, 0 elsewhere), as bytes, in one numba pass (``_kernels.land_lines``).

    A pixel is land where the land share (``land_share``, on a LAND_STEP grid north of
    LAND_MIN_LAT), interpolated bilinearly between the boxes' centres at the pixel's
    centre, is at least a half: zoomed in, the coast runs smoothly between the boxes'
    centres, not in the boxes' steps. The coast is land beside water, the
    graticule one-pixel lines between bands of latitude PARALLELS degrees wide and of
    longitude MERIDIANS degrees wide (the meridians stopping short of the pole, at
    MERIDIANS_TO). The coastline and the graticule are drawn into an image, not as
    lines: the browser redraws every vertex of a line on every change (and HoloViews
    re-sends a line layer with every frame of the map), an image costs one blit."""
    lon, lat = pixel_lonlat(x_range, y_range, width, height)
    fill, lines = (np.empty(lat.shape, dtype=np.uint8) for _ in range(2))
    _kernels.land_lines(lon, lat, land_share(), land_sides(), LAND_STEP, LAND_MIN_LAT,
                        PARALLELS, MERIDIANS, MERIDIANS_TO, fill, lines)
    return fill, lines
