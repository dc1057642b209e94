"""No lost writes (issue 19): concurrent writers of a group serialise on its lock, a write
that fails on the filesystem leaves nothing behind and says so in one line, garbage
provenance is named and repaired by rerunning a stage with --force, two writes of a group
in one batch both stay, and a reader whose group another writer replaced is told so."""

import errno
import fcntl
import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import xarray as xr
from small_cube import group
from test_pipeline import CONFIG, entropice, write_raw

from entropice import cube as cube_mod
from entropice.cube import Cube, CubeError

WRITERS, EACH = 4, 10


def python(script, *args, **kwargs):
    """A separate Python process running ``script``."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def variable(name, cells, value):
    return xr.Dataset({name: ("cells", np.full(cells.size, float(value)),
                              {"units": "1", "long_name": name})},
                      coords={"cell_ids": cells})


def snapshot(path):
    """Every file under ``path`` with its bytes."""
    return {p.relative_to(path).as_posix(): p.read_bytes()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def cube(tmp_path):
    c = Cube.create(tmp_path / "cube.zarr")
    for grid, level in (("h3", 2), ("healpix", 4)):
        c.write_group(group(grid, level), grid, level, stage="grids")
    return c


# each writer waits for the others to be started, then adds its variables one call at a
# time (a stage of its own each) and updates a root attribute after each call
WRITER = """
    import os, sys, time
    import numpy as np, xarray as xr
    from entropice.cube import Cube
    path, i, each, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    cube = Cube(path)
    cells = {grid: cube.read(*grid).cell_ids.values for grid in GRIDS}
    open(f"{go}.{i}", "w").close()
    while not os.path.exists(go):
        time.sleep(0.01)
    def var(name, grid, value):
        return xr.Dataset({name: ("cells", np.full(cells[grid].size, float(value)),
                                  {"units": "1", "long_name": name})},
                          coords={"cell_ids": cells[grid]})
"""


def race(cube, body, n, tmp_path, grids):
    """Run ``n`` writers (WRITER then ``body``) at once; fail on any error or hang."""
    go = tmp_path / "go"
    script = f"GRIDS = {grids!r}\n" + textwrap.dedent(WRITER) + textwrap.dedent(body)
    procs = [python(script, cube.path, i, EACH, go) for i in range(n)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"go.{i}").exists() for i in range(n)):
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err


def assert_consistent(path):
    problems, unchecked, chunks = Cube(path).check()
    assert problems == [] and unchecked == [] and chunks > 0
    assert not list((path / ".staging").iterdir())
    assert not list(path.glob("zarr.json.*"))


def test_concurrent_writers_lose_nothing(cube, tmp_path):
    """4 processes adding 10 variables each to one group (and a root attribute after
    each): all 40 are there with their values, recorded by their stages."""
    race(cube, """
        for j in range(each):
            cube.add_variables(var(f"w{i}_v{j}", ("h3", 2), 100 * i + j), "h3", 2,
                               stage=f"w{i}_{j}")
            cube.set_attrs(**{f"writer{i}": j})
    """, WRITERS, tmp_path, [("h3", 2)])
    out = Cube(cube.path)
    ds = out.read("h3", 2)
    prov = out.provenance("h3", 2)
    for i in range(WRITERS):
        assert out.attrs[f"writer{i}"] == EACH - 1
        for j in range(EACH):
            assert (ds[f"w{i}_v{j}"].values == 100 * i + j).all()
            assert prov[f"w{i}_{j}"]["variables"] == [f"w{i}_v{j}"]
    assert set(group("h3", 2).data_vars) < set(ds.data_vars)
    assert len(prov) == 1 + WRITERS * EACH
    assert_consistent(cube.path)


def test_concurrent_batches_lose_nothing_and_never_deadlock(cube, tmp_path):
    """Two processes each writing two groups in batches, in opposite orders."""
    race(cube, """
        for j in range(each // 2):
            with cube.batch():
                for grid in (GRIDS if i % 2 else GRIDS[::-1]):
                    cube.add_variables(var(f"b{i}_v{j}", grid, 10 * i + j), *grid,
                                       stage=f"b{i}_{j}")
    """, 2, tmp_path, [("h3", 2), ("healpix", 4)])
    out = Cube(cube.path)
    for grid in (("h3", 2), ("healpix", 4)):
        ds = out.read(*grid)
        for i in range(2):
            for j in range(EACH // 2):
                assert (ds[f"b{i}_v{j}"].values == 10 * i + j).all()
    assert_consistent(cube.path)


def test_a_writer_waits_for_the_lock_and_says_so(cube, tmp_path):
    cells = cube.read("h3", 2).cell_ids.values
    (cube.path / ".locks").mkdir(exist_ok=True)
    with open(cube.path / ".locks" / "h3_2.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        log = tmp_path / "log"
        with open(log, "w") as stderr:
            proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
                import logging, numpy as np, xarray as xr
                from entropice.cube import Cube
                logging.basicConfig(level=logging.INFO)
                cells = np.array({cells.tolist()}, dtype=np.uint64)
                Cube({str(cube.path)!r}).add_variables(xr.Dataset(
                    {{"late": ("cells", np.ones(cells.size), {{"units": "1",
                                                              "long_name": "late"}})}},
                    coords={{"cell_ids": cells}}), "h3", 2, stage="late")
            """)], stderr=stderr)
        deadline = time.monotonic() + 120
        while "waiting for another writer of h3/2" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert "late" not in cube.read("h3", 2)
    assert proc.wait(timeout=120) == 0, log.read_text()
    assert "writing h3/2 after" in log.read_text()
    assert (cube.read("h3", 2).late == 1).all()


def test_a_write_beyond_the_file_size_limit_changes_nothing(cube):
    """A real OSError while staging (EFBIG: RLIMIT_FSIZE, as a full disk would give
    ENOSPC): one CubeError line, no staging directory left, the group byte for byte."""
    before = snapshot(cube.path / "h3/2")
    proc = python("""
        import resource, signal, sys
        import numpy as np, xarray as xr
        from entropice.cube import Cube, CubeError
        cube = Cube(sys.argv[1])
        cells = cube.read("h3", 2).cell_ids
        noise = np.random.default_rng(0).random(cells.size)  # compresses badly: > 4 KiB
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            cube.add_variables(xr.Dataset({"noise": ("cells", noise, {
                "units": "1", "long_name": "noise"})}, coords={"cell_ids": cells}),
                "h3", 2, stage="noise")
        except CubeError as err:
            print(str(err))
    """, cube.path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out == f"file too large while writing h3/2 to {cube.path}; nothing was changed\n"
    assert not list((cube.path / ".staging").iterdir())
    assert snapshot(cube.path / "h3/2") == before


def test_no_space_left_names_the_group(cube, monkeypatch):
    """ENOSPC (raised where the chunks are written) in a batch's second group: the
    error's one line, and neither group changed nor anything staged left behind."""
    before = {g: snapshot(cube.path / g) for g in ("h3/2", "healpix/4")}
    real = cube_mod._seal

    def full(group_dir, keep):
        if "healpix" in cube_mod._group_attrs(group_dir).get("grid_name", ""):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(group_dir, keep)

    monkeypatch.setattr(cube_mod, "_seal", full)
    with pytest.raises(CubeError) as err, cube.batch():
        for grid in (("h3", 2), ("healpix", 4)):
            cube.add_variables(variable("x", cube.read(*grid).cell_ids, 1), *grid, stage="x")
    assert str(err.value) == (f"no space left on device while writing healpix/4 to "
                              f"{cube.path}; nothing was changed")
    assert {g: snapshot(cube.path / g) for g in before} == before
    assert not list((cube.path / ".staging").iterdir())


def test_garbage_provenance_is_named_and_repaired_with_force(tmp_path):
    write_raw(tmp_path / "raw")
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    assert entropice("grids", "--config", str(config), "--quiet").returncode == 0
    meta = tmp_path / "cube.zarr" / "h3" / "3" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["provenance"] = "{garbage"
    meta.write_text(json.dumps(doc))

    out = entropice("era5", "--config", str(config), "--quiet")
    assert out.returncode == 1
    assert out.stderr == (
        f"error: the provenance attribute of group h3/3 in {meta} is not valid JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); "
        "rerun the group's stages with --force, or remove the group\n")
    assert Cube(tmp_path / "cube.zarr").check()[0] == [out.stderr[len("error: "):-1]]

    forced = entropice("era5", "--config", str(config), "--quiet", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "era5: 3 group(s) written" in forced.stdout
    assert set(Cube(tmp_path / "cube.zarr").provenance("h3", 3)) == {"era5"}
    # the group's other stage is no longer recorded, so it reruns without --force
    again = entropice("grids", "--config", str(config), "--quiet")
    assert "grids: 1 group(s) written, 2 up to date" in again.stdout
    cube = Cube(tmp_path / "cube.zarr")
    assert set(cube.provenance("h3", 3)) == {"grids", "era5"}
    assert "era5_tdd_sum" in cube.read("h3", 3)
    assert_consistent(cube.path)


def test_two_writes_of_a_group_in_one_batch_both_stay(cube):
    """The second write (and every read) in a batch sees the first: nothing is lost when
    the batch swaps the group in, and each stage is recorded."""
    cells = cube.read("h3", 2).cell_ids
    with cube.batch():
        cube.add_variables(variable("first", cells, 1), "h3", 2, stage="one")
        cube.add_variables(variable("second", cells, 2), "h3", 2, stage="two")
        assert {"first", "second"} <= set(cube.read("h3", 2).data_vars)
        assert "first" not in Cube(cube.path).read("h3", 2)  # staged, not yet in place
        # a year the group lacks (it has 2021, 2022) makes it be rewritten whole, on the
        # union of the years: the first two writes are kept
        years = xr.Dataset({"third": (("year", "cells"), np.full((2, cells.size), 3.0),
                                      {"units": "1", "long_name": "third"})},
                           coords={"cell_ids": cells, "year": [2020, 2021]})
        cube.add_variables(years, "h3", 2, stage="three")
    ds = Cube(cube.path).read("h3", 2)
    assert (ds["first"] == 1).all() and (ds["second"] == 2).all()
    assert (ds["third"].sel(year=[2020, 2021]) == 3).all() and list(ds.year) == [2020, 2021, 2022]
    assert {"one", "two", "three"} <= set(cube.provenance("h3", 2))
    assert_consistent(cube.path)


def test_a_reader_whose_group_was_rewritten_is_told(cube):
    """A lazy dataset held while another process swaps a new group in: reading a chunk
    that changed names the rewrite, its stage and time, and says to reopen."""
    lazy = Cube(cube.path).read("h3", 2)
    proc = python("""
        import sys
        import numpy as np, xarray as xr
        from entropice.cube import Cube
        cube = Cube(sys.argv[1])
        ds = cube.read("h3", 2)
        land = xr.Dataset({"land_fraction": ("cells", np.full(ds.cells.size, 0.5), {
            "units": "1", "long_name": "land share"})}, coords={"cell_ids": ds.cell_ids})
        cube.add_variables(land, "h3", 2, stage="land")
    """, cube.path)
    assert proc.wait(timeout=120) == 0, proc.communicate()[1]
    time = cube.provenance("h3", 2)["land"]["time"]
    with pytest.raises(CubeError) as err:
        lazy.land_fraction.load()
    assert str(err.value) == (
        f"group h3/2 was rewritten by another writer (stage land at {time}) after it was "
        "opened (chunk c/0 of variable 'land_fraction' is no longer the one opened); reopen "
        "the group (Cube.read) and read it again.")
    assert (Cube(cube.path).read("h3", 2).land_fraction == 0.5).all()
