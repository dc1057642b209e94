"""The pipeline configuration's schema: mistakes are errors naming the file, the section
and the key (never a default used in silence), and `entropice config check`."""

import hashlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entropice.config import SECTIONS, ConfigError, validate
from entropice.demo import write_config
from entropice.pipeline import load_config

ROOT = Path(__file__).resolve().parents[1]


def entropice(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "entropice", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def fails(text, tmp_path) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


BASE = 'cube = "cube.zarr"\n[grids]\nh3 = [2]\n'


@pytest.mark.parametrize("text, expected", [
    # misspelt keys, once silently ignored (the default used)
    ('[arcticdem]\npaths = ["a.tif"]\nstat = ["mean"]',
     "[arcticdem]: unknown key 'stat'; did you mean 'stats'?"),
    ("[domain]\nyear = [2020]", "[domain]: unknown key 'year'; did you mean 'years'?"),
    ("[domain]\nmin_lta = 60.0", "[domain]: unknown key 'min_lta'; did you mean 'min_lat'?"),
    ('[labels]\ndarts = "d.gpkg"\nbin_edge = [1e-3]',
     "[labels]: unknown key 'bin_edge'; did you mean 'bin_edges'?"),
    ("[trian]\nn_folds = 3", "unknown section or key 'trian'; did you mean 'train'?"),
    ("[none]\na = 1", "unknown section or key 'none'"),  # a union branch's name too
    ("[train]\nn_components = 8", "[train]: unknown key 'n_components' (a key of [alphaearth])"),
    ("[train]\ngrid = { n_boxe = [3] }", "[train] grid: unknown eSPA+ parameter 'n_boxe'; "
                                          "did you mean 'n_boxes'?"),
    # values of the wrong type, once TypeError tracebacks
    ('[domain]\nmin_lat = "50"', "[domain] min_lat: expected a number (got '50')"),
    ('[era5]\npaths = ["e.nc"]\ntrend_window = "ten"',
     "[era5] trend_window: expected an integer (got 'ten')"),
    ('[alphaearth]\npaths = ["a.tif"]\nn_components = "8"',
     "[alphaearth] n_components: expected an integer (got '8')"),
    ("[evaluate]\nrepeats = true", "[evaluate] repeats: expected an integer (got True)"),
    # out of range
    ("[domain]\nmin_lat = 95.0", "[domain] min_lat: input should be less than 90"),
    ("[domain]\nyear_start_month = 13", "[domain] year_start_month: input should be less"),
    ("[domain]\nyears = [1850]", "[domain] years: input should be greater than or equal "
                                 "to 1940"),
    ('[labels]\ndarts = "d.gpkg"\nbin_edges = [1e-2, 1e-3]',
     "[labels] bin_edges: the edges must increase"),
    ("[train]\nn_folds = 1", "[train] n_folds: input should be greater than or equal to 2"),
    ("[train]\nforest_rows = -1", "[train] forest_rows: input should be greater than or "
                                  "equal to 0"),
    ('[train]\nbaselines = ["RandomForrest"]', "[train] baselines: input should be"),
    ('[train]\ntarget = "class"', "[train] target: input should be 'rts_class' or 'any'"),
    ('[arcticdem]\npaths = ["a.tif"]\nstats = ["mean", "p200"]', "unknown statistic 'p200'"),
    ('[labels]\n[[labels.inventories]]\npaths = "a.shp"\nyaer = 2020',
     "[[labels.inventories]] entry 1: unknown key 'yaer'; did you mean 'year'?"),
    ('[labels]\ninventories = { paths = "a.shp" }',
     "write each entry as [[labels.inventories]]"),
])
def test_mistakes_name_the_section_and_key(tmp_path, text, expected):
    assert expected in fails(BASE + text, tmp_path)


def test_levels_must_be_whole_numbers_in_range(tmp_path):
    assert "[grids] h3: expected an integer (got 3.0)" in fails(
        'cube = "c.zarr"\n[grids]\nh3 = [3.0]\n', tmp_path)
    assert "[grids] healpix: expected an integer (got '7')" in fails(
        'cube = "c.zarr"\n[grids]\nhealpix = ["7"]\n', tmp_path)
    assert "healpix level must be between 0 and 12; got 40" in fails(
        'cube = "c.zarr"\n[grids]\nhealpix = [40]\n', tmp_path)
    assert "[grids]: no levels" in fails('cube = "c.zarr"\n[grids]\n', tmp_path)
    assert "[grids] is required" in fails('cube = "c.zarr"\n', tmp_path)


def test_every_problem_in_one_line(tmp_path):
    message = fails(BASE.replace("h3 = [2]", "h3 = [2.5]") + "[domain]\nmin_lat = 'x'\n"
                    "[era5]\nunits = { t2 = 'degC' }\n", tmp_path)
    assert "[grids] h3" in message and "[domain] min_lat" in message
    assert "[era5] units.t2: unknown key" in message


def test_the_shipped_and_demo_configs_are_valid(tmp_path):
    for name in ("config.toml", "real-example.toml"):
        load_config(ROOT / "pipeline" / name)
    demo = write_config(tmp_path / "demo.toml", tmp_path / "cube.zarr")
    cfg = load_config(demo)
    # only the file's keys: a stage's recorded configuration hash is the file's
    assert cfg["era5"] == tomllib.loads(demo.read_text())["era5"]
    assert "units" not in cfg["era5"] and "search_scoring" not in cfg["train"]


def test_config_check_prints_the_resolved_config(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "e1.nc").write_bytes(b"")
    (tmp_path / "raw" / "e2.nc").write_bytes(b"")
    path = tmp_path / "c.toml"
    path.write_text(BASE + '[era5]\npaths = ["raw/*.nc"]\n[arcticdem]\npaths = ["dem/*.tif"]\n'
                    "[train]\nn_folds = 4\n")
    out = entropice("config", "check", str(path))
    assert out.returncode == 0, out.stderr
    resolved = tomllib.loads(out.stdout)  # it is TOML
    assert resolved["cube"] == str(tmp_path / "cube.zarr")
    assert resolved["domain"] == {"min_lat": 50.0, "year_start_month": 10}
    assert resolved["era5"]["trend_window"] == 10  # the default, shown
    assert resolved["train"]["n_folds"] == 4 and resolved["train"]["fit_rows"] == 100_000
    assert 'paths = ["raw/*.nc"]  # 2 file(s)' in out.stdout
    assert "# no file matches" in out.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + "[domain]\nmin_lat = '50'\n")
    out = entropice("config", "check", str(bad))
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "[domain] min_lat: expected a number (got '50')" in out.stderr


def digest(path: Path) -> dict:
    """Every file under ``path`` and its bytes' hash."""
    return {os.path.relpath(p, path): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_bad_config_leaves_the_cube_as_it_was(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(BASE)
    assert entropice("grids", "--config", str(path), "--quiet").returncode == 0
    before = digest(tmp_path / "cube.zarr")
    path.write_text(BASE.replace("h3 = [2]", "h3 = [2, 3]") + "[grids.extra]\n")
    for command in (["run"], ["grids", "--force"]):
        out = entropice(*command, "--config", str(path), "--quiet")
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert out.stderr.count("\n") == 1 and "[grids]: unknown key 'extra'" in out.stderr
    assert digest(tmp_path / "cube.zarr") == before


# --- random mistakes in a valid configuration -------------------------------------

VALID = tomllib.loads(
    BASE + """
[domain]
min_lat = 55.0
years = [2019, 2020]
year_start_month = 10
[labels]
darts = "d.gpkg"
bin_edges = [1e-4, 1e-3]
[era5]
paths = ["e.nc"]
trend_window = 10
[arcticdem]
paths = ["a.tif"]
stats = ["mean", "p50"]
[alphaearth]
paths = ["x.tif"]
n_components = 4
[train]
n_folds = 5
n_estimators = 2
weight_prior = "corr"
[evaluate]
repeats = 2
""")


def _keys():
    return [(s, k) for s, values in VALID.items() if isinstance(values, dict) for k in values]


WRONG = {int: ["3", 3.5, True, [1]], float: ["50", True, [1.0]], str: [3, 1.5, True],
         list: [3, 2.5, {"a": 1}, True], bool: ["true", 1]}
"""Values of another type than each key's."""


@st.composite
def mistakes(draw):
    """A valid configuration with one mistake: a misspelt key, a value of the wrong type,
    or an unknown section; (document, the section named in the message)."""
    doc = {s: dict(v) if isinstance(v, dict) else v for s, v in VALID.items()}
    section, key = draw(st.sampled_from(_keys()))
    kind = draw(st.sampled_from(["misspelt", "type", "section"]))
    if kind == "misspelt":
        i = draw(st.integers(0, len(key) - 1))
        typo = key[:i] + draw(st.sampled_from(["", "x", key[i] * 2])) + key[i + 1:]
        if typo in SECTIONS[section].model_fields:
            typo = typo + "_"
        doc[section][typo] = doc[section].pop(key)
        return doc, f"[{section}]: unknown key {typo!r}"
    if kind == "type":
        value = doc[section][key]
        doc[section][key] = draw(st.sampled_from(WRONG[type(value)]))
        return doc, f"[{section}] {key}"
    name = draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
    if name in VALID or name in SECTIONS:
        name = name + "_x"
    doc[name] = {"a": 1}
    return doc, f"unknown section or key {name!r}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mistakes())
def test_random_mistakes_are_named(case):
    doc, expected = case
    with pytest.raises(ConfigError) as err:
        validate(doc, "cfg.toml")
    message = str(err.value)
    assert message.startswith("cfg.toml: ") and "\n" not in message
    assert expected in message
