"""The pipeline stages through the `entropice` command, on small raw files written here."""

import os
import shutil
import subprocess
import sys

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


def test_every_stage_has_its_script():
    """pipeline/<stage>.py for every stage of the registry (and run.py), nothing else."""
    from pathlib import Path

    from entropice.stages import STAGES

    scripts = Path(__file__).parents[1] / "pipeline"
    assert sorted(p.stem for p in scripts.glob("*.py")) == sorted([*STAGES, "run"])
    for name, stage in STAGES.items():
        text = (scripts / f"{name}.py").read_text()
        assert f"`entropice {name}`" in text and stage.help.split()[0] in text


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
    assert cfg["cube"].endswith("arctic.zarr")  # not the demo's cube


def test_the_real_config_without_its_data_writes_nothing(tmp_path):
    """`entropice run` with the shipped config and no real data stops before the first
    stage writes: it names the missing file, where the data come from, and the demo;
    the demo's cube beside it is untouched."""
    shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "pipeline"),
                    tmp_path / "pipeline")
    demo = Cube.create(tmp_path / "data" / "cube.zarr")
    before = sorted(p.name for p in (tmp_path / "data" / "cube.zarr").iterdir())
    out = entropice("run", "--config", str(tmp_path / "pipeline" / "config.toml"), "--quiet")
    assert out.returncode == 1
    assert "labels: [labels] darts paths: no file matches" in out.stderr
    assert "DARTS_level2.gpkg" in out.stderr and "Nothing was written" in out.stderr
    assert "entropice demo" in out.stderr and "docs/real-data.md" in out.stderr
    assert not (tmp_path / "data" / "arctic.zarr").exists()
    assert sorted(p.name for p in (tmp_path / "data" / "cube.zarr").iterdir()) == before
    assert demo.groups() == []
    # one stage alone checks its own inputs the same way
    out = entropice("labels", "--config", str(tmp_path / "pipeline" / "config.toml"), "-q")
    assert out.returncode == 1 and "Nothing was written" in out.stderr


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


TRAIN = """
[train]
features = ["era5_*", "dem_*"]
target = "any"
n_folds = 2
inner_folds = 2
ancestor_level = 1
baselines = ["LogisticRegression", "Majority"]
grid = {n_boxes = [3], eps_C = [1.0], eps_W = ["inf"]}
"""


def _arctic_footprints(path, n=300, seed=7):
    """RTS footprints all over the Arctic, so that every fold holds cells with and without."""
    from pyproj import Transformer

    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(-180, 180, n), rng.uniform(55, 80, n)
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3413", always_xy=True).transform(lon, lat)
    gpd.GeoDataFrame({"year": rng.choice([2020, 2021], n)},
                     geometry=[shapely.Point(a, b).buffer(500) for a, b in zip(x, y)],
                     crs="EPSG:3413").to_file(path)


def test_train_and_predict(project):
    """Spatial cross-validation, the run stored without pickle, predictions in the cube."""
    import json as _json

    cfg = project / "config.toml"
    cfg.write_text(CONFIG.replace("[labels]", "[labels]\nbin_edges = [1e-2]") + TRAIN)
    _arctic_footprints(project / "raw" / "darts.gpkg")
    out = entropice("run", "--config", str(cfg), "--quiet")
    assert out.returncode == 0, out.stderr
    assert "train: 3 group(s) written" in out.stdout
    assert "| grid | level | model | balanced_accuracy" in out.stdout
    registry = _json.loads((project / "models" / "latest.json").read_text())
    run = project / "models" / registry["h3/3"]["run_id"]
    assert {p.name for p in run.iterdir()} == {"arrays.npz", "model.json", "folds.csv",
                                               "metrics.json", "relevance.csv", "folds"}
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


def test_every_stage_forced_again_in_any_order(project):
    """Re-running stages with --force, in any order, leaves a cube every stage reads
    (one year, so that no stage rewrites a whole group on new years)."""
    import random

    cfg = project / "config.toml"
    cfg.write_text(CONFIG.replace("[labels]", "[labels]\nbin_edges = [1e-2]")
                   .replace("years = [2020, 2021]", "years = [2021]") + TRAIN)
    _arctic_footprints(project / "raw" / "darts.gpkg")
    out = entropice("run", "--config", str(cfg), "--quiet")
    assert out.returncode == 0, out.stderr
    before = Cube(project / "cube.zarr").read("h3", 3).load()
    stages = ["grids", "labels", "era5", "arcticdem", "alphaearth", "train", "predict"]
    random.Random(0).shuffle(stages)
    for stage in stages + ["train", "predict"]:
        out = entropice(stage, "--config", str(cfg), "--quiet", "--force",
                        *(["--all"] if stage == "train" else []))
        assert out.returncode == 0, f"{stage} after {stages}: {out.stderr}"
    after = Cube(project / "cube.zarr").read("h3", 3).load()
    assert set(after.variables) == set(before.variables)
    for name in before.variables:
        assert after[name].dims == before[name].dims, name
        assert after[name].attrs.keys() == before[name].attrs.keys(), name
    for name in ("lat", "lon", "area_km2", "land_fraction", "rts_class", "era5_tdd_sum"):
        xr.testing.assert_allclose(after[name], before[name])
    assert after.cell_ids.attrs == before.cell_ids.attrs


def test_inventories_as_published(project):
    """[labels] takes several inventories, each with its year rule, CRS and coverage: a
    real per-image inventory without its .prj (Nitze et al. 2021), and regional files."""
    from pathlib import Path

    nitze = Path(__file__).parent / "data" / "Nitze2021"
    (project / "raw" / "nitze").mkdir()
    for part in nitze.glob("GT_Set_*"):
        if part.suffix != ".prj":
            (project / "raw" / "nitze" / part.name).write_bytes(part.read_bytes())
    for k, region in enumerate(("east", "west")):
        gpd.GeoDataFrame({"mapped": ["2020"]},
                         geometry=[shapely.Point(-200_000 + 50_000 * k, -900_000).buffer(300)],
                         crs="EPSG:3413").to_file(project / "raw" / f"inv_{region}.gpkg")
    cfg = project / "config.toml"
    base = CONFIG.replace('[labels]\ndarts = "raw/darts.gpkg"\n', "").replace(
        "years = [2020, 2021]", "years = [2019, 2020]")
    cfg.write_text(base + """
[labels]
bin_edges = [1e-3]
[[labels.inventories]]
paths = "raw/nitze/*.shp"
crs = "EPSG:4326"
date_column = "image_date"
[[labels.inventories]]
paths = ["raw/inv_*.gpkg"]
year = 2020
""")
    assert entropice("grids", "--config", str(cfg), "--quiet").returncode == 0
    out = entropice("labels", "--config", str(cfg), "--quiet", "--log-level", "info")
    assert out.returncode == 0, out.stderr
    assert "footprints overlapped others of the same year and were merged" in out.stderr
    assert "inv_west.gpkg: 1 footprints" in out.stderr
    ds = Cube(project / "cube.zarr").read("h3", 3)
    assert list(ds.year.values) == [2019, 2020]
    assert float(ds.rts_area_km2.sel(year=2019).sum()) == pytest.approx(12.0, abs=0.03)
    assert float(ds.rts_count.sel(year=2020).sum()) == 2
    # a shapefile is all its files: a changed attribute table is a changed input
    dbf = project / "raw" / "nitze" / "GT_Set_Nitze_etal_2021_TrainingSet_RTS.dbf"
    assert "0 group(s) written" in entropice("labels", "--config", str(cfg)).stdout
    dbf.write_bytes(dbf.read_bytes()[:-2] + b"  ")
    assert "3 group(s) written" in entropice("labels", "--config", str(cfg)).stdout
    # mistakes name the entry and the file
    cfg.write_text(cfg.read_text().replace('crs = "EPSG:4326"\n', ""))
    out = entropice("labels", "--config", str(cfg), "--quiet", "--force")
    assert out.returncode == 1 and "GT_Set_Nitze_etal_2021_TrainingSet_RTS.shp has no CRS" \
        in out.stderr and "Traceback" not in out.stderr
    cfg.write_text(cfg.read_text().replace("year = 2020", "yaer = 2020"))
    out = entropice("labels", "--config", str(cfg), "--quiet", "--force")
    assert out.returncode == 1 and "[[labels.inventories]] entry 2: unknown key 'yaer'" \
        in out.stderr
    after = Cube(project / "cube.zarr").read("h3", 3)
    assert float(after.rts_count.sel(year=2020).sum()) == 2  # the cube as it was


def test_run_with_the_sources_you_have(project):
    """A config without ArcticDEM and AlphaEarth runs the other stages, says which it
    skipped, and trains on the features present."""
    cfg = project / "config.toml"
    text = (CONFIG.replace("[labels]", "[labels]\nbin_edges = [1e-2]") + TRAIN)
    text = text.replace('[arcticdem]\npaths = ["raw/dem_tile.tif"]\nstats = ["mean", "p90"]\n',
                        "").replace('[alphaearth]\npaths = ["raw/emb_2021.tif"]\n'
                                    'n_components = 2\n', "")
    assert "arcticdem" not in text and "alphaearth" not in text
    cfg.write_text(text.replace('[grids]\nh3 = [2, 3]\nhealpix = [4]', '[grids]\nh3 = [2]'))
    _arctic_footprints(project / "raw" / "darts.gpkg")
    out = entropice("run", "--config", str(cfg), "--quiet")
    assert out.returncode == 0, out.stderr
    assert "skipped (no inputs in" in out.stdout and "arcticdem, alphaearth" in out.stdout
    assert "no arcticdem in the configuration: the features dem_* are left out" in out.stderr
    assert "predict: 1 group(s) written" in out.stdout
    ds = Cube(project / "cube.zarr").read("h3", 2)
    assert "pred_class" in ds and not any(v.startswith(("dem_", "emb_")) for v in ds)


def test_labels_config_mistakes(project):
    cfg = project / "config.toml"
    cfg.write_text(CONFIG.replace('darts = "raw/darts.gpkg"',
                                  '[labels.inventories]\npaths = "raw/darts.gpkg"'))
    out = entropice("labels", "--config", str(cfg), "--quiet")
    assert out.returncode == 1 and "write each entry as [[labels.inventories]]" in out.stderr
    # the short form takes the same rules as an entry
    cfg.write_text(CONFIG.replace('darts = "raw/darts.gpkg"',
                                  'darts = "raw/darts.gpkg"\nyear = 2030'))
    assert entropice("grids", "--config", str(cfg), "--quiet").returncode == 0
    out = entropice("labels", "--config", str(cfg), "--quiet")
    assert out.returncode == 1 and "none of the years [2030] is among [domain] years" \
        in out.stderr
