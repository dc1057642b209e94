"""Geometry on the WGS84 ellipsoid shared by the grids and the aggregation.

Polygons are handled in one of two forms: lon/lat for drawing (split at the
antimeridian, closed along the pole) and the north polar Lambert azimuthal
equal-area projection (EPSG:6931) for exact areas and overlaps, where neither the
antimeridian nor the pole is special.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely

WGS84_A_KM = 6378.137
WGS84_F = 1 / 298.257223563
WGS84_E2 = WGS84_F * (2 - WGS84_F)

EQUAL_AREA_CRS = "EPSG:6931"
"""WGS 84 / NSIDC EASE-Grid 2.0 North: Lambert azimuthal equal-area about the pole."""


def ellipsoid_area_factor_km2(lat):
    """Ellipsoid area per unit-sphere area (km2 per steradian) at geodetic ``lat``.

    The area element of the ellipsoid in (lon, geodetic lat) is M N cos(lat), that of
    the unit sphere cos(lat); their ratio is a^2 (1 - e^2) / (1 - e^2 sin^2 lat)^2.
    """
    s = np.sin(np.radians(lat))
    return WGS84_A_KM**2 * (1 - WGS84_E2) / (1 - WGS84_E2 * s * s) ** 2


def ellipsoid_area_north_of(lat):
    """Area of the WGS84 ellipsoid north of geodetic latitude ``lat``, in km2."""
    e = np.sqrt(WGS84_E2)

    def q(phi):  # authalic q function
        s = np.sin(np.radians(phi))
        return (1 - WGS84_E2) * (s / (1 - WGS84_E2 * s * s)
                                 - np.log((1 - e * s) / (1 + e * s)) / (2 * e))

    return np.pi * WGS84_A_KM**2 * (q(90.0) - q(lat))


def slerp_densify(lonlat, n):
    """Insert ``n - 1`` points along the great circle of each edge of a closed ring.

    ``lonlat`` is an ``(m, 2)`` ring without the closing vertex; returns ``(m n, 2)``.
    """
    if n <= 1:
        return lonlat
    xyz = lonlat_to_xyz(lonlat[:, 0], lonlat[:, 1])
    nxt = np.roll(xyz, -1, axis=0)
    omega = np.arccos(np.clip((xyz * nxt).sum(axis=1), -1.0, 1.0))[:, None]
    t = (np.arange(n) / n)[None, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        so = np.sin(omega)[:, None]
        w0 = np.where(so > 1e-15, np.sin((1 - t) * omega[:, None]) / so, 1 - t)
        w1 = np.where(so > 1e-15, np.sin(t * omega[:, None]) / so, t)
    pts = (w0 * xyz[:, None, :] + w1 * nxt[:, None, :]).reshape(-1, 3)
    lon, lat = xyz_to_lonlat(pts)
    return np.column_stack([lon, lat])


def lonlat_to_xyz(lon, lat):
    lon, lat = np.radians(lon), np.radians(lat)
    c = np.cos(lat)
    return np.stack([c * np.cos(lon), c * np.sin(lon), np.sin(lat)], axis=-1)


def xyz_to_lonlat(xyz):
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    lon = np.degrees(np.arctan2(y, x))
    lat = np.degrees(np.arctan2(z, np.hypot(x, y)))
    return wrap_lon(lon), lat


def wrap_lon(lon):
    """Longitudes in [-180, 180)."""
    return (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0


def _wrapped_diff(d):
    return (d + 180.0) % 360.0 - 180.0


def lonlat_polygon(ring):
    """A cell boundary ring ``(m, 2)`` of (lon, lat) as a polygon that draws in lon/lat.

    Longitudes are unwrapped along the ring; a ring that winds once around a pole is
    closed along that pole; a polygon reaching past +-180 is split there.
    """
    ring = _expand_pole_vertices(ring)
    lon, lat = ring[:, 0], ring[:, 1]
    steps = _wrapped_diff(np.diff(np.append(lon, lon[0])))
    unwrapped = lon[0] + np.concatenate([[0.0], np.cumsum(steps[:-1])])
    winding = steps.sum()
    if abs(winding) > 180.0:  # the ring goes round a pole
        pole = 90.0 if lat.mean() > 0 else -90.0
        end = unwrapped[0] + winding
        coords = np.column_stack([
            np.concatenate([unwrapped, [end, end, unwrapped[0]]]),
            np.concatenate([lat, [lat[0], pole, pole]]),
        ])
    else:
        coords = np.column_stack([unwrapped, lat])
    poly = shapely.make_valid(shapely.Polygon(coords))
    lo, hi = coords[:, 0].min(), coords[:, 0].max()
    if lo >= -180.0 and hi <= 180.0:
        return poly
    parts = []
    for k in range(int(np.floor((lo + 180.0) / 360.0)), int(np.floor((hi + 180.0) / 360.0)) + 1):
        window = shapely.box(-180.0 + 360.0 * k, -90.0, 180.0 + 360.0 * k, 90.0)
        piece = shapely.intersection(poly, window)
        if not piece.is_empty and piece.area > 0:
            parts.append(shapely.affinity.translate(piece, xoff=-360.0 * k))
    return shapely.union_all(parts)


def _expand_pole_vertices(ring):
    """Replace a vertex on a pole (where longitude means nothing) by two vertices on the
    pole at the longitudes of its neighbours, so the ring runs along the pole line."""
    at_pole = np.abs(ring[:, 1]) >= 90.0 - 1e-9
    if not at_pole.any() or at_pole.all():
        return ring
    out = []
    m = len(ring)
    for i in range(m):
        if at_pole[i]:
            out.append((ring[i - 1, 0], ring[i, 1]))
            out.append((ring[(i + 1) % m, 0], ring[i, 1]))
        else:
            out.append(tuple(ring[i]))
    return np.asarray(out)


def lonlat_polygons(rings):
    """``lonlat_polygon`` for many rings; rings that need no care are built at once."""
    out = np.empty(len(rings), dtype=object)
    simple = np.zeros(len(rings), dtype=bool)
    for i, ring in enumerate(rings):
        span = np.ptp(ring[:, 0])
        simple[i] = span < 180.0 and np.abs(ring[:, 1]).max() < 89.0
    idx = np.flatnonzero(simple)
    if len(idx):
        coords = np.concatenate([rings[i] for i in idx])
        ring_index = np.repeat(np.arange(len(idx)), [len(rings[i]) for i in idx])
        out[idx] = shapely.polygons(shapely.linearrings(coords, indices=ring_index))
    for i in np.flatnonzero(~simple):
        out[i] = lonlat_polygon(rings[i])
    return out


@lru_cache(maxsize=8)
def transformer(src, dst):
    """A cached pyproj transformer, (x, y) = (lon, lat) order for geographic CRS."""
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def to_equal_area(lon, lat):
    """(x, y) in metres in the polar equal-area projection (EPSG:6931)."""
    return transformer("EPSG:4326", EQUAL_AREA_CRS).transform(lon, lat)


def equal_area_polygons(rings):
    """Cell rings of (lon, lat) as polygons in the polar equal-area projection.

    The projection is centred on the pole, so rings that cross the antimeridian or
    surround the pole need no special care.
    """
    coords = np.concatenate(rings)
    x, y = to_equal_area(coords[:, 0], coords[:, 1])
    ring_index = np.repeat(np.arange(len(rings)), [len(r) for r in rings])
    return shapely.polygons(shapely.linearrings(np.column_stack([x, y]), indices=ring_index))
