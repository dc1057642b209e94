"""The ArcticDEM reader: GeoTIFF tiles in EPSG:3413 written here, terrain checked on planes."""

from pathlib import Path

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from pyproj import Transformer

from entropice.grids import get_grid
from entropice.sources import arcticdem

RES = 100.0
# on the -45 deg meridian near 70 N, where EPSG:3413 has true scale and grid north is north
X0, Y0 = -15_000.0, -2_240_000.0


def plane(nx=300, ny=300, x0=X0, y0=Y0, a=0.0, b=0.05):
    x = x0 + RES * (np.arange(nx) + 0.5)
    y = y0 + RES * (ny - np.arange(ny) - 0.5)
    z = 100.0 + a * (x[None, :] - X0) + b * (y[:, None] - Y0)
    da = xr.DataArray(z.astype(np.float32), dims=("y", "x"), coords={"y": y, "x": x})
    return da.rio.write_crs("EPSG:3413")


def write_tile(da, path, nodata=-9999.0):
    da = da.where(np.isfinite(da), nodata).rio.write_nodata(nodata)
    da.rio.to_raster(path, driver="COG")
    return path


@pytest.fixture
def tiles(tmp_path):
    west = plane(300, 300, X0, Y0)
    east = plane(300, 300, X0 + 300 * RES, Y0)
    east.values[:20, -20:] = np.nan  # nodata in a corner
    return [write_tile(west, tmp_path / "tile_west.tif"),
            write_tile(east, tmp_path / "tile_east.tif")]


def test_tiles_join_into_one_lazy_raster(tiles):
    dem = arcticdem.open(tiles, chunks=128)
    assert dem.shape == (300, 600) and dem.chunks is not None
    assert dem.rio.crs.to_epsg() == 3413
    assert np.isnan(dem.values[:20, -20:]).all()


def test_slope_and_aspect_of_a_plane(tiles):
    ter = arcticdem.terrain(arcticdem.open(tiles, chunks=128)).compute()
    inner = ter.isel(y=slice(10, -10), x=slice(10, -10))
    lon, lat = Transformer.from_crs("EPSG:3413", "EPSG:4326", always_xy=True).transform(
        float(inner.x.mean()), float(inner.y.mean()))
    assert abs(lat - 70.0) < 0.5
    # a 5% rise to the north: slope atan(0.05), facing south (northness -1)
    np.testing.assert_allclose(np.nanmedian(inner.slope), np.degrees(np.arctan(0.05)),
                               rtol=2e-3)
    np.testing.assert_allclose(np.nanmedian(inner.northness), -1.0, atol=1e-3)
    np.testing.assert_allclose(np.nanmedian(inner.eastness), 0.0, atol=0.05)
    away = ter.isel(y=slice(40, -10), x=slice(10, -10))  # from the edges and the nodata
    np.testing.assert_allclose(np.nanmax(np.abs(away.curvature)), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.nanmax(np.abs(away.tpi)), 0.0, atol=1e-3)
    assert np.isnan(ter.slope.values[:20, -20:]).all()


def test_tile_and_chunk_edges_are_seamless(tiles, tmp_path):
    """Terrain of the two-tile mosaic in small chunks equals that of one big tile."""
    rng = np.random.default_rng(0)
    rough = plane(600, 300, X0, Y0)
    rough.values += rng.normal(0, 2.0, rough.shape).astype(np.float32)
    one = write_tile(rough, tmp_path / "one.tif")
    a = write_tile(rough.isel(x=slice(0, 300)), tmp_path / "a.tif")
    b = write_tile(rough.isel(x=slice(300, 600)), tmp_path / "b.tif")
    whole = arcticdem.terrain(arcticdem.open(one, chunks=1024)).compute()
    pieces = arcticdem.terrain(arcticdem.open([a, b], chunks=97)).compute()
    for name in ("slope", "northness", "tpi", "tri", "roughness", "curvature"):
        np.testing.assert_allclose(pieces[name].values, whole[name].values, rtol=1e-5,
                                   atol=1e-5, err_msg=name)


def test_chunks_thinner_than_the_halo(tiles):
    """A last chunk of a few pixels (a crop's remainder) gives the same terrain."""
    whole = arcticdem.terrain(arcticdem.open(tiles, chunks=1024)).compute()
    thin = arcticdem.open(tiles, chunks=1024).chunk({"y": (296, 4), "x": (597, 3)})
    got = arcticdem.terrain(thin)
    for name in ("slope", "northness", "tpi", "curvature"):
        np.testing.assert_array_equal(got[name].values, whole[name].values, err_msg=name)


def test_to_cells(tiles):
    dem = arcticdem.open(tiles, chunks=128)
    grid = get_grid("h3", 6)
    ds = arcticdem.to_cells(dem, grid)
    assert "dem_slope_p90" in ds and ds.dem_slope_mean.attrs["units"] == "degree"
    covered = ~np.isnan(ds.dem_elevation_mean.values)
    assert 5 < covered.sum() < 200
    slope = ds.dem_slope_p50.values[covered]
    np.testing.assert_allclose(np.median(slope), np.degrees(np.arctan(0.05)), rtol=5e-3)
    # elevation another way: pixels whose centres fall in the cell
    d = dem.compute()
    xx, yy = np.meshgrid(d.x.values, d.y.values)
    lon, lat = Transformer.from_crs("EPSG:3413", "EPSG:4326", always_xy=True).transform(
        xx.ravel(), yy.ravel())
    ids = grid.latlon_to_cells(lat, lon)
    k = int(np.flatnonzero(covered)[len(np.flatnonzero(covered)) // 2])
    cid = ds.cell_ids.values[k]
    np.testing.assert_allclose(ds.dem_elevation_mean.values[k],
                               np.nanmean(d.values.ravel()[ids == cid]), rtol=1e-4)


def test_every_level_from_one_terrain(tiles, monkeypatch):
    """``to_levels`` derives the terrain once for all grids and levels (one terrain
    block per chunk), and each level is what ``to_cells`` gives it on its own: equal for
    the finest level of each system and for HEALPix's nested levels' moments."""
    dem = arcticdem.open(tiles, chunks=128)
    calls = []
    kernel = arcticdem._terrain_block
    monkeypatch.setattr(arcticdem, "_terrain_block",
                        lambda *a, **k: calls.append(1) or kernel(*a, **k))
    grids = [get_grid("h3", 5), get_grid("h3", 6), get_grid("healpix", 8),
             get_grid("healpix", 10)]
    levels = arcticdem.to_levels(dem, grids)
    n_chunks = len(dem.chunks[0]) * len(dem.chunks[1])
    assert len(calls) == n_chunks
    assert set(levels) == {(g.name, g.level) for g in grids}
    for g in (grids[1], grids[3]):  # the finest: exactly as on its own
        xr.testing.assert_equal(levels[g.name, g.level], arcticdem.to_cells(dem, g))
    alone = arcticdem.to_cells(dem, grids[2])
    for v in ("dem_elevation_mean", "dem_slope_std"):
        xr.testing.assert_allclose(levels["healpix", 8][v], alone[v], rtol=1e-6)
    assert len(calls) == 4 * n_chunks


# -- bad input ------------------------------------------------------------------------------


def test_missing_tile(tmp_path):
    with pytest.raises(ValueError, match="ArcticDEM tile .*gone.tif does not exist"):
        arcticdem.open(tmp_path / "gone.tif")


def test_tile_without_crs(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1,
                       dtype="float32", transform=from_origin(X0, Y0, RES, RES)) as f:
        f.write(np.ones((1, 10, 10), dtype=np.float32))
    with pytest.raises(ValueError, match="nocrs.tif has no CRS"):
        arcticdem.open(path)


def test_tiles_in_different_crs(tmp_path):
    a = write_tile(plane(10, 10), tmp_path / "a.tif")
    other = plane(10, 10).rio.write_crs("EPSG:3995")
    b = write_tile(other, tmp_path / "b.tif")
    with pytest.raises(ValueError, match="b.tif is in EPSG:3995"):
        arcticdem.open([a, b])


def test_undeclared_nodata_stops_the_stage(tmp_path):
    """A tile whose -9999 nodata the file does not declare gives impossible elevations:
    an error naming the tile and the likely cause, not features."""
    da = plane(200, 200)
    da.values[:50, :50] = -9999.0
    da.rio.to_raster(tmp_path / "no_nodata.tif")
    with pytest.raises(ValueError, match=r"no_nodata.tif: cell elevations range -9\d\d\d.* "
                                         r"outside -500 to 9000 m; likely cause: a nodata"):
        arcticdem.to_cells(arcticdem.open(tmp_path / "no_nodata.tif"), get_grid("h3", 5))


def test_elevation_check_reads_only_elevations(tmp_path):
    """Counts, sums and spreads are not elevations: no false alarm on them, and stats
    without any elevation statistic are accepted."""
    plane(200, 200).rio.to_raster(tmp_path / "plane.tif")
    dem = arcticdem.open(tmp_path / "plane.tif")
    out = arcticdem.to_cells(dem, get_grid("h3", 5), stats=("count", "sum", "std"))
    assert float(out.dem_elevation_sum.max()) > 9000
    assert "dem_slope_std" in arcticdem.to_cells(dem, get_grid("h3", 5), stats=("std",))


REAL_DEM = Path(__file__).parents[2] / "shared" / "realdata" / "xdem_Longyearbyen_DEM_1995.tif"


@pytest.mark.skipif(not REAL_DEM.exists(), reason=f"the shared real data ({REAL_DEM}) are "
                                                  "not beside this checkout")
def test_real_dem_in_utm(tmp_path):
    """A real 20 m DEM of Longyearbyen in UTM 33N (Norwegian Polar Institute, via xdem):
    cell means equal those of the pixels whose centres fall in the cell."""
    import rasterio

    dem = arcticdem.open(REAL_DEM)
    grid = get_grid("h3", 6)
    ds = arcticdem.to_cells(dem, grid)
    have = np.isfinite(ds.dem_elevation_mean.values)
    assert 5 < have.sum() < 200
    with rasterio.open(REAL_DEM) as src:
        z = src.read(1, masked=True).astype(np.float64)
        rows, cols = np.nonzero(~z.mask)
        xs, ys = rasterio.transform.xy(src.transform, rows, cols)
        lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    ids = grid.latlon_to_cells(np.asarray(lat), np.asarray(lon))
    full = np.flatnonzero(have)
    counts = {c: (ids == c).sum() for c in ds.cell_ids.values[full]}
    c = max(counts, key=counts.get)  # the cell with the most pixels
    expected = z.compressed()[ids == c].mean()
    got = float(ds.dem_elevation_mean.sel(cells=np.flatnonzero(ds.cell_ids.values == c)[0]))
    assert got == pytest.approx(expected, rel=0.01)
    assert 0 < np.nanmax(ds.dem_slope_mean.values) < 60
    assert np.nanmin(ds.dem_elevation_p10.values) >= 0 and np.nanmax(
        ds.dem_elevation_p90.values) < 1100
