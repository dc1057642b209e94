"""The evaluation's figure files (`entropice.runs.figures`): one PNG per measure made,
none left from a measure no longer made."""

import numpy as np
import pandas as pd
import xarray as xr

from entropice.runs import figures

MODELS = ["eSPA+", "RandomForest"]
REGIONS = ["north", "south", "east"]


def _tables():
    lc = pd.DataFrame([{"repeat": r, "model": m, "train_regions": k,
                        "train_land_km2": 1e5 * k, "roc_auc": 0.6 + 0.1 * k,
                        "land_for_90pct_rts": 0.9 - 0.1 * k}
                       for r in range(2) for m in MODELS for k in (1, 2)])
    tr = pd.DataFrame([{"region": g, "model": m, "roc_auc": 0.7 + 0.05 * i}
                       for i, g in enumerate(REGIONS) for m in MODELS])
    tm = pd.DataFrame([{"year": y, "model": m, "roc_auc": 0.8}
                       for y in (2020, 2021) for m in [*MODELS, "persistence",
                                                       "climatology"]])
    return {"learning_curve": lc, "transfer": tr, "temporal": tm}


def _group(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return xr.Dataset({"lat": ("cells", rng.uniform(55, 85, n)),
                       "lon": ("cells", rng.uniform(-180, 180, n)),
                       "land_fraction": ("cells", rng.uniform(0, 1, n))})


def test_every_measure_is_drawn_as_a_png_named_for_it(tmp_path):
    ds = _group()
    regions = np.array([REGIONS[i % 3] if i % 2 else "" for i in range(ds.sizes["cells"])])
    info = {"run_id": "h34-test", "labels_changed_share": 0.3}
    written = figures.write(tmp_path, _tables(), info, ds, regions)
    assert [p.name for p in written] == [f"{n}.png" for n in figures.FIGURES]
    for path in written:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, path
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_measure_no_longer_made_leaves_no_figure(tmp_path):
    tables = _tables()
    figures.write(tmp_path, tables, {"run_id": "r"}, _group(), np.full(300, "north"))
    del tables["temporal"]
    written = figures.write(tmp_path, tables, {"run_id": "r"})  # no group: no map
    assert {p.name for p in written} == {"learning_curve.png", "transfer.png"}
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["learning_curve.png",
                                                             "transfer.png"]
