"""Map pixels in North Polar Stereographic (EPSG:3413) to grid cells, and the land and
coastline drawn beneath them.

The map is an image whose pixels are looked up by cell: each pixel's cell is found once
per grid, level and view (inverse projection, then the grid's point-to-cell), and a layer
is coloured by indexing its values, so a layer change costs one gather.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyproj

from ..aggregate.land import globe_land_share
from ..grids import get_grid
from ..sources.remote import cache_dir

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


def pixel_centres(x_range, y_range, width, height):
    """Centres of an image's pixels; rows run from the top (north of the map) down."""
    (x0, x1), (y0, y1) = x_range, y_range
    xs = x0 + (np.arange(width) + 0.5) * (x1 - x0) / width
    ys = y1 - (np.arange(height) + 0.5) * (y1 - y0) / height
    return xs, ys


def pixel_lonlat(x_range, y_range, width, height):
    """Lon/lat of every pixel centre, each (height, width), read-only. The last few
    views' are remembered: the cells' lookup and the land beneath share one inverse
    projection (about 0.2 s for 640 x 640 pixels)."""
    return _pixel_lonlat(tuple(map(float, x_range)), tuple(map(float, y_range)), int(width),
                         int(height))


@functools.lru_cache(maxsize=4)
def _pixel_lonlat(x_range, y_range, width, height):
    xs, ys = pixel_centres(x_range, y_range, width, height)
    lon, lat = to_lonlat(*np.meshgrid(xs, ys))
    lon.flags.writeable = lat.flags.writeable = False
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


class PixelLookup:
    """Which cell of a group each pixel of a view shows (-1: none), remembered per view.

    Parameters
    ----------
    grid, level : str, int
        The group's grid and level.
    cell_ids : numpy.ndarray
        The group's sorted cell ids; the lookup returns positions into it.
    size : int
        Views remembered.
    """

    def __init__(self, grid, level, cell_ids, size=8):
        self.grid = get_grid(grid, level)
        self.cell_ids = np.asarray(cell_ids)
        self._cache: dict = {}
        self._size = size

    def __call__(self, x_range, y_range, width, height) -> np.ndarray:
        key = (tuple(np.round(x_range, 3)), tuple(np.round(y_range, 3)), width, height)
        if key not in self._cache:
            if len(self._cache) >= self._size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = self._lookup(x_range, y_range, width, height)
        return self._cache[key]

    def _lookup(self, x_range, y_range, width, height):
        lon, lat = pixel_lonlat(x_range, y_range, width, height)
        out = np.full(lon.size, -1, dtype=np.int64)
        ok = np.isfinite(lat.ravel()) & (lat.ravel() >= -90)
        if ok.any() and len(self.cell_ids):
            ids = self.grid.latlon_to_cells(lat.ravel()[ok], lon.ravel()[ok])
            pos = np.minimum(np.searchsorted(self.cell_ids, ids), len(self.cell_ids) - 1)
            hit = self.cell_ids[pos] == ids
            out[np.flatnonzero(ok)[hit]] = pos[hit]
        return out.reshape(lon.shape)


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


def graticule_image(x_range, y_range, width, height) -> np.ndarray:
    """True at the pixels of a view on the graticule: parallels every 10 degrees,
    meridians every 30 (stopping short of the pole), one pixel wide. An image, as the
    coast is, because HoloViews re-sends a line layer with every frame of the map."""
    lon, lat = pixel_lonlat(x_range, y_range, width, height)
    fin = np.isfinite(lat)
    parallels = _edges(np.floor(np.where(fin, lat, 90.0) / PARALLELS)) & fin
    lon_band = np.floor((np.nan_to_num(lon) + 180.0) / MERIDIANS) % (360.0 / MERIDIANS)
    return parallels | (_edges(lon_band) & fin & (lat < MERIDIANS_TO))
