"""The zarr cube: schema, atomic writes, provenance and `entropice cube info`."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import xarray as xr
import xdggs

from entropice import cube as cube_mod
from entropice.cube import Cube, CubeError, config_hash, fingerprint
from entropice.grids import get_grid


def feature(ds, name="era5_t2m_annual_mean", value=1.0, years=None):
    n = ds.sizes["cells"]
    attrs = {"units": "degC", "long_name": "annual mean 2 m temperature", "source": "era5"}
    if years is None:
        return xr.Dataset({name: ("cells", np.full(n, value), attrs)},
                          coords={"cell_ids": ds.cell_ids})
    return xr.Dataset({name: (("year", "cells"), np.full((len(years), n), value), attrs)},
                      coords={"cell_ids": ds.cell_ids, "year": years})


@pytest.fixture
def cube(tmp_path):
    c = Cube.create(tmp_path / "cube.zarr")
    for name, level in (("h3", 3), ("healpix", 5)):
        c.write_group(get_grid(name, level).cells(), name, level, stage="grids",
                      config_hash="c0", inputs={"land": "f0"})
    return c


def test_groups_decode_with_xdggs(cube):
    assert cube.groups() == [("h3", 3), ("healpix", 5)]
    for name, level in cube.groups():
        ds = cube.read(name, level)
        assert ds.cell_ids.dtype == np.uint64
        decoded = xdggs.decode(ds)
        assert decoded.dggs.grid_info.level == level
        ref = get_grid(name, level).cells()
        np.testing.assert_array_equal(ds.cell_ids.values, ref.cell_ids.values)
        np.testing.assert_allclose(ds.area_km2.values, ref.area_km2.values)


def test_add_variables_keeps_the_rest(cube):
    ds = cube.read("h3", 3)
    cube.add_variables(feature(ds), "h3", 3, stage="era5", config_hash="e1",
                       inputs={"era5.nc": "abc"})
    cube.add_variables(feature(ds, "dem_slope_p90", 4.0), "h3", 3, stage="arcticdem")
    out = cube.read("h3", 3)
    assert {"lat", "lon", "area_km2", "era5_t2m_annual_mean", "dem_slope_p90"} <= set(out)
    assert (out.dem_slope_p90 == 4.0).all()
    # replacing a variable does not touch the previous group's files
    before = cube.read("h3", 3).era5_t2m_annual_mean.values.copy()
    cube.add_variables(feature(ds, value=2.0), "h3", 3, stage="era5")
    assert (cube.read("h3", 3).era5_t2m_annual_mean == 2.0).all()
    assert (before == 1.0).all()
    prov = cube.provenance("h3", 3)
    assert set(prov) == {"grids", "era5", "arcticdem"}
    assert prov["grids"]["inputs"] == {"land": "f0"}
    assert prov["era5"]["variables"] == ["era5_t2m_annual_mean"]
    assert not list((cube.path / ".staging").iterdir())


def test_replacing_every_variable_keeps_the_cell_ids(cube):
    """A group whose variables were all rewritten (stages re-run with --force) still
    has its cell_ids coordinate and attributes: every later stage reads it."""
    ds = cube.read("h3", 3)
    cube.add_variables(feature(ds), "h3", 3, stage="era5")
    for _ in range(2):
        cells = get_grid("h3", 3).cells()
        cube.add_variables(cells, "h3", 3, stage="grids")
        cube.add_variables(feature(ds, value=3.0), "h3", 3, stage="era5")
    out = cube.read("h3", 3)
    assert "cell_ids" in out.coords and out.cell_ids.attrs["grid_name"] == "h3"
    assert out.cell_ids.dims == ("cells",) and set(out.data_vars) == {
        "lat", "lon", "area_km2", "era5_t2m_annual_mean"}
    assert xdggs.decode(out).dggs.grid_info.level == 3


def test_a_stage_rerun_without_a_variable_removes_it(cube):
    """ERA5 re-run without precipitation: its old precipitation features go, the other
    stages' variables stay (on either path: same years, or years rewritten)."""
    ds = cube.read("healpix", 5)
    both = xr.merge([feature(ds, "era5_t2m", 1.0, [2020]), feature(ds, "era5_tp", 2.0, [2020])])
    cube.add_variables(both, "healpix", 5, stage="era5")
    cube.add_variables(feature(ds, "dem_slope", 3.0), "healpix", 5, stage="arcticdem")
    cube.add_variables(feature(ds, "era5_t2m", 1.5, [2020]), "healpix", 5, stage="era5")
    out = cube.read("healpix", 5)
    assert "era5_tp" not in out and "dem_slope" in out and float(out.era5_t2m.max()) == 1.5
    assert cube.provenance("healpix", 5)["era5"]["variables"] == ["era5_t2m"]
    cube.add_variables(both, "healpix", 5, stage="era5")
    cube.add_variables(feature(ds, "era5_t2m", 1.0, [2020, 2021]), "healpix", 5, stage="era5")
    assert set(cube.read("healpix", 5).data_vars) >= {"era5_t2m", "dem_slope"}
    assert "era5_tp" not in cube.read("healpix", 5)


def test_a_batch_swaps_all_groups_or_none(cube):
    """A stage stages every group, then swaps them in together: an error on the second
    group leaves the first as it was; without error both change, and nothing is left
    in staging."""
    before = {g: cube.read(*g).load() for g in (("h3", 3), ("healpix", 5))}
    with pytest.raises(RuntimeError, match="the second group failed"):
        with cube.batch():
            cube.add_variables(feature(before["h3", 3]), "h3", 3, stage="era5")
            assert "era5_t2m_annual_mean" not in Cube(cube.path).read("h3", 3)  # staged
            assert "era5_t2m_annual_mean" in cube.read("h3", 3)  # the batch sees its write
            raise RuntimeError("the second group failed")
    for g, ds in before.items():
        xr.testing.assert_identical(cube.read(*g).load(), ds)
    with cube.batch():
        for g, ds in before.items():
            cube.add_variables(feature(ds), *g, stage="era5")
    assert all("era5_t2m_annual_mean" in cube.read(*g) for g in before)
    assert not list((cube.path / ".staging").iterdir())


def test_years_are_merged(cube):
    ds = cube.read("healpix", 5)
    cube.add_variables(feature(ds, "a", 1.0, years=[2018, 2019]), "healpix", 5, stage="s1")
    cube.add_variables(feature(ds, "b", 2.0, years=[2019, 2020]), "healpix", 5, stage="s2")
    out = cube.read("healpix", 5)
    assert list(out.year.values) == [2018, 2019, 2020]
    assert np.isnan(out.a.sel(year=2020)).all() and (out.b.sel(year=2020) == 2.0).all()


def test_variables_on_some_years_do_not_rewrite_the_group(cube):
    """A stage giving a subset of the group's years (AlphaEarth's) adds its variables on
    all of them (NaN elsewhere) and leaves the other variables' files where they are."""
    ds = cube.read("healpix", 5)
    cube.add_variables(feature(ds, "a", 1.0, years=[2018, 2019, 2020]), "healpix", 5,
                       stage="s1")
    chunks = [f for f in sorted((cube.path / "healpix/5/a/c").rglob("*")) if f.is_file()]
    inodes = [f.stat().st_ino for f in chunks]
    cube.add_variables(feature(ds, "b", 2.0, years=[2019]), "healpix", 5, stage="s2")
    out = cube.read("healpix", 5)
    assert list(out.year.values) == [2018, 2019, 2020]
    assert (out.b.sel(year=2019) == 2.0).all() and np.isnan(out.b.sel(year=[2018, 2020])).all()
    assert [f.stat().st_ino for f in chunks] == inodes  # hard-linked, not rewritten


def test_lazy_parts_are_written_a_part_at_a_time(cube, tmp_path):
    """Variables made a year at a time (:func:`concat_parts`) go into the cube whole; the
    scratch directory they were written to is gone afterwards."""
    from entropice.parts import concat_parts

    ds = cube.read("h3", 3)
    made = []

    def years():
        for y in (2020, 2021, 2022):
            made.append(y)
            yield feature(ds, "c", float(y), years=[y])

    with cube.scratch() as scratch:
        lazy = concat_parts(years(), "year", scratch / "parts")
        assert made == [2020, 2021, 2022] and lazy.c.chunks[0] == (1, 1, 1)
        cube.add_variables(lazy, "h3", 3, stage="s3")
    out = cube.read("h3", 3)
    assert out.c.dtype == np.float32
    np.testing.assert_array_equal(out.c.max("cells").values, [2020, 2021, 2022])
    assert not scratch.exists()
    with pytest.raises(ValueError, match="no parts"):
        concat_parts(iter(()), "year")


def test_empty_variables_are_known_from_the_write(cube):
    """A variable whose every value is missing stores no chunk, so the write itself says
    so (the pipeline's check that a source covered a group): each chunk of a lazy result
    is computed once, by the write."""
    ds = cube.read("h3", 3)
    computed = []

    def block(x):
        computed.append(x.shape)
        return x

    lazy = xr.merge([feature(ds, "none", np.nan), feature(ds, "some", np.nan)])
    lazy["some"][:10] = 1.0
    lazy = lazy.chunk({"cells": 1000})
    for var in lazy.data_vars.values():
        var.data = var.data.map_blocks(block, meta=np.array((), float))
    with cube.batch():
        cube.add_variables(lazy, "h3", 3, stage="era5")
        assert cube.empty_variables("h3", 3, ["none", "some"]) == ["none"]
    assert len(computed) == 2 * 5  # two variables of five chunks, once each
    assert Cube(cube.path).empty_variables("h3", 3, ["none", "some", "lat"]) == ["none"]


def test_up_to_date(cube):
    assert cube.is_up_to_date("h3", 3, "grids", "c0", {"land": "f0"})
    assert not cube.is_up_to_date("h3", 3, "grids", "c1", {"land": "f0"})
    assert not cube.is_up_to_date("h3", 3, "grids", "c0", {"land": "f1"})
    assert not cube.is_up_to_date("h3", 4, "grids", "c0", {"land": "f0"})


def test_hash_and_fingerprint(tmp_path):
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    one = fingerprint(f)
    f.write_bytes(b"abd")
    assert fingerprint(f) != one


# -- bad input leaves the cube as it was ---------------------------------------------------


def test_variable_without_units_is_rejected(cube):
    ds = cube.read("h3", 3)
    bad = feature(ds)
    del bad.era5_t2m_annual_mean.attrs["units"]
    with pytest.raises(CubeError, match="'era5_t2m_annual_mean' lacks the units"):
        cube.add_variables(bad, "h3", 3, stage="era5")
    assert "era5_t2m_annual_mean" not in cube.read("h3", 3)


def test_variables_on_other_cells_are_rejected(cube):
    ds = cube.read("h3", 3).isel(cells=slice(0, 10))
    with pytest.raises(CubeError, match="not on the group's cells"):
        cube.add_variables(feature(ds), "h3", 3, stage="era5")


def test_group_of_another_grid_is_rejected(cube):
    with pytest.raises(CubeError, match="cell_ids say grid 'h3' level 3"):
        cube.write_group(get_grid("h3", 3).cells(), "healpix", 3, stage="grids")


def test_failed_swap_leaves_the_group(cube, monkeypatch):
    ds = cube.read("h3", 3)

    def crash(*_):
        raise OSError("disk full")

    monkeypatch.setattr(cube_mod, "_swap_into_place", crash)
    with pytest.raises(OSError, match="disk full"):
        cube.add_variables(feature(ds), "h3", 3, stage="era5")
    assert "era5_t2m_annual_mean" not in cube.read("h3", 3)
    assert set(cube.provenance("h3", 3)) == {"grids"}


def test_killed_writer_leaves_a_readable_group(cube):
    """Kill a process that keeps rewriting a group; every time, the group reads whole."""
    script = textwrap.dedent(f"""
        import numpy as np, xarray as xr
        from entropice.cube import Cube
        c = Cube({str(cube.path)!r})
        ds = c.read("healpix", 5).load()
        n = ds.sizes["cells"]
        i = 0
        while True:
            i += 1
            v = xr.Dataset({{"x": (("cells", "k"), np.full((n, 400), float(i % 2)),
                                  {{"units": "1", "long_name": "x"}})}},
                           coords={{"cell_ids": ds.cell_ids}})
            c.add_variables(v, "healpix", 5, stage="loop")
            print("wrote", flush=True)
    """)
    for delay in (0.9, 1.3, 1.7, 2.2):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"wrote"
        time.sleep(delay - 0.8)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        ds = Cube(cube.path).read("healpix", 5).load()
        values = np.unique(ds.x.values)
        assert len(values) == 1 and values[0] in (0.0, 1.0)
        assert "area_km2" in ds and ds.sizes["cells"] == get_grid("healpix", 5).cells().sizes[
            "cells"]


def test_missing_cube(tmp_path):
    with pytest.raises(CubeError, match="no cube at .*entropice demo"):
        Cube(tmp_path / "nothing.zarr")


def test_other_schema_version(cube):
    meta = cube.path / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["schema_version"] = 99
    meta.write_text(json.dumps(doc))
    with pytest.raises(CubeError, match="schema version 99; this entropice .* reads version 1"):
        Cube(cube.path)


def test_missing_group(cube):
    with pytest.raises(CubeError, match="has no group h3/9 \\(groups: h3/3, healpix/5\\)"):
        cube.read("h3", 9)


# -- the command ---------------------------------------------------------------------------


def test_cube_info_command(cube):
    cube.add_variables(feature(cube.read("h3", 3), years=[2020]), "h3", 3, stage="era5",
                       config_hash="e1", inputs={"era5.nc": "abc"})
    out = subprocess.run([sys.executable, "-m", "entropice", "cube", "info", str(cube.path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    n = get_grid("h3", 3).cells().sizes["cells"]
    assert f"h3/3  (cells={n}, year=1)" in text or f"h3/3  (year=1, cells={n})" in text
    assert "healpix/5" in text
    assert "era5_t2m_annual_mean" in text and "degC" in text and "[year]" in text
    assert "provenance era5: config e1, inputs era5.nc:abc" in text


def test_cube_info_without_cube(tmp_path):
    out = subprocess.run([sys.executable, "-m", "entropice", "cube", "info",
                          str(tmp_path / "none.zarr")], capture_output=True, text=True)
    assert out.returncode == 1
    assert "no cube at" in out.stderr and "Traceback" not in out.stderr
