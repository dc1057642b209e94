"""The pipeline stages through the `entropice` command, on small raw files written here."""

import os
import subprocess
import sys
import textwrap

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr

from entropice.cube import Cube


def entropice(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "entropice", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def write_raw(raw):
    (raw / "era5").mkdir(parents=True)
    # ERA5 monthly means, 2 deg, CDS layout
    lat, lon = np.arange(90.0, 47.0, -2.0), np.arange(0.0, 360.0, 2.0)
    times = pd.date_range("2018-10-01", "2021-12-01", freq="MS")
    season = 15 * np.sin(2 * np.pi * (times.month.values - 4) / 12)[:, None, None]
    t2m = 268.0 + season - 0.3 * (lat[None, :, None] - 70) + np.zeros((1, 1, len(lon)))
    xr.Dataset({"t2m": (("time", "latitude", "longitude"), t2m.astype(np.float32)),
                "tp": (("time", "latitude", "longitude"), np.full(t2m.shape, 0.001, np.float32))},
               coords={"time": times, "latitude": lat, "longitude": lon}).to_netcdf(
        raw / "era5" / "era5.nc")
    # an ArcticDEM tile (EPSG:3413, 2 km) and an AlphaEarth year (UTM 33N)
    x = -300_000 + 2000.0 * (np.arange(150) + 0.5)
    y = -1_000_000 + 2000.0 * (150 - np.arange(150) - 0.5)
    dem = xr.DataArray((100 + 0.01 * (y[:, None] + 1e6) + 0 * x).astype(np.float32),
                       dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs("EPSG:3413")
    dem.rio.to_raster(raw / "dem_tile.tif")
    emb = xr.DataArray(np.random.default_rng(0).random((64, 40, 40)).astype(np.float32),
                       dims=("band", "y", "x"),
                       coords={"band": np.arange(1, 65),
                               "x": 400_000 + 5000.0 * (np.arange(40) + 0.5),
                               "y": 7_700_000 - 5000.0 * (np.arange(40) + 0.5)})
    emb.rio.write_crs("EPSG:32633").rio.to_raster(raw / "emb_2021.tif")
    # DARTS footprints
    gpd.GeoDataFrame({"year": [2020, 2021, 2021]},
                     geometry=[shapely.Point(-200_000, -900_000).buffer(300),
                               shapely.Point(-200_000, -900_000).buffer(400),
                               shapely.Point(-150_000, -950_000).buffer(200)],
                     crs="EPSG:3413").to_file(raw / "darts.gpkg")


CONFIG = """
cube = "cube.zarr"
[domain]
min_lat = 50.0
years = [2020, 2021]
[grids]
h3 = [2, 3]
healpix = [4]
[labels]
darts = "raw/darts.gpkg"
[era5]
paths = ["raw/era5/*.nc"]
[arcticdem]
paths = ["raw/dem_tile.tif"]
stats = ["mean", "p90"]
[alphaearth]
paths = ["raw/emb_2021.tif"]
n_components = 2
"""


@pytest.fixture
def project(tmp_path):
    write_raw(tmp_path / "raw")
    (tmp_path / "config.toml").write_text(CONFIG)
    return tmp_path


def test_all_stages_then_nothing_to_do(project):
    out = entropice("run", "--config", str(project / "config.toml"), "--quiet")
    assert out.returncode == 0, out.stderr
    for stage in ("grids", "labels", "era5", "arcticdem", "alphaearth"):
        assert f"{stage}: 3 group(s) written, 0 up to date" in out.stdout
    cube = Cube(project / "cube.zarr")
    assert cube.groups() == [("h3", 2), ("h3", 3), ("healpix", 4)]
    ds = cube.read("h3", 3)
    for var in ("land_fraction", "rts_class", "era5_tdd_sum", "dem_slope_p90", "emb_a10_mean",
                "emb_pc02"):
        assert var in ds, var
    assert list(ds.year.values) == [2020, 2021]
    assert ds.rts_count.sum() == 3
    assert set(cube.provenance("h3", 3)) == {"grids", "labels", "era5", "arcticdem",
                                             "alphaearth"}
    # a rerun with nothing changed does nothing
    again = entropice("run", "--config", str(project / "config.toml"), "--quiet")
    assert again.returncode == 0, again.stderr
    assert "era5: 0 group(s) written, 3 up to date" in again.stdout
    # a changed input redoes its stage only; --force redoes anyway
    era5_file = project / "raw" / "era5" / "era5.nc"
    data = xr.load_dataset(era5_file)
    (data + 0.5).assign_attrs(data.attrs).to_netcdf(era5_file)
    changed = entropice("run", "--config", str(project / "config.toml"), "--quiet")
    assert "era5: 3 group(s) written" in changed.stdout
    assert "labels: 0 group(s) written, 3 up to date" in changed.stdout
    forced = entropice("labels", "--config", str(project / "config.toml"), "--quiet", "--force")
    assert "labels: 3 group(s) written" in forced.stdout


def test_pipeline_scripts(project):
    script = os.path.join(os.path.dirname(__file__), "..", "pipeline", "grids.py")
    out = subprocess.run([sys.executable, script, "--config", str(project / "config.toml"),
                          "--quiet"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "grids: 3 group(s) written" in out.stdout


def test_stage_before_grids_is_an_error(project):
    out = entropice("era5", "--config", str(project / "config.toml"), "--quiet")
    assert out.returncode == 1
    assert "no group h3/2: run the grids stage first" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_input_leaves_the_cube_as_it_was(project):
    cfg = project / "config.toml"
    assert entropice("grids", "--config", str(cfg), "--quiet").returncode == 0
    before = Cube(project / "cube.zarr").read("h3", 3).load()
    gpd.GeoDataFrame({"id": [1]}, geometry=[shapely.box(0, 0, 1, 1)],
                     crs="EPSG:3413").to_file(project / "raw" / "darts.gpkg")
    out = entropice("labels", "--config", str(cfg), "--quiet")
    assert out.returncode == 1
    assert "darts.gpkg has no year of observation" in out.stderr
    after = Cube(project / "cube.zarr").read("h3", 3).load()
    xr.testing.assert_identical(before, after)


def test_missing_input_names_the_path(project):
    cfg = project / "config.toml"
    cfg.write_text(CONFIG.replace("raw/era5/*.nc", "raw/nowhere/*.nc"))
    assert entropice("grids", "--config", str(cfg), "--quiet").returncode == 0
    out = entropice("era5", "--config", str(cfg), "--quiet")
    assert out.returncode == 1
    assert "[era5] paths: no file matches" in out.stderr and "nowhere" in out.stderr


def test_bad_config(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("cube = 'x.zarr'\n[grids]\nh3 = [12]\n")
    out = entropice("grids", "--config", str(bad))
    assert out.returncode == 1 and "h3 level must be between 0 and 9; got 12" in out.stderr
    out = entropice("grids", "--config", str(tmp_path / "none.toml"))
    assert out.returncode == 1 and "no pipeline configuration at" in out.stderr


def test_the_shipped_config_parses():
    from entropice.pipeline import load_config

    cfg = load_config(os.path.join(os.path.dirname(__file__), "..", "pipeline", "config.toml"))
    assert cfg["grids"]["h3"] == [3, 4, 5, 6]
    assert textwrap.dedent(cfg["cube"]).endswith("cube.zarr")


def test_stage_on_a_dask_cluster(project):
    """--scheduler sends the raster work to a dask.distributed cluster."""
    from distributed import LocalCluster

    cfg = str(project / "config.toml")
    assert entropice("grids", "--config", cfg, "--quiet").returncode == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        out = entropice("arcticdem", "--config", cfg, "--quiet", "--scheduler",
                        cluster.scheduler_address)
    assert out.returncode == 0, out.stderr
    assert "arcticdem: 3 group(s) written" in out.stdout
    assert np.isfinite(Cube(project / "cube.zarr").read("h3", 3).dem_slope_p90.values).any()


def test_train_and_predict(project):
    """Spatial cross-validation, the run stored without pickle, predictions in the cube."""
    import json as _json

    cfg = project / "config.toml"
    cfg.write_text(CONFIG.replace("[labels]", "[labels]\nbin_edges = [1e-2]") + """
[train]
features = ["era5_*", "dem_*"]
target = "any"
n_folds = 2
inner_folds = 2
ancestor_level = 1
baselines = ["LogisticRegression", "Majority"]
grid = {n_boxes = [3], eps_C = [1.0], eps_W = ["inf"]}
""")
    # footprints all over the Arctic, so that every fold holds cells with and without RTS
    from pyproj import Transformer

    rng = np.random.default_rng(7)
    lon, lat = rng.uniform(-180, 180, 300), rng.uniform(55, 80, 300)
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3413", always_xy=True).transform(lon, lat)
    gpd.GeoDataFrame({"year": rng.choice([2020, 2021], 300)},
                     geometry=[shapely.Point(a, b).buffer(500) for a, b in zip(x, y)],
                     crs="EPSG:3413").to_file(project / "raw" / "darts.gpkg")
    out = entropice("run", "--config", str(cfg), "--quiet")
    assert out.returncode == 0, out.stderr
    assert "train: 3 group(s) written" in out.stdout
    assert "| grid | level | model | balanced_accuracy" in out.stdout
    registry = _json.loads((project / "models" / "latest.json").read_text())
    run = project / "models" / registry["h3/3"]["run_id"]
    assert {p.name for p in run.iterdir()} == {"arrays.npz", "model.json", "folds.csv",
                                               "metrics.json", "relevance.csv"}
    metrics = _json.loads((run / "metrics.json").read_text())["metrics"]
    assert set(metrics) == {"eSPA+", "LogisticRegression", "Majority"}
    ds = Cube(project / "cube.zarr").read("h3", 3)
    assert ds.pred_proba.dims == ("year", "cells", "class")
    assert np.isfinite(ds.pred_class.values).all()  # every cell, labelled or not
    np.testing.assert_allclose(ds.pred_proba.sum("class"), 1.0, rtol=1e-6)
    assert ds.pred_class.attrs["run_id"] == registry["h3/3"]["run_id"]
    again = entropice("train", "--config", str(cfg), "--quiet", "--all")
    assert "train: 0 group(s) written, 3 up to date" in again.stdout
    one = entropice("train", "--config", str(cfg), "--quiet", "--force", "--group", "h3/2")
    assert "train: 1 group(s) written, 0 up to date" in one.stdout, one.stderr
