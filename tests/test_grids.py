"""The H3 and HEALPix grids: domain, areas, ids, centres, boundaries and hierarchy."""

import h3
import healpy as hp
import numpy as np
import pytest
import shapely
import xdggs
from hypothesis import given, settings
from hypothesis import strategies as st

from entropice.grids import geometry, get_grid, grid_of

SETTINGS = settings(max_examples=40, deadline=None)

arctic_points = st.tuples(st.floats(50.0, 89.999), st.floats(-180.0, 179.999))
h3_levels = st.integers(0, 9)
healpix_levels = st.integers(0, 12)


# -- domain and areas ------------------------------------------------------------


@pytest.mark.parametrize("level", [3, 4, 5, 6])
def test_h3_domain_area_equals_the_cap(level):
    ds = get_grid("h3", level).cells(min_lat=50.0)
    cap = geometry.ellipsoid_area_north_of(50.0)
    assert ds.area_km2.sum().item() == pytest.approx(cap, rel=0.01)


@pytest.mark.parametrize("level", [6, 7, 8, 9, 10])
def test_healpix_domain_area_equals_the_cap(level):
    """North of 41.8 deg HEALPix cells sit on rings of constant latitude, so a domain of
    whole cells ends at a ring edge, up to half a ring north of 50 deg (0.2% of the area
    at level 9). Against the cap north of that edge the areas agree to 0.1%."""
    grid = get_grid("healpix", level)
    ds = grid.cells(min_lat=50.0)
    nside = grid.nside
    i = np.round(np.sqrt((1 - np.sin(np.radians(ds.lat.min().item()))) * 3 * nside**2))
    edge = np.degrees(np.arcsin(1 - i * (i + 1) / (3 * nside**2)))
    assert abs(edge - 50.0) < 0.5
    cap = geometry.ellipsoid_area_north_of(edge)
    assert ds.area_km2.sum().item() == pytest.approx(cap, rel=0.001)


@pytest.mark.parametrize("level", [2, 4, 6, 8])
def test_healpix_areas_are_exact_on_ring_boundaries(level):
    """HEALPix polar-cap rings 1..i cover exactly the spherical cap north of
    z = 1 - i(i+1) / (3 nside^2); on the ellipsoid the area follows to ~1e-5."""
    grid = get_grid("healpix", level)
    nside = grid.nside
    i = nside // 2
    z_ring = 1 - i * i / (3 * nside**2)
    ids = grid.domain_ids(min_lat=np.degrees(np.arcsin(z_ring)) - 1e-9)
    lat_edge = np.degrees(np.arcsin(1 - i * (i + 1) / (3 * nside**2)))
    # the boundary zigzags about lat_edge; the area factor is nearly linear there
    expected = geometry.ellipsoid_area_north_of(lat_edge)
    assert grid.areas_km2(ids).sum() == pytest.approx(expected, rel=2e-4)


@pytest.mark.parametrize("name", ["h3", "healpix"])
def test_areas_sum_to_the_ellipsoid(name):
    grid = get_grid(name, 2)
    ids = grid.domain_ids(min_lat=-90.0)
    total = 4 * np.pi * geometry.WGS84_A_KM**2 * (
        1 + (1 - geometry.WGS84_E2) / np.sqrt(geometry.WGS84_E2)
        * np.arctanh(np.sqrt(geometry.WGS84_E2))) / 2
    assert grid.areas_km2(ids).sum() == pytest.approx(total, rel=2e-3 if name == "h3" else 1e-6)


@pytest.mark.parametrize(("name", "level"), [("h3", 1), ("h3", 2), ("healpix", 3),
                                             ("healpix", 4)])
def test_domain_is_every_cell_north_of_the_boundary(name, level):
    grid = get_grid(name, level)
    everything = grid.domain_ids(min_lat=-90.0)
    lat, _ = grid.centres(everything)
    expected = np.sort(everything[lat >= 55.0])
    np.testing.assert_array_equal(grid.domain_ids(min_lat=55.0), expected)
    if name == "h3":
        assert len(everything) == h3.get_num_cells(level)
    else:
        assert len(everything) == hp.nside2npix(grid.nside)


@pytest.mark.parametrize(("name", "level"), [("h3", 4), ("healpix", 7)])
def test_cells_dataset_decodes_with_xdggs(name, level):
    ds = get_grid(name, level).cells()
    assert ds.cell_ids.dtype == np.uint64
    assert np.all(np.diff(ds.cell_ids.values.astype(np.float64)) > 0)
    assert (ds.lat >= 50.0).all()
    for var in ("lat", "lon", "area_km2"):
        assert "units" in ds[var].attrs and "long_name" in ds[var].attrs
    decoded = xdggs.decode(ds)
    info = decoded.dggs.grid_info
    assert info.level == level
    lon, lat = decoded.dggs.cell_centers().longitude, decoded.dggs.cell_centers().latitude
    np.testing.assert_allclose(lat, ds.lat, atol=1e-9)
    np.testing.assert_allclose(geometry.wrap_lon(lon), ds.lon, atol=1e-9)


# -- agreement with the reference libraries ----------------------------------------


@settings(max_examples=15, deadline=None)
@given(st.sampled_from([("h3", 2), ("h3", 5), ("healpix", 4), ("healpix", 9)]),
       st.integers(0, 2**32 - 1))
def test_boundaries_agree_with_xdggs(grid_spec, seed):
    """Every corner xdggs draws is a vertex of our (densified) boundary."""
    grid = get_grid(*grid_spec)
    cells = grid.cells()
    pick = np.random.default_rng(seed).choice(cells.sizes["cells"], 5, replace=False)
    sample = cells.isel(cells=np.sort(pick))
    theirs = xdggs.decode(sample).dggs.cell_boundaries().values
    for ring, poly in zip(grid.vertices(sample.cell_ids.values), theirs):
        xyz = geometry.lonlat_to_xyz(ring[:, 0], ring[:, 1])
        corners = shapely.get_coordinates(poly)
        ref = geometry.lonlat_to_xyz(corners[:, 0], corners[:, 1])
        dist = np.linalg.norm(ref[:, None] - xyz[None], axis=-1).min(axis=1)
        # xdggs adds points where it splits rings at the antimeridian; corners match
        assert np.median(dist) < 1e-7


@SETTINGS
@given(st.lists(arctic_points, min_size=1, max_size=20), h3_levels)
def test_h3_agrees_with_h3(points, level):
    grid = get_grid("h3", level)
    lat, lon = np.array(points).T
    ids = grid.latlon_to_cells(lat, lon)
    ref = [h3.str_to_int(h3.latlng_to_cell(a, b, level)) for a, b in points]
    np.testing.assert_array_equal(ids, np.array(ref, dtype=np.uint64))
    clat, clon = grid.centres(ids)
    ref_centres = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in ids])
    np.testing.assert_allclose(clat, ref_centres[:, 0], atol=1e-9)
    np.testing.assert_allclose(np.cos(np.radians(clon - ref_centres[:, 1])), 1.0, atol=1e-12)
    # every reference vertex is a vertex of ours (ours are densified)
    for cid, ring in zip(ids, grid.vertices(ids)):
        ref = np.array(h3.cell_to_boundary(h3.int_to_str(int(cid))))
        xyz = geometry.lonlat_to_xyz(ring[:, 0], ring[:, 1])
        ref_xyz = geometry.lonlat_to_xyz(ref[:, 1], ref[:, 0])
        dist = np.linalg.norm(ref_xyz[:, None] - xyz[None], axis=-1).min(axis=1)
        assert dist.max() < 1e-9


@SETTINGS
@given(st.lists(arctic_points, min_size=1, max_size=20), healpix_levels)
def test_healpix_agrees_with_healpy(points, level):
    grid = get_grid("healpix", level)
    lat, lon = np.array(points).T
    ids = grid.latlon_to_cells(lat, lon)
    ref = hp.ang2pix(2**level, lon, lat, nest=True, lonlat=True)
    np.testing.assert_array_equal(ids, ref.astype(np.uint64))
    clat, clon = grid.centres(ids)
    rlon, rlat = hp.pix2ang(2**level, ref, nest=True, lonlat=True)
    np.testing.assert_allclose(clat, rlat, atol=1e-9)
    np.testing.assert_allclose(np.cos(np.radians(clon - rlon)), 1.0, atol=1e-12)
    corners = hp.boundaries(2**level, ref, step=1, nest=True).reshape(len(ref), 3, 4)
    for ring, c in zip(grid.vertices(ids), corners):
        xyz = geometry.lonlat_to_xyz(ring[:, 0], ring[:, 1])
        dist = np.linalg.norm(c.T[:, None] - xyz[None], axis=-1).min(axis=1)
        assert dist.max() < 1e-9


@SETTINGS
@given(st.lists(arctic_points, min_size=1, max_size=10), st.sampled_from(["h3", "healpix"]),
       st.integers(0, 8))
def test_points_fall_in_their_cell_polygon(points, name, level):
    """The drawn lon/lat polygon of a point's cell contains the point (or nearly:
    edges are straight in lon/lat between densified vertices)."""
    grid = get_grid(name, level)
    lat, lon = np.array(points).T
    polys = grid.polygons(grid.latlon_to_cells(lat, lon))
    for poly, a, b in zip(polys, lat, lon):
        assert poly.is_valid
        assert poly.distance(shapely.Point(b, a)) < 0.05


@SETTINGS
@given(st.lists(arctic_points, min_size=1, max_size=10), st.sampled_from(["h3", "healpix"]),
       st.integers(1, 6), st.integers(1, 3))
def test_parents_and_children(points, name, coarse, step):
    fine = get_grid(name, coarse + step)
    lat, lon = np.array(points).T
    ids = fine.latlon_to_cells(lat, lon)
    parents = fine.parents(ids, coarse)
    coarse_grid = get_grid(name, coarse)
    kids, offsets = coarse_grid.children(parents, coarse + step)
    for i, cid in enumerate(ids):
        assert cid in kids[offsets[i]:offsets[i + 1]]
    np.testing.assert_array_equal(fine.parents(kids, coarse), np.repeat(parents, np.diff(offsets)))
    if name == "healpix":  # nested: the four children tile the parent exactly
        assert np.all(np.diff(offsets) == 4**step)
        np.testing.assert_allclose(np.add.reduceat(fine.spherical_areas(kids), offsets[:-1]),
                                   coarse_grid.spherical_areas(parents))


# -- drawing: antimeridian and pole --------------------------------------------------


def test_cell_across_the_antimeridian_is_split():
    grid = get_grid("h3", 3)
    cid = grid.latlon_to_cells([70.0], [179.99])[0]
    poly = grid.polygons([cid])[0]
    assert poly.geom_type == "MultiPolygon" and len(poly.geoms) == 2
    west, east = sorted(poly.geoms, key=lambda g: g.bounds[0])
    assert west.bounds[0] == -180.0 and east.bounds[2] == 180.0
    # both halves together have the area of the unwrapped cell
    ring = grid.vertices([cid])[0]
    unwrapped = np.where(ring[:, 0] < 0, ring[:, 0] + 360.0, ring[:, 0])
    whole = shapely.Polygon(np.column_stack([unwrapped, ring[:, 1]]))
    assert poly.area == pytest.approx(whole.area, rel=1e-9)


@pytest.mark.parametrize(("name", "level"), [("h3", 0), ("h3", 2), ("h3", 5)])
def test_cell_around_the_pole_is_closed_along_the_pole(name, level):
    grid = get_grid(name, level)
    cid = grid.latlon_to_cells([90.0], [0.0])[0]
    poly = grid.polygons([cid])[0]
    assert poly.is_valid
    assert poly.bounds[0] == -180.0 and poly.bounds[2] == 180.0 and poly.bounds[3] == 90.0
    lowest = grid.vertices([cid])[0][:, 1].max()  # every longitude, just below the pole
    for lon in np.linspace(-179.5, 179.5, 37):
        assert poly.contains(shapely.Point(lon, (lowest + 90.0) / 2))


def test_healpix_cells_touching_the_pole():
    grid = get_grid("healpix", 3)
    ids = grid.latlon_to_cells(np.full(4, 89.99), np.array([10.0, 100.0, -170.0, -80.0]))
    polys = grid.polygons(ids)
    assert len(set(ids)) == 4
    assert shapely.union_all(polys).bounds == pytest.approx((-180.0, polys[0].bounds[1],
                                                               180.0, 90.0))


# -- bad input -------------------------------------------------------------------------


def test_unknown_grid():
    with pytest.raises(ValueError, match="unknown grid 'dggrid'; choose one of h3, healpix"):
        get_grid("dggrid", 3)


@pytest.mark.parametrize(("name", "level", "match"), [
    ("h3", 10, "between 0 and 9; got 10"),
    ("h3", -1, "between 0 and 9; got -1"),
    ("healpix", 13, "between 0 and 12; got 13"),
])
def test_level_out_of_range(name, level, match):
    with pytest.raises(ValueError, match=match):
        get_grid(name, level)


def test_level_must_be_an_integer():
    with pytest.raises(TypeError, match="level must be an integer"):
        get_grid("h3", 2.5)


def test_parent_level_must_be_coarser():
    with pytest.raises(ValueError, match="not a coarser h3 level than 4"):
        get_grid("h3", 4).parents(np.array([], dtype=np.uint64), 5)


@pytest.mark.parametrize("name,level,text", [("h3", 5, "85"), ("healpix", 7, None)])
def test_grid_of_rebuilds_the_grid(name, level, text):
    """The grid of a dataset comes from its cell_ids attributes (as xdggs reads them)."""
    grid = get_grid(name, level)
    cells = grid.cells()
    assert grid_of(cells) == grid and grid_of(cells.lat) == grid
    assert grid_of(dict(cells.cell_ids.attrs)) == grid
    first = cells.cell_ids.values[0]
    assert grid.format_id(first) == (format(int(first), "x") if name == "h3" else str(first))
    if text:
        assert grid.format_id(first).startswith(text)
    assert grid.fold_level() == level - {"h3": 2, "healpix": 3}[name]
    with pytest.raises(ValueError, match="no cell_ids"):
        grid_of(cells.drop_vars("cell_ids"))
    bad = dict(cells.cell_ids.attrs, level=level + 1)
    assert "not " + name in grid.check_attrs(bad)


def test_healpix_needs_nested_ids():
    attrs = dict(get_grid("healpix", 5).cells().cell_ids.attrs, indexing_scheme="ring")
    with pytest.raises(ValueError, match="indexing_scheme 'nested'"):
        grid_of(attrs)


def test_on_domain_places_a_part_on_every_cell():
    grid = get_grid("healpix", 4)
    cells = grid.cells()
    part = cells.isel(cells=[3, 10, 11])[["lat"]]
    full = grid.on_domain(part, cells.cell_ids.values, fill=-1.0)
    assert full.sizes["cells"] == cells.sizes["cells"]
    np.testing.assert_array_equal(full.lat.values[[3, 10, 11]], part.lat.values)
    assert (np.delete(full.lat.values, [3, 10, 11]) == -1).all()
    assert grid_of(full) == grid
    with pytest.raises(ValueError, match="not all in the domain"):
        grid.on_domain(part, cells.cell_ids.values[:5])
