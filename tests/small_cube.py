"""A small cube for the dashboard's tests: three groups with features of each source,
clustered RTS labels, one trained eSPA+ run and its predictions (h3/3 only, so h3/2 and
healpix/4 show the "no predictions" note)."""

import numpy as np

from entropice import runs
from entropice.cube import Cube
from entropice.grids import get_grid

GROUPS = [("h3", 2), ("h3", 3), ("healpix", 4)]
YEARS = [2021, 2022]
TRAIN = {"n_folds": 3, "inner_folds": 2, "weight_prior": "none",
         "baselines": ["LogisticRegression", "Majority"],
         "grid": {"n_boxes": [4], "eps_C": [1.0], "eps_W": ["inf"],
                  "class_weight": ["balanced"]}}


def group(grid, level, seed=0):
    ds = get_grid(grid, level).cells()
    rng = np.random.default_rng(seed)
    lat, lon = ds.lat.values, ds.lon.values
    n = ds.sizes["cells"]
    field = np.sin(np.radians(lon) * 3) + (lat - 65) / 8  # smooth: labels cluster
    warm = 900 - 25 * (lat - 50)
    classes = np.digitize(field + rng.normal(0, 0.2, n), [0.3, 0.8, 1.3]).astype(float)
    classes[(lat < 55) | (lat > 80)] = np.nan  # unmapped
    year = lambda v: np.stack([v, v])  # noqa: E731
    area = np.where(np.isnan(classes), np.nan, classes * 0.5)
    ds["land_fraction"] = ("cells", np.ones(n), {"units": "1", "long_name": "land share"})
    ds["rts_class"] = (("year", "cells"), year(classes), {
        "units": "1", "long_name": "RTS density class", "source": "darts",
        "flag_values": [0, 1, 2, 3], "flag_meanings": "none low medium high",
        "bin_edges": [1e-4, 1e-3]})
    ds["rts_area_km2"] = (("year", "cells"), year(area), {
        "units": "km2", "long_name": "RTS area", "source": "darts"})
    ds["rts_density"] = (("year", "cells"), year(area / ds.area_km2.values), {
        "units": "1", "long_name": "RTS area over land area", "source": "darts"})
    ds["rts_count"] = (("year", "cells"), year(np.nan_to_num(classes) * 3), {
        "units": "1", "long_name": "RTS footprints", "source": "darts"})
    ds["era5_tdd_sum"] = (("year", "cells"), year(warm) + rng.normal(0, 20, (2, n)), {
        "units": "degC day", "long_name": "thawing degree days", "source": "era5"})
    ds["dem_slope_mean"] = ("cells", rng.gamma(2, 2, n) + field, {
        "units": "degree", "long_name": "mean slope", "source": "arcticdem"})
    ds["emb_pc01"] = (("year", "cells"), year(field) + rng.normal(0, 0.3, (2, n)), {
        "units": "1", "long_name": "embedding PC 1", "source": "alphaearth"})
    return ds.assign_coords(year=YEARS)


def build(path):
    """Write the cube at ``path`` (models beside it in models/); return the run id."""
    cube = Cube.create(path)
    models = path.parent / "models"
    for grid, level in GROUPS:
        cube.write_group(group(grid, level), grid, level, stage="test")
    ds = cube.read("h3", 3).load()
    store = runs.RunStore(models)
    run = runs.train_group(ds, TRAIN, store=store)
    store.set_current(get_grid("h3", 3), run["run_id"])
    cube.add_variables(runs.predict_group(ds, store.load(run["run_id"])), "h3", 3,
                       stage="predict")
    cube.set_attrs(models=str(models))
    return run["run_id"]
