"""Stages that read cube variables are stale once those are rewritten (issue 19, item 2):
predict after `entropice era5` reran, a killed predict then a plain rerun, evaluate after
`entropice labels` reran. Through the `entropice` command on a small real project."""

import json
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from test_pipeline import CONFIG, TRAIN, _arctic_footprints, entropice, write_raw

from entropice.cube import Cube

GROUPS = [("h3", 2), ("h3", 3), ("healpix", 4)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A project through every stage and predict, once for the module (copied by
    ``project``)."""
    path = tmp_path_factory.mktemp("built")
    write_raw(path / "raw")
    _arctic_footprints(path / "raw" / "darts.gpkg")  # labels wherever the folds are
    (path / "config.toml").write_text(
        CONFIG.replace("[labels]", "[labels]\nbin_edges = [1e-2]") + TRAIN)
    out = entropice("run", "--config", str(path / "config.toml"), "--quiet")
    assert out.returncode == 0, out.stderr
    assert "predict: 3 group(s) written" in out.stdout
    return path


@pytest.fixture
def project(built, tmp_path):
    """A fresh copy of the built project."""
    return shutil.copytree(built, tmp_path / "project")


def run(project, *args):
    """`entropice ARGS` on the project, which must succeed."""
    out = entropice(*args, "--config", str(project / "config.toml"), "--quiet")
    assert out.returncode == 0, out.stderr
    return out


def predictions(project) -> dict:
    """Each group's predictions, loaded."""
    cube = Cube(project / "cube.zarr")
    return {g: cube.read(*g)[["pred_proba", "pred_class"]].load() for g in GROUPS}


def assert_same(got, want):
    for g in GROUPS:
        for var in ("pred_proba", "pred_class"):
            xr.testing.assert_equal(got[g][var], want[g][var])
            assert got[g][var].attrs["run_id"] == want[g][var].attrs["run_id"], (g, var)


def fresh_predictions(project, tmp_path) -> dict:
    """The predictions a forced predict makes of the project as it is now (on a copy)."""
    copy = shutil.copytree(project, tmp_path / "fresh")
    run(copy, "predict", "--force")
    return predictions(copy)


def change_era5(project):
    """ERA5 warmer and wetter, and `entropice era5` rerun (no retraining)."""
    path = project / "raw" / "era5" / "era5.nc"
    data = xr.load_dataset(path)
    data["t2m"] = data.t2m + 8.0
    data["tp"] = data.tp * 1.5
    data.to_netcdf(path)
    assert "era5: 3 group(s) written" in run(project, "era5").stdout


def test_predict_redoes_groups_whose_features_were_rewritten(project, tmp_path):
    """ERA5 changed and `entropice era5` rerun: predict redoes every group (the run is
    the same, its features are not), saying why, as a fresh predict would; then it is up
    to date."""
    before = predictions(project)
    change_era5(project)
    out = run(project, "predict", "--log-level", "info")
    assert "predict: 3 group(s) written, 0 up to date" in out.stdout
    for name, level in GROUPS:
        assert f"{name}/{level}: era5 rewritten since the last prediction" in out.stderr
    assert "arcticdem rewritten" not in out.stderr and "a new run" not in out.stderr
    after = predictions(project)
    assert_same(after, fresh_predictions(project, tmp_path))
    # the old predictions were stale: the new features move them
    assert any(not np.array_equal(before[g].pred_proba, after[g].pred_proba) for g in GROUPS)
    assert "predict: 0 group(s) written, 3 up to date" in run(project, "predict").stdout


@pytest.mark.parametrize("kill_after", ["h3/2", "healpix/4"])
def test_killed_predict_then_plain_rerun_is_consistent(project, tmp_path, kill_after):
    """A predict killed (SIGKILL) once it has staged a group (the first: every group
    old; the last: just before, or while, the groups are swapped in) leaves each group
    whole with its own record, so that a plain rerun redoes those still stale: then
    every group holds the predictions of its current run on the current features."""
    change_era5(project)
    proc = subprocess.Popen(
        [sys.executable, "-m", "entropice", "predict", "--config",
         str(project / "config.toml"), "--quiet", "--log-level", "info"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if f"predict: staged {kill_after}" in line:
                proc.send_signal(signal.SIGKILL)
                break
        else:
            pytest.fail("predict ended without staging " + kill_after)
    finally:
        proc.kill()
        proc.wait(timeout=60)
        proc.stderr.close()
    run(project, "predict")
    assert_same(predictions(project), fresh_predictions(project, tmp_path))
    cube = Cube(project / "cube.zarr")  # the predictions are of each group's run
    runs = {g: cube.read(*g).pred_class.attrs["run_id"] for g in GROUPS}
    latest = json.loads((project / "models" / "latest.json").read_text())
    assert runs == {g: latest[f"{g[0]}/{g[1]}"]["run_id"] for g in GROUPS}
    assert "predict: 0 group(s) written, 3 up to date" in run(project, "predict").stdout


def test_evaluate_redoes_runs_whose_labels_were_rewritten(project):
    """An evaluation records the data it measured: after `entropice labels` reran on a
    changed inventory, evaluate redoes it (the run is the same), saying why."""
    args = ("evaluate", "--group", "h3/2", "--repeats", "1", "--log-level", "info")
    run(project, *args)
    (evaluation,) = (project / "models").glob("*/evaluation.json")
    written = evaluation.stat().st_mtime_ns
    again = run(project, *args)
    assert "rewritten" not in again.stderr and evaluation.stat().st_mtime_ns == written
    _arctic_footprints(project / "raw" / "darts.gpkg", seed=8)
    assert "labels: 3 group(s) written" in run(project, "labels").stdout
    out = run(project, *args)
    assert "evaluate h3/2: labels rewritten since the last evaluation" in out.stderr
    assert "era5 rewritten" not in out.stderr
    assert evaluation.stat().st_mtime_ns != written
    data = json.loads(evaluation.read_text())["data"]
    assert data["labels"] == Cube(project / "cube.zarr").writers("h3", 2, ["rts_class"])[
        "labels"]
    assert "rewritten" not in run(project, *args).stderr
