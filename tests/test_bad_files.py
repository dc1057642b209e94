"""Broken raw files stop a stage with one line naming the file, and leave the cube as it
was: real files written here, then truncated or corrupted, run through `entropice`."""

import hashlib
import os
import re
import shutil
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CONFIG = """
cube = "cube.zarr"
[domain]
min_lat = 60.0
years = [2021]
[grids]
h3 = [2]
land = "raw/land.tif"
[labels]
darts = "raw/darts.gpkg"
[arcticdem]
paths = ["raw/dem_tile.tif"]
[alphaearth]
paths = ["raw/emb_2021.tif"]
"""


def entropice(*args):
    return subprocess.run([sys.executable, "-m", "entropice", *args], capture_output=True,
                          text=True, timeout=600)


def tree_hash(path):
    """Every file under ``path``, by its path, with the hash of its bytes."""
    return {os.path.relpath(os.path.join(root, f), path):
            hashlib.sha256(open(os.path.join(root, f), "rb").read()).hexdigest()
            for root, _, files in os.walk(path) for f in files}


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def write_raw(raw):
    raw.mkdir()
    x = -300_000 + 2000.0 * (np.arange(200) + 0.5)  # ArcticDEM (EPSG:3413, 2 km), a COG
    y = -1_000_000 + 2000.0 * (200 - np.arange(200) - 0.5)
    rng = np.random.default_rng(0)
    dem = xr.DataArray((100 + rng.random((200, 200)) * 50).astype(np.float32),
                       dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs("EPSG:3413")
    dem.rio.to_raster(raw / "dem_tile.tif", driver="COG")
    emb = xr.DataArray(rng.random((64, 40, 40)).astype(np.float32), dims=("band", "y", "x"),
                       coords={"band": np.arange(1, 65),
                               "x": 400_000 + 5000.0 * (np.arange(40) + 0.5),
                               "y": 7_700_000 - 5000.0 * (np.arange(40) + 0.5)})
    emb.rio.write_crs("EPSG:32633").rio.to_raster(raw / "emb_2021.tif", tiled=True,
                                                  compress="deflate")
    land = xr.DataArray((rng.random((60, 720)) > 0.3).astype(np.float32), dims=("y", "x"),
                        coords={"y": 89.75 - 0.5 * np.arange(60),
                                "x": -179.75 + 0.5 * np.arange(720)})
    land.rio.write_crs("EPSG:4326").rio.to_raster(raw / "land.tif")
    gpd.GeoDataFrame({"year": [2021, 2021, 2021]},
                     geometry=[shapely.Point(-200_000, -900_000).buffer(300),
                               shapely.Point(-150_000, -950_000).buffer(200),
                               shapely.Point(-100_000, -950_000).buffer(200)],
                     crs="EPSG:3413").to_file(raw / "darts.gpkg")


@pytest.fixture
def project(tmp_path):
    """A small project whose grids stage has run: the cube to keep unchanged."""
    write_raw(tmp_path / "raw")
    (tmp_path / "config.toml").write_text(CONFIG)
    out = entropice("grids", "--config", str(tmp_path / "config.toml"), "--quiet")
    assert out.returncode == 0, out.stderr
    return tmp_path


def fails_naming(project, stage, *words):
    """Run ``stage``: exit code 1, one line ``error: ...`` holding ``words``, no
    traceback, the cube's files byte for byte as they were."""
    before = tree_hash(project / "cube.zarr")
    out = entropice(stage, "--config", str(project / "config.toml"), "--quiet")
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert tree_hash(project / "cube.zarr") == before
    return lines[0]


def test_truncated_arcticdem_tile(project):
    tile = project / "raw" / "dem_tile.tif"
    truncate(tile)
    line = fails_naming(project, "arcticdem", f"ArcticDEM tile {tile}", "truncated")
    assert "rows" in line and "download it again" in line


def test_corrupt_alphaearth_geotiff(project):
    path = project / "raw" / "emb_2021.tif"
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4096] = b"\xff" * 4096  # compressed tiles no longer inflate
    path.write_bytes(bytes(data))
    fails_naming(project, "alphaearth", f"AlphaEarth file {path}", "band", "GeoTIFF")


def test_truncated_land_raster(project):
    land = project / "raw" / "land.tif"
    truncate(land)  # changed: the grids stage redoes every group
    fails_naming(project, "grids", str(land), "GeoTIFF")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_darts_polygon_with_nan_coordinates(project):
    path = project / "raw" / "darts.gpkg"
    gdf = gpd.read_file(path)
    ring = np.asarray(gdf.geometry[1].exterior.coords)
    ring[3] = np.nan
    gdf.loc[1, "geometry"] = shapely.Polygon(ring)
    gdf.to_file(path)
    fails_naming(project, "labels", str(path), "row 2", "NaN")


def test_self_intersecting_polygon_is_repaired_and_logged(project):
    path = project / "raw" / "darts.gpkg"
    gdf = gpd.read_file(path)
    x, y = -120_000.0, -950_000.0
    gdf.loc[2, "geometry"] = shapely.Polygon([(x, y), (x + 500, y + 500), (x + 500, y),
                                              (x, y + 500)])  # a bow tie
    gdf.to_file(path)
    out = entropice("labels", "--config", str(project / "config.toml"), "--quiet")
    assert out.returncode == 0, out.stderr
    assert "repaired" in out.stderr and "row 3" in out.stderr and str(path) in out.stderr


# --- random damage ---------------------------------------------------------------------

STAGE_OF = {"dem_tile.tif": "arcticdem", "emb_2021.tif": "alphaearth", "land.tif": "grids",
            "darts.gpkg": "labels"}
"""Each raw file and the stage that reads it."""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A project whose grids stage has run, copied for each damaged file."""
    root = tmp_path_factory.mktemp("pristine")
    write_raw(root / "raw")
    (root / "config.toml").write_text(CONFIG)
    assert entropice("grids", "--config", str(root / "config.toml"), "--quiet").returncode == 0
    return root


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(STAGE_OF)), cut=st.floats(0.05, 0.9),
       garbage=st.booleans())
def test_random_damage_is_named_and_leaves_the_cube(pristine, tmp_path_factory, name, cut,
                                                    garbage):
    """A raw file cut short stops its stage with one line naming the file, and the cube
    stays as it was; garbage written over its second half does too, unless it fell on
    bytes the stage does not read (a GeoPackage's free pages) and the stage succeeds."""
    project = tmp_path_factory.mktemp("damaged")
    shutil.copytree(pristine, project, dirs_exist_ok=True)
    path = project / "raw" / name
    data = bytearray(path.read_bytes())
    at = int(len(data) * cut)
    if garbage:  # past the headers: the data themselves are damaged
        at = max(at, len(data) // 2)
        data[at:at + 2048] = bytes(range(256)) * 8
        data = data[:len(path.read_bytes())]
    else:
        data = data[:at]
    path.write_bytes(bytes(data))
    if garbage and name == "darts.gpkg":
        out = entropice("labels", "--config", str(project / "config.toml"), "--quiet")
        if out.returncode == 0:
            return
    fails_naming(project, STAGE_OF[name], str(path))


# --- tiles that do not fit --------------------------------------------------------------


def write_tile(path, x0, y0, crs="EPSG:3413", res=2000.0, n=50, value=120.0):
    """A DEM tile of ``n`` x ``n`` pixels whose top-left corner is (x0, y0)."""
    x = x0 + res * (np.arange(n) + 0.5)
    y = y0 - res * (np.arange(n) + 0.5)
    xr.DataArray(np.full((n, n), value, np.float32), dims=("y", "x"),
                 coords={"y": y, "x": x}).rio.write_crs(crs).rio.write_nodata(
        np.nan).rio.to_raster(path)


def with_tiles(project, *names):
    """The project's [arcticdem] paths set to these tiles."""
    cfg = project / "config.toml"
    cfg.write_text(re.sub(r"(\[arcticdem\]\npaths = )\[.*?\]",
                          lambda m: m.group(1) + str([f"raw/{n}" for n in names]).replace(
                              "'", '"'), cfg.read_text()))


def test_a_tile_off_the_others_grid_is_refused(project):
    # the fixture's tile starts at (-300 km, -1000 km) on a 2 km grid; this one half a
    # pixel east of that grid
    write_tile(project / "raw" / "shifted.tif", 100_000 + 1000.0, -1_000_000.0)
    with_tiles(project, "dem_tile.tif", "shifted.tif")
    fails_naming(project, "arcticdem", "shifted.tif", "off the pixel grid",
                 "0.50 x 0.00 pixels")
    write_tile(project / "raw" / "coarse.tif", 100_000.0, -1_000_000.0, res=4000.0)
    with_tiles(project, "dem_tile.tif", "coarse.tif")
    fails_naming(project, "arcticdem", "coarse.tif", "4000 x 4000 pixels")
    write_tile(project / "raw" / "aligned.tif", 100_000.0, -1_000_000.0)  # one mosaic
    with_tiles(project, "dem_tile.tif", "aligned.tif")
    out = entropice("arcticdem", "--config", str(project / "config.toml"), "--quiet")
    assert out.returncode == 0, out.stderr


def test_a_tile_mislabelled_as_degrees_is_refused(project):
    write_tile(project / "raw" / "degrees.tif", -300_000.0, -1_000_000.0, crs="EPSG:4326")
    with_tiles(project, "degrees.tif")
    fails_naming(project, "arcticdem", "degrees.tif", "(degrees)", "not degrees")


def test_a_source_that_covers_no_cell_writes_nothing(project):
    # a tile south of the domain (min_lat 60)
    write_tile(project / "raw" / "south.tif", 0.0, -6_000_000.0)
    with_tiles(project, "south.tif")
    fails_naming(project, "arcticdem", "south.tif does not overlap the domain")
    # a tile in the domain with no data at all: every cell's statistics missing
    write_tile(project / "raw" / "empty.tif", -300_000.0, -1_000_000.0, value=np.nan)
    with_tiles(project, "empty.tif")
    fails_naming(project, "arcticdem", "every value on h3/2 is missing", "CRS and extent")
