"""Sources read where they are published, from a real HTTP server on 127.0.0.1: a static
STAC catalogue of ArcticDEM-style COG tiles, AlphaEarth-style COGs and an ERA5 Zarr
store in the analysis-ready layout; compared with reading the same files locally, with
the bytes fetched counted."""

import json

import numpy as np
import pandas as pd
import pystac
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from http_server import StaticServer
from pyproj import Transformer

from entropice.grids import get_grid
from entropice.sources import alphaearth, arcticdem, era5, remote

RES = 100.0


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENTROPICE_CACHE", str(tmp_path / "cache"))


def cog(path, x0, y0, n=300, crs="EPSG:3413", bands=None, seed=0):
    """A tiled COG: a tilted plane (or ``bands`` random bands) on a ``RES`` grid."""
    x = x0 + RES * (np.arange(n) + 0.5)
    y = y0 + RES * (n - np.arange(n) - 0.5)
    if bands:
        data = np.random.default_rng(seed).random((bands, n, n)).astype(np.float32)
        da = xr.DataArray(data, dims=("band", "y", "x"),
                          coords={"band": np.arange(1, bands + 1), "y": y, "x": x})
    else:
        z = 100.0 + 0.02 * (x[None, :] - x0) + 0.05 * (y[:, None] - y0)
        da = xr.DataArray(z.astype(np.float32), dims=("y", "x"), coords={"y": y, "x": x})
    da.rio.write_crs(crs).rio.to_raster(path, driver="COG", BLOCKSIZE=256)
    return path


def lonlat_bbox(x0, y0, n, crs="EPSG:3413"):
    xs = x0 + RES * n * np.array([0, 1, 1, 0, 0.5])
    ys = y0 + RES * n * np.array([0, 0, 1, 1, 0.5])
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    return [float(min(lon)), float(min(lat)), float(max(lon)), float(max(lat))]


@pytest.fixture
def catalogue(tmp_path):
    """A static STAC catalogue as the PGC publishes ArcticDEM's: a collection per region,
    an item per tile with its ``dem`` asset; one region lies south of the domain."""
    root = tmp_path / "stac"
    tiles = {"arctic": [(-15_000.0, -2_240_000.0), (15_000.0, -2_240_000.0)],
             "south": [(0.0, -5_900_000.0)]}  # about 40 N
    catalog = pystac.Catalog("arcticdem-mosaics", "ArcticDEM mosaic tiles (test)")
    for region, origins in tiles.items():
        boxes = [lonlat_bbox(x, y, 300) for x, y in origins]
        extent = pystac.Extent(pystac.SpatialExtent([[min(b[0] for b in boxes),
                                                      min(b[1] for b in boxes),
                                                      max(b[2] for b in boxes),
                                                      max(b[3] for b in boxes)]]),
                               pystac.TemporalExtent([[pd.Timestamp("2022-01-01"), None]]))
        coll = pystac.Collection(region, f"tiles of {region}", extent)
        for k, ((x, y), box) in enumerate(zip(origins, boxes)):
            name = f"{region}_{k}"
            (root / region / name).mkdir(parents=True)
            cog(root / region / name / f"{name}_dem.tif", x, y)
            item = pystac.Item(name, {"type": "Point", "coordinates": box[:2]}, box,
                               pd.Timestamp("2022-01-01").to_pydatetime(), {})
            item.add_asset("dem", pystac.Asset(f"./{name}_dem.tif",
                                               media_type=pystac.MediaType.COG))
            coll.add_item(item)
        catalog.add_child(coll)
    catalog.normalize_hrefs(str(root))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root


DOMAIN = (-180.0, 50.0, 180.0, 90.0)


def test_stac_catalogue_over_http(catalogue):
    local_tiles = sorted(str(p) for p in (catalogue / "arctic").rglob("*.tif"))
    local = arcticdem.to_cells(arcticdem.open(local_tiles), get_grid("h3", 6))
    with StaticServer(catalogue) as srv:
        hrefs = remote.stac_assets(f"{srv.url}/catalog.json", bbox=DOMAIN)
        assert hrefs == [f"{srv.url}/arctic/arctic_{k}/arctic_{k}_dem.tif" for k in (0, 1)]
        dem = arcticdem.open(f"{srv.url}/catalog.json", bbox=DOMAIN)
        xr.testing.assert_allclose(arcticdem.to_cells(dem, get_grid("h3", 6)), local)
        sent = dict(srv.sent)
        # the region outside the domain: its collection read, its items and tile never
        assert not any(p.startswith("/south/south_0") for p in sent), sent
        assert "/south/collection.json" in sent
        # a second run reads the tiles from the local cache
        srv.sent.clear()
        again = arcticdem.open(f"{srv.url}/catalog.json", bbox=DOMAIN).load()
        assert sum(v for p, v in srv.sent.items() if p.endswith(".tif")) == 0
        np.testing.assert_array_equal(again.values, dem.values)


def test_only_the_domain_of_a_cog_is_fetched(tmp_path):
    """A tile that crosses the domain's edge: only its internal tiles inside the domain
    come over the wire (range requests), once; the values are the local file's."""
    path = cog(tmp_path / "edge_dem.tif", -100_000.0, -2_300_000.0, n=2000)
    bbox = (-180.0, 70.0, 180.0, 90.0)
    local = arcticdem.open(path)
    with StaticServer(tmp_path) as srv:
        dem = arcticdem.open(f"{srv.url}/edge_dem.tif", bbox=bbox).load()
        fetched = srv.sent["/edge_dem.tif"]
        assert 0 < fetched < 0.7 * path.stat().st_size, (fetched, path.stat().st_size)
        assert 0 < dem.size < local.size
        xr.testing.assert_equal(dem, local.sel(x=dem.x, y=dem.y).load().rio.write_crs(
            dem.rio.crs))
        # every pixel of the domain's extent is there: cells reduce as from the local file
        lon, lat = Transformer.from_crs("EPSG:3413", "EPSG:4326", always_xy=True).transform(
            *np.meshgrid(local.x.values, local.y.values))
        inside = local.where(lat >= 70.5)
        assert np.isin(local.x.values[np.isfinite(inside).any("y").values], dem.x).all()
        # a re-run reads the cache; a tile outside the domain is skipped, never copied
        srv.sent.clear()
        arcticdem.open(f"{srv.url}/edge_dem.tif", bbox=bbox)
        assert srv.sent["/edge_dem.tif"] == 0
        with pytest.raises(ValueError, match="no ArcticDEM tile .* touches the domain"):
            arcticdem.open(f"{srv.url}/edge_dem.tif", bbox=(-180.0, 85.0, 180.0, 90.0))


def test_a_failed_fetch_leaves_no_file(tmp_path):
    with StaticServer(tmp_path) as srv:
        with pytest.raises(ValueError, match="cannot read ArcticDEM tile .*missing.tif"):
            arcticdem.open(f"{srv.url}/missing.tif")
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_inventory_over_http(tmp_path):
    """An RTS inventory published at a URL: fetched once, read as the local file, and
    its errors name the URL."""
    import geopandas as gpd
    import shapely

    from entropice.sources import darts

    path = tmp_path / "rts.gpkg"
    gpd.GeoDataFrame({"year": [2020, 2021]},
                     geometry=[shapely.box(0, -2e6, 500, -2e6 + 500),
                               shapely.box(1e4, -2e6, 1e4 + 300, -2e6 + 300)],
                     crs="EPSG:3413").to_file(path)
    with StaticServer(tmp_path) as srv:
        got = darts.open(f"{srv.url}/rts.gpkg")
        pd.testing.assert_frame_equal(pd.DataFrame(got), pd.DataFrame(darts.open(path)))
        srv.sent.clear()
        darts.open(f"{srv.url}/rts.gpkg")
        assert srv.sent["/rts.gpkg"] == 0
        with pytest.raises(ValueError, match=f"cannot fetch {srv.url}/gone.gpkg"):
            darts.open(f"{srv.url}/gone.gpkg")


def test_item_collection_file(catalogue, tmp_path):
    items = [pystac.Item.from_file(str(p)) for p in sorted(catalogue.rglob("arctic_*.json"))]
    for it in items:
        it.assets["dem"].href = it.assets["dem"].get_absolute_href()
    path = tmp_path / "items.json"
    path.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    assert arcticdem.open(path).shape == (300, 600)
    with pytest.raises(ValueError, match="cannot read the STAC document .*nowhere.json"):
        arcticdem.open(tmp_path / "nowhere.json")


def test_alphaearth_cogs_over_http(tmp_path):
    cog(tmp_path / "emb_2021.tif", 400_000.0, 7_600_000.0, n=200, crs="EPSG:32633", bands=64)
    local = alphaearth.to_cells(alphaearth.open(tmp_path / "emb_2021.tif"), get_grid("h3", 5))
    with StaticServer(tmp_path) as srv:
        rasters = alphaearth.open([f"{srv.url}/emb_2021.tif"])
        assert list(rasters) == [2021]
        xr.testing.assert_allclose(alphaearth.to_cells(rasters, get_grid("h3", 5)), local)
        assert srv.sent["/emb_2021.tif"] > 0


def test_era5_zarr_over_http(tmp_path):
    """The analysis-ready ERA5 layout (consolidated Zarr, long names) served over HTTP."""
    times = pd.date_range("2019-10-01", "2021-09-01", freq="MS")
    lat, lon = np.arange(90.0, 20.0, -1.0), np.arange(0.0, 360.0, 2.0)  # 7 chunks of 10
    season = 15 * np.sin(2 * np.pi * (times.month.values - 4) / 12)[:, None, None]
    t2m = 265.0 + season - 0.3 * (lat[None, :, None] - 70) + np.zeros((1, 1, len(lon)))
    ds = xr.Dataset({"2m_temperature": (("time", "latitude", "longitude"), t2m.astype("f4"),
                                        {"units": "K"}),
                     "total_precipitation": (("time", "latitude", "longitude"),
                                             np.full(t2m.shape, 0.001, "f4"), {"units": "m"})},
                    coords={"time": times, "latitude": lat, "longitude": lon}).chunk(
        {"time": 6, "latitude": 10})
    ds.to_zarr(tmp_path / "era5.zarr", zarr_format=2, consolidated=True)
    local = era5.features(era5.open(tmp_path / "era5.zarr"))
    with StaticServer(tmp_path) as srv:
        streamed = era5.open(f"{srv.url}/era5.zarr")
        xr.testing.assert_allclose(era5.features(streamed), local)
        chunks = [p for p in srv.sent if "/2m_temperature/" in p and not p.endswith("zarray")]
        srv.sent.clear()  # a re-run reads the chunks from the local cache
        xr.testing.assert_allclose(era5.features(era5.open(f"{srv.url}/era5.zarr")), local)
        assert sum(srv.sent.values()) == 0, dict(srv.sent)
    # only the latitude chunks north of 49 N (min_lat 50, less a degree) were fetched
    rows = {int(p.rsplit("/", 1)[1].split(".")[1]) for p in chunks}
    assert rows == {0, 1, 2, 3, 4}, sorted(rows)
