"""`entropice demo`: the whole pipeline on offline data, as a newcomer runs it."""

import re
import subprocess
import sys

import numpy as np
import xdggs

from entropice.cube import Cube
from entropice.dashboard.relevance_view import weights
from entropice.grids import get_grid
from entropice.runs import RunStore


def test_demo_builds_a_cube_and_reruns_cheaply(demo_cube):
    cube_path, stdout = demo_cube
    assert f"entropice app --cube {cube_path}" in stdout
    assert "| h3 | 5 | eSPA+ |" in stdout  # the summary table is printed
    cube = Cube(cube_path)
    assert cube.groups() == [("h3", 3), ("h3", 4), ("h3", 5), ("healpix", 6), ("healpix", 7),
                             ("healpix", 8)]
    assert "synthetic" in cube.attrs and "licences" in cube.attrs
    for grid, level in cube.groups():
        ds = cube.read(grid, level)
        assert xdggs.decode(ds).dggs.grid_info.level == level
        assert list(ds.year.values) == [2019, 2020, 2021, 2022, 2023]
        for var in ("land_fraction", "rts_class", "era5_tdd_sum", "dem_slope_p90",
                    "emb_pc01"):
            assert var in ds, (grid, level, var)
    ds = cube.read("h3", 4).load()
    # land is real: the Arctic Ocean is water, Siberia is land
    land = ds.land_fraction.values
    assert 0.2 < land.mean() < 0.8
    grid = get_grid("h3", 4)
    siberia, ocean = grid.latlon_to_cells([68.0, 86.0], [100.0, 0.0])  # Putorana, North Pole
    at = ds.land_fraction.values[np.searchsorted(ds.cell_ids.values, [siberia, ocean])]
    assert at[0] > 0.95 and at[1] < 0.05
    # the mapped RTS lie on land
    rts = (ds.rts_class.fillna(0) > 0).any("year").values
    assert np.average(land, weights=rts) > 0.8
    # labels: mapped regions only; every class appears
    classes = ds.rts_class.values
    mapped = ~np.isnan(classes)
    assert 0 < mapped.mean() < 0.2
    assert set(np.unique(classes[mapped])) == {0.0, 1.0, 2.0, 3.0}
    # climate is real: summer warmth falls to the north
    tdd = ds.era5_tdd_sum.sel(year=2021).values
    ok = np.isfinite(tdd)
    assert np.corrcoef(ds.lat.values[ok], tdd[ok])[0, 1] < -0.5
    # eSPA+ is trained beside the baselines and predicts every cell
    summary = (cube_path.parent / "models" / "summary.md").read_text()
    assert "| eSPA+ |" in summary and "| RandomForest |" in summary
    pred = cube.read("h3", 5)
    assert pred.pred_proba.dims == ("year", "cells", "class")
    assert np.isfinite(pred.pred_class.values).all()
    assert (pred.pred_proba.values > 0).all()  # smoothed: no class is impossible
    # predictions are marked where they extrapolate: the mapped cells (inside the
    # coverage footprints) are typical of the training samples, cells beyond the mapped
    # cells' range of summer warmth lie outside the training data
    for grid, level in cube.groups():
        ds = cube.read(grid, level).sel(year=2022).load()
        nv = ds.pred_novelty.values
        mapped, land = np.isfinite(ds.rts_class.values), ds.land_fraction.values > 0
        tdd = ds.era5_tdd_sum.values
        lo, hi = np.nanpercentile(tdd[mapped], [1, 99])
        beyond = land & ~mapped & ((tdd < lo) | (tdd > hi))
        assert 0.4 < nv[mapped].mean() < 0.65 and (nv[mapped] > 0.99).mean() < 0.05
        assert beyond.sum() > 100 and nv[beyond].mean() > 0.95
        assert (nv[beyond] > 0.99).mean() > 0.8, (grid, level)
    # the weights point at the demo's generating rule (summer warmth, annual temperature,
    # low ground: elevation, or terrain relief at the coarsest levels) in every group,
    # never at a missing-value flag
    store = RunStore(cube_path.parent / "models")
    registry = store.registry()
    proxies = re.compile(r"era5_(tdd|fdd|t2m)|dem_(elevation|slope|tri|roughness)")
    for key, entry in registry.items():
        w = weights(store.load(entry["run_id"]))
        assert not w.feature.str.endswith("_missing").any(), key
        assert all(proxies.match(f) for f in w.feature.head(3)), (key, list(w.feature[:3]))
        rel = store.relevance(entry["run_id"])
        assert {"weight", "permutation"} == set(rel.measure), key
    # h3/4's run measured beyond its folds (the demo's [evaluate] groups): the eight
    # mapped regions each held out, learning curves that rise with the labelled land,
    # labels that change from year to year, and the figures of it all in the run
    tables, info = store.evaluation(registry["h3/4"]["run_id"])
    assert info["regions_from"] == "coverage" and len(info["regions"]) == 8
    assert "Banks Island" in info["regions"] and info["labels_changed_share"] > 0.1
    assert len(tables["transfer"]) == 8 * 5  # regions x (eSPA+ and four baselines)
    lc = tables["learning_curve"]
    curve = lc[lc.model == "eSPA+"].groupby("train_regions").roc_auc.mean()
    assert curve.iloc[-1] > curve.iloc[0] + 0.03, curve
    # the Peel Plateau's glacier ice lies where the other regions of its summer warmth
    # are ice-rich lowlands: every model trained on the others ranks its cells upside down
    peel = tables["transfer"].query("region == 'Peel Plateau' and model != 'Majority'")
    assert (peel.roc_auc < 0.5).all(), peel
    run_dir = store.path(registry["h3/4"]["run_id"])
    assert {p.name for p in run_dir.glob("*.png")} == {
        "learning_curve.png", "transfer.png", "transfer_map.png", "temporal.png"}
    assert set(tables["temporal"].year) == {2020, 2021, 2022, 2023}
    assert not store.evaluation(registry["h3/5"]["run_id"])[0]  # only h3/4's
    # a second run finds everything up to date
    again = subprocess.run([sys.executable, "-m", "entropice", "demo", "--cube",
                            str(cube_path), "--quiet"], capture_output=True, text=True,
                           timeout=900)
    assert again.returncode == 0, again.stderr


def test_the_demo_labels_follow_the_years_weather_and_each_regions_ground_ice(demo_cube):
    """What the demo's labels must hold for the evaluation beyond the folds to measure
    something (issue 16): RTS counts rise and fall with the year's thawing degree days,
    and the two ground-ice settings put RTS at different elevations: the lowlands' thin out
    above 400 m, the moraine hills' do not."""
    from entropice import demo
    from entropice.pipeline import coverage_regions, load_config
    from entropice.runs.transfer import cell_regions

    cube_path, _ = demo_cube
    cfg = load_config(cube_path.parent / "demo-raw" / "config.toml")
    ds = Cube(cube_path).read("h3", 4).load()
    count, tdd = ds.rts_count.values.astype(float), ds.era5_tdd_sum.values
    cells = np.isfinite(ds.rts_class.values).all(axis=0) & (count.sum(axis=0) > 0)
    count_anomaly = np.log1p(count[:, cells]) - np.log1p(count[:, cells]).mean(axis=0)
    tdd_anomaly = tdd[:, cells] - tdd[:, cells].mean(axis=0)
    assert np.corrcoef(count_anomaly.ravel(), tdd_anomaly.ravel())[0, 1] > 0.25
    regions = cell_regions(ds, coverage_regions(cfg))
    # RTS area over land, mean over the mapped years, in two elevation bands
    land = (ds.area_km2 * ds.land_fraction).where(ds.land_fraction > 0)
    density = (ds.rts_area_km2 / land).where(np.isfinite(ds.rts_class)).mean("year").values
    z = ds.dem_elevation_mean.values
    high_over_mid = {}
    for setting in demo.GROUND_ICE:
        at = np.isin(regions, [r for r, s in demo.REGION_SETTING.items() if s == setting])
        mid, high = (np.nanmean(density[at & (z >= lo) & (z < hi)])
                     for lo, hi in ((100, 400), (400, 700)))
        high_over_mid[setting] = high / mid
    assert high_over_mid["ice-rich lowlands"] < 0.6, high_over_mid
    assert high_over_mid["glacier ice in moraine hills"] > 0.9, high_over_mid


def test_cube_check_finds_a_deleted_and_a_damaged_chunk_of_the_demo(demo_cube):
    """`entropice cube check` on the demo's cube: ok as built; a chunk deleted and a byte
    flipped in another are each named, with the stage that rewrites them (the chunks are
    put back as they were)."""
    cube_path, _ = demo_cube

    def check():
        return subprocess.run([sys.executable, "-m", "entropice", "cube", "check",
                               str(cube_path)], capture_output=True, text=True, timeout=600)

    ok = check()
    assert ok.returncode == 0 and ok.stdout.startswith("cube ok: 6 groups"), ok.stdout
    deleted = sorted((cube_path / "h3" / "4" / "era5_tdd_sum" / "c").rglob("*"))[-1]
    flipped = sorted((cube_path / "healpix" / "7" / "dem_slope_p90" / "c").rglob("*"))[-1]
    kept = {p: p.read_bytes() for p in (deleted, flipped)}
    try:
        deleted.unlink()
        data = bytearray(kept[flipped])
        data[len(data) // 2] ^= 0xFF
        flipped.write_bytes(bytes(data))
        out = check()
        key = deleted.relative_to(cube_path / "h3" / "4" / "era5_tdd_sum").as_posix()
        assert out.returncode == 1
        assert f"h3/4 era5_tdd_sum {key}: missing; rerun stage era5" in out.stdout, out.stdout
        assert "healpix/7 dem_slope_p90" in out.stdout and "corrupt; rerun stage arcticdem" \
            in out.stdout
    finally:
        for path, data in kept.items():
            path.write_bytes(data)
    assert check().returncode == 0
