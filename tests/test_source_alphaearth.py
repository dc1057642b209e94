"""The AlphaEarth reader: 64-band GeoTIFFs and a Zarr store written here."""

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from pyproj import Transformer

from entropice import aggregate
from entropice.grids import get_grid
from entropice.sources import alphaearth

BANDS = [f"A{i:02d}" for i in range(64)]


def embedding(year, n=120, res=500.0, x0=300_000.0, y0=7_600_000.0):
    """64 bands over a UTM 33N tile: band b holds b/64 + year offset + a west-east ramp."""
    x = x0 + res * (np.arange(n) + 0.5)
    y = y0 + res * (n - np.arange(n) - 0.5)
    ramp = np.linspace(-0.2, 0.2, n)[None, None, :]
    data = (np.arange(64)[:, None, None] / 64.0 + 0.01 * (year - 2020) + ramp
            + np.zeros((64, n, n))).astype(np.float32)
    da = xr.DataArray(data, dims=("band", "y", "x"),
                      coords={"band": np.arange(1, 65), "y": y, "x": x})
    da.attrs["long_name"] = tuple(BANDS)
    return da.rio.write_crs("EPSG:32633")


@pytest.fixture
def files(tmp_path):
    paths = []
    for year in (2020, 2021):
        p = tmp_path / f"alphaearth_utm33_{year}.tif"
        embedding(year).rio.to_raster(p)
        paths.append(p)
    return paths


def test_geotiffs_per_year(files):
    rasters = alphaearth.open(files)
    assert list(rasters) == [2020, 2021]
    assert list(rasters[2020].band.values) == BANDS
    grid = get_grid("healpix", 9)
    ds = alphaearth.to_cells(rasters, grid)
    assert ds.emb_a17_mean.dims == ("year", "cells")
    covered = np.isfinite(ds.emb_a00_mean.sel(year=2020).values)
    assert covered.sum() > 10
    # another way: the mean of the pixels whose centres fall in one cell
    raw = embedding(2021)
    xx, yy = np.meshgrid(raw.x.values, raw.y.values)
    lon, lat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True).transform(
        xx.ravel(), yy.ravel())
    ids = grid.latlon_to_cells(lat, lon)
    k = int(np.flatnonzero(covered)[0])
    inside = ids == ds.cell_ids.values[k]
    np.testing.assert_allclose(ds.emb_a05_mean.sel(year=2021).values[k],
                               raw.values[5].ravel()[inside].mean(), rtol=1e-3)
    diff = ds.emb_a05_mean.sel(year=2021) - ds.emb_a05_mean.sel(year=2020)
    np.testing.assert_allclose(diff.values[covered], 0.01, rtol=1e-3)


def test_principal_components(files):
    ds = alphaearth.to_cells(alphaearth.open(files), get_grid("healpix", 9), n_components=3)
    pc1 = ds.emb_pc01.values
    ok = np.isfinite(pc1)
    assert ok.sum() > 10
    # the bands differ by constants and share one ramp: the first component carries it
    assert "of the variance" in ds.emb_pc01.attrs["long_name"]
    assert np.nanstd(pc1) > 10 * np.nanstd(ds.emb_pc02.values)


def test_zarr_store(tmp_path):
    da = xr.concat([embedding(y) for y in (2020, 2021)], dim=xr.DataArray([2020, 2021],
                                                                          dims="year"))
    da = da.assign_coords(band=BANDS)
    store = tmp_path / "emb.zarr"
    da.to_dataset(name="embedding").to_zarr(store, zarr_format=3, consolidated=False)
    rasters = alphaearth.open(store)
    assert list(rasters) == [2020, 2021]
    ds = alphaearth.to_cells(rasters, get_grid("healpix", 9))
    assert np.isfinite(ds.emb_a63_mean.values).any()


def test_year_must_be_known(tmp_path):
    p = tmp_path / "embedding.tif"
    embedding(2020).rio.to_raster(p)
    with pytest.raises(ValueError, match="cannot tell the year of AlphaEarth file"):
        alphaearth.open(p)
    assert list(alphaearth.open(p, years=[2019])) == [2019]


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="AlphaEarth file .*x_2020.tif does not exist"):
        alphaearth.open(tmp_path / "x_2020.tif")


def test_every_level_in_one_pass(tmp_path):
    """HEALPix cells nest: levels derived from level 9's index hold exactly the pixels
    they hold on their own, so one pass gives what one level at a time gives; the
    finest level bit for bit, and each level whichever others are asked with it."""
    paths = []
    for year in (2020, 2021):
        paths.append(tmp_path / f"alphaearth_{year}.tif")
        embedding(year, n=300, res=200.0).rio.to_raster(paths[-1])
    rasters = alphaearth.open(paths)
    grids = [get_grid("healpix", lv) for lv in (7, 8, 9)]
    years = []
    stores = {(g.name, g.level): tmp_path / f"parts-{g.level}" for g in grids}
    levels = alphaearth.to_levels(rasters, grids, n_components=3, stores=stores,
                                  progress=years.append)
    assert years == [2020, 2021]
    assert all(p.exists() for p in stores.values())  # the years went to the scratch stores
    for g in grids:
        alone = alphaearth.to_cells(rasters, g, n_components=3)
        got = levels[g.name, g.level]
        assert int(alone.emb_a00_mean.count()) > 0
        if g.level == 9:
            xr.testing.assert_identical(got.load(), alone.load())
        else:
            xr.testing.assert_allclose(got, alone, rtol=1e-5, atol=1e-5)
    # a level derived from a finer one than asked for is the same as in the full pass
    only = alphaearth.to_levels(rasters, grids[:1], finest=[grids[-1]])
    np.testing.assert_array_equal(only["healpix", 7].emb_a10_mean.values,
                                  levels["healpix", 7].emb_a10_mean.values)


def test_bands_in_several_passes_equal_one(tmp_path, monkeypatch):
    """All bands go in one pass where their means fit ``PASS_BYTES``; with less room
    they go in several, and each band's means are the same."""
    path = tmp_path / "alphaearth_2020.tif"
    embedding(2020, n=200, res=200.0).rio.to_raster(path)
    rasters = alphaearth.open([path])
    grids = [get_grid("healpix", lv) for lv in (8, 9)]
    n_cells = sum(len(g.cells().cell_ids) for g in grids)
    assert alphaearth.bands_per_pass(64, n_cells) == 64
    one = alphaearth.to_levels(rasters, grids)
    calls = []
    original = aggregate.raster_to_levels

    def counted(raster, *args, **kwargs):
        calls.append(raster.sizes["band"])
        return original(raster, *args, **kwargs)

    monkeypatch.setattr(aggregate, "raster_to_levels", counted)
    # room for the 64 bands' means and the fold's of 20 bands at a time
    monkeypatch.setattr(alphaearth, "PASS_BYTES", (4 * 64 + 8 * 20) * n_cells)
    step = alphaearth.bands_per_pass(64, n_cells)
    assert step == 20
    several = alphaearth.to_levels(rasters, grids)
    assert calls == [step] * (64 // step) + ([64 % step] if 64 % step else [])
    for key, ds in one.items():
        xr.testing.assert_identical(several[key].load(), ds.load())
