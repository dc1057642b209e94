"""The cube knows its chunks: a chunk missing or corrupt is named when read and by
`entropice cube check`, never read as fill values (issue 17)."""

import json
import shutil
import subprocess
import sys

import pytest
from small_cube import group

from entropice.cube import MANIFEST, Cube, CubeError

FEATURE = "era5_tdd_sum"


def check(path):
    return subprocess.run([sys.executable, "-m", "entropice", "cube", "check", str(path)],
                          capture_output=True, text=True, timeout=120)


def era5(cube):
    """The feature as the era5 stage writes it, in chunks of 300 cells (three)."""
    ds = group("h3", 2)[[FEATURE]].chunk({"cells": 300})
    cube.add_variables(ds, "h3", 2, stage="era5")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("check") / "cube.zarr"
    cube = Cube.create(path)
    cube.write_group(group("h3", 2).drop_vars(FEATURE), "h3", 2, stage="grids")
    era5(cube)
    return path


@pytest.fixture
def cube(built, tmp_path):
    """A fresh copy of the built cube, for a test to damage."""
    return Cube(shutil.copytree(built, tmp_path / "cube.zarr"))


def chunk(cube, key="c/0/1"):
    path = cube.path / "h3/2" / FEATURE / key
    assert path.is_file()
    return path


def test_a_clean_cube_checks_ok(cube):
    out = check(cube.path)
    assert out.returncode == 0, out.stdout + out.stderr
    recorded = json.loads((cube.path / "h3/2/zarr.json").read_text())["attributes"][MANIFEST]
    n = sum(len(chunks) for chunks in recorded["arrays"].values())
    assert recorded["arrays"][FEATURE].keys() >= {"c/0/0", "c/0/1"}
    assert out.stdout.strip() == f"cube ok: 1 groups, {n} chunks checked"
    assert MANIFEST not in cube.read("h3", 2).attrs


def test_a_missing_chunk_is_named(cube):
    chunk(cube).unlink()
    with pytest.raises(CubeError, match=f"group h3/2, variable '{FEATURE}': chunk c/0/1 is "
                                        "missing.*entropice cube check.*rerun stage era5"):
        cube.read("h3", 2)  # the read of `entropice train` and `predict`
    out = check(cube.path)
    assert out.returncode == 1
    assert f"h3/2 {FEATURE} c/0/1: missing; rerun stage era5 with --force" in out.stdout


def test_a_variable_deleted_whole_is_named(cube):
    """zarr alone would open the group without it, and training would go on."""
    shutil.rmtree(cube.path / "h3/2" / FEATURE)
    with pytest.raises(CubeError, match=f"variable '{FEATURE}': chunk zarr.json is missing "
                                        r"\(and 3 more chunk\(s\)\)"):
        cube.read("h3", 2)
    assert "c/0/2: missing" in check(cube.path).stdout


def test_a_chunk_deleted_after_opening_is_named_when_read(cube):
    ds = cube.read("h3", 2)
    chunk(cube).unlink()
    with pytest.raises(CubeError, match=f"'{FEATURE}': chunk c/0/1 is missing"):
        ds[FEATURE].load()


def test_a_corrupt_chunk_is_named(cube):
    data = bytearray(chunk(cube).read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk(cube).write_bytes(bytes(data))
    out = check(cube.path)
    assert out.returncode == 1
    assert f"h3/2 {FEATURE} c/0/1: corrupt; rerun stage era5 with --force" in out.stdout
    ds = cube.read("h3", 2)  # every chunk is there
    with pytest.raises(CubeError, match=f"variable '{FEATURE}': chunk c/0/1 is corrupt"):
        ds[FEATURE].load()
    ds.lat.load()  # the other variables read


def test_a_chunk_not_in_the_manifest_is_named(cube):
    shutil.copy(chunk(cube), cube.path / "h3/2" / FEATURE / "c/0/9")
    out = check(cube.path)
    assert out.returncode == 1
    assert f"h3/2 {FEATURE} c/0/9: not in the manifest" in out.stdout


def test_rerunning_the_stage_repairs_the_group(cube):
    """The remedy the messages give: the stage, rerun, reads the damaged group (inside
    its batch of writes) and writes the feature anew."""
    chunk(cube).unlink()
    with cube.batch():
        era5(cube)
    assert check(cube.path).returncode == 0
    assert cube.read("h3", 2)[FEATURE].notnull().any()


def test_a_group_written_before_manifests(cube):
    """Still opens and reads; `cube check` says how to record a manifest, without
    failing; the stage's next write records one."""
    meta = cube.path / "h3/2/zarr.json"
    doc = json.loads(meta.read_text())
    del doc["attributes"][MANIFEST]
    meta.write_text(json.dumps(doc))
    assert cube.read("h3", 2)[FEATURE].notnull().any()
    out = check(cube.path)
    assert out.returncode == 0, out.stdout
    assert ("h3/2: no manifest (written by an older entropice): rerun its stages with --force "
            "to record one") in out.stdout
    assert "cube ok: 1 groups, 0 chunks checked" in out.stdout
    era5(cube)
    chunk(cube).unlink()
    with pytest.raises(CubeError, match="chunk c/0/1 is missing"):
        cube.read("h3", 2)
