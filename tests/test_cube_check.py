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


def check(path, *args):
    return subprocess.run([sys.executable, "-m", "entropice", "cube", "check", str(path),
                           *args], capture_output=True, text=True, timeout=120)


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


def without_manifest(cube):
    """The group as an older entropice wrote it: no manifest."""
    meta = cube.path / "h3/2/zarr.json"
    doc = json.loads(meta.read_text())
    recorded = doc["attributes"].pop(MANIFEST)
    meta.write_text(json.dumps(doc))
    return recorded


def test_a_group_written_before_manifests(cube):
    """Still opens and reads; `cube check` says how to record a manifest, without
    failing; the stage's next write records one."""
    without_manifest(cube)
    assert cube.read("h3", 2)[FEATURE].notnull().any()
    out = check(cube.path)
    assert out.returncode == 0, out.stdout
    assert ("h3/2: no manifest (written by an older entropice): its chunks are not checked; "
            f"`entropice cube check {cube.path} --record` records one") in out.stdout
    assert "cube ok: 1 groups, 0 chunks checked" in out.stdout
    era5(cube)
    chunk(cube).unlink()
    with pytest.raises(CubeError, match="chunk c/0/1 is missing"):
        cube.read("h3", 2)


# -- issue 17: nothing accepted silently ----------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_group_metadata_that_is_not_json_is_named(cube, damage):
    meta = cube.path / "h3/2/zarr.json"
    meta.write_bytes(b"\x00\xff\xfe garbage" if damage == "garbage"
                     else meta.read_bytes()[:100])
    said = (f"group h3/2: its metadata {meta} is not valid JSON (", "); remove "
            f"{cube.path / 'h3/2'} and rerun the grids stage, which writes the group anew, "
            "then its other stages (`entropice run`)")
    with pytest.raises(CubeError) as err:
        cube.read("h3", 2)
    assert str(err.value).startswith(said[0]) and str(err.value).endswith(said[1])
    out = check(cube.path)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout.startswith(said[0]) and said[1] in out.stdout


def test_an_array_metadata_that_is_not_json_is_named(cube):
    meta = cube.path / "h3/2" / FEATURE / "zarr.json"
    meta.write_bytes(meta.read_bytes()[:100])
    with pytest.raises(CubeError, match=f"variable '{FEATURE}': chunk zarr.json is not valid "
                                        r"JSON \(.*rerun stage era5 with --force"):
        cube.read("h3", 2)
    with cube.batch(), pytest.raises(CubeError, match="chunk zarr.json is not valid JSON"):
        cube.read("h3", 2)  # unlisted: through the checked store
    out = check(cube.path)
    assert out.returncode == 1
    assert f"h3/2 {FEATURE} zarr.json: not valid JSON (" in out.stdout


def test_an_undecodable_chunk_without_manifest_is_named(cube):
    """No checksum to compare: the codec's failure itself is named."""
    without_manifest(cube)
    chunk(cube).write_bytes(chunk(cube).read_bytes()[:40])
    with pytest.raises(CubeError, match=(
            f"group h3/2, variable '{FEATURE}': chunk c/0/1 is not decodable "
            r"\(RuntimeError: Zstd decompression error: invalid input data\)\. Run "
            f"`entropice cube check {cube.path} --record` to list every damaged chunk, and "
            "rerun stage era5 with --force to write it anew.")):
        cube.read("h3", 2)[FEATURE].load()


def test_an_undecodable_chunk_with_manifest_is_named(cube):
    """Bytes as written, but their codec no longer the array's (its metadata edited)."""
    meta = cube.path / "h3/2" / FEATURE / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["codecs"] = [c if c["name"] != "zstd" else {"name": "gzip",
                                                    "configuration": {"level": 1}}
                     for c in doc["codecs"]]
    meta.write_text(json.dumps(doc))
    with pytest.raises(CubeError, match=f"variable '{FEATURE}': chunk c/0/. is not decodable "
                                        r"\(BadGzipFile: .*rerun stage era5 with --force"):
        cube.read("h3", 2)[FEATURE].load()


def test_record_brings_older_groups_under_checking(cube):
    """`cube check --record` decodes every chunk of a group without a manifest: a chunk
    that does not decode is named and nothing recorded; once all decode, the manifest is
    recorded (as a write would have), and damage is found from then on."""
    recorded = without_manifest(cube)
    good = chunk(cube).read_bytes()
    chunk(cube).write_bytes(good[:40])
    out = check(cube.path, "--record")
    assert out.returncode == 1
    assert (f"h3/2 {FEATURE} c/0/1: not decodable (RuntimeError: Zstd decompression error: "
            "invalid input data); rerun stage era5 with --force") in out.stdout
    assert MANIFEST not in json.loads((cube.path / "h3/2/zarr.json").read_text())["attributes"]

    chunk(cube).write_bytes(good)
    out = check(cube.path, "--record")
    assert out.returncode == 0, out.stdout
    n = sum(len(chunks) for chunks in recorded["arrays"].values())
    assert out.stdout == ("h3/2: written by an older entropice: every chunk decoded, its "
                          f"manifest recorded\ncube ok: 1 groups, {n} chunks checked\n")
    meta = json.loads((cube.path / "h3/2/zarr.json").read_text())
    assert meta["attributes"][MANIFEST] == recorded
    chunk(cube).unlink()
    assert f"h3/2 {FEATURE} c/0/1: missing" in check(cube.path).stdout
