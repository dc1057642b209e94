"""Rasters and polygons into cells, and levels rolled up: checked against other methods."""

import geopandas as gpd
import h3
import healpy as hp
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import CRS, Geod, Proj, Transformer

from entropice.aggregate import (
    _index,
    clear_cache,
    land_fraction,
    polygons_to_cells,
    raster_to_cells,
    raster_to_levels,
    rollup,
)
from entropice.aggregate import raster as raster_module
from entropice.grids import geometry, get_grid

GEOD = Geod(ellps="WGS84")


def projected_raster(values, crs="EPSG:3413", x0=-400e3, y0=-1200e3, res=2000.0, name="v"):
    ny, nx = values.shape[-2:]
    x = x0 + res * (np.arange(nx) + 0.5)
    y = y0 + res * (ny - np.arange(ny) - 0.5)  # north-up, as GeoTIFFs are
    dims = ("y", "x") if values.ndim == 2 else ("time", "y", "x")
    coords = {"y": y, "x": x}
    if values.ndim == 3:
        coords["time"] = np.arange(values.shape[0])
    da = xr.DataArray(values, dims=dims, coords=coords, name=name, attrs={"units": "m"})
    return da.rio.write_crs(crs)


def naive(da, grid, weights=True):
    """Per pixel: transform, look up the cell with the reference library, group."""
    crs = CRS.from_user_input(da.rio.crs)
    xx, yy = np.meshgrid(da.x.values, da.y.values)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xx.ravel(),
                                                                               yy.ravel())
    if grid.name == "h3":
        ids = [h3.str_to_int(h3.latlng_to_cell(a, b, grid.level)) for a, b in zip(lat, lon)]
    else:
        ids = hp.ang2pix(grid.nside, lon, lat, nest=True, lonlat=True)
    w = 1.0 / np.asarray(Proj(crs).get_factors(lon, lat).areal_scale) if weights else 1.0
    df = pd.DataFrame({"cell": np.asarray(ids, dtype=np.uint64), "v": da.values.ravel(),
                       "w": np.broadcast_to(w, lat.shape), "lat": lat})
    df = df[(df.lat >= 50.0) & df.v.notna()]
    df["wv"] = df.w * df.v
    g = df.groupby("cell")
    out = pd.DataFrame({"count": g.v.count(), "sum": g.v.sum(), "min": g.v.min(),
                        "max": g.v.max(), "mean": g.wv.sum() / g.w.sum()})
    return out


# -- rasters ------------------------------------------------------------------------------


@settings(max_examples=12, deadline=None)
@given(st.floats(-1e3, 1e3), st.sampled_from([("h3", 3), ("h3", 5), ("healpix", 6),
                                                ("healpix", 9)]),
       st.sampled_from(["EPSG:3413", "EPSG:32633", "EPSG:4326"]))
def test_constant_raster_gives_the_constant(value, grid_spec, crs):
    grid = get_grid(*grid_spec)
    if crs == "EPSG:4326":
        lat = np.arange(79.95, 60.0, -0.1)
        lon = np.arange(-179.95, 180.0, 0.1)
        da = xr.DataArray(np.full((len(lat), len(lon)), value), dims=("lat", "lon"),
                          coords={"lat": lat, "lon": lon})
    elif crs == "EPSG:32633":
        da = projected_raster(np.full((120, 100), value), crs, x0=300e3, y0=7500e3, res=2000)
    else:
        da = projected_raster(np.full((200, 150), value))
    ds = raster_to_cells(da, grid, stats=("mean", "std", "min", "max", "p10", "p90", "median"))
    assert ds.sizes["cells"] > 0
    for s in ("mean", "min", "max", "p10", "p90", "p50"):
        np.testing.assert_allclose(ds[s].values, value, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.nan_to_num(ds["std"].values), 0.0, atol=1e-9 * (1 + abs(value)))


@pytest.mark.parametrize("grid_spec", [("h3", 5), ("healpix", 8)])
def test_matches_per_pixel_lookup_and_groupby(grid_spec):
    grid = get_grid(*grid_spec)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(150, 120))
    values[rng.random(values.shape) < 0.05] = np.nan
    da = projected_raster(values)
    ds = raster_to_cells(da, grid, stats=("count", "sum", "mean", "min", "max"))
    ref = naive(da, grid)
    got = ds.to_dataframe().set_index("cell_ids")
    got = got[got["count"] > 0]
    assert set(got.index) == set(ref.index)
    ref = ref.loc[got.index]
    np.testing.assert_array_equal(got["count"], ref["count"])
    for col in ("sum", "min", "max"):
        np.testing.assert_allclose(got[col], ref[col], rtol=1e-12)
    # a run's pixels share its middle pixel's area (which changes by ~1e-4 along a
    # run): the means agree with per-pixel weights to 1e-4 of the values' spread
    np.testing.assert_allclose(got["mean"], ref["mean"], rtol=0, atol=1e-4 * np.nanstd(values))


def test_quantiles_and_std_match_numpy_on_an_equal_area_raster():
    grid = get_grid("h3", 4)
    rng = np.random.default_rng(1)
    da = projected_raster(rng.gamma(2.0, size=(160, 160)), crs="EPSG:6931", x0=0, y0=-2000e3,
                          res=1500.0)
    ds = raster_to_cells(da, grid, stats=("p10", "p50", "p90", "std", "mean"))
    xx, yy = np.meshgrid(da.x.values, da.y.values)
    lon, lat = Transformer.from_crs("EPSG:6931", "EPSG:4326", always_xy=True).transform(
        xx.ravel(), yy.ravel())
    ids = grid.latlon_to_cells(lat, lon)
    vals = da.values.ravel()
    for k, cid in enumerate(ds.cell_ids.values[:40]):
        v = vals[ids == cid]
        np.testing.assert_allclose(
            [ds.p10.values[k], ds.p50.values[k], ds.p90.values[k]],
            np.quantile(v, [0.1, 0.5, 0.9], method="inverted_cdf"))
        np.testing.assert_allclose(ds["std"].values[k], v.std(), rtol=1e-9)
        np.testing.assert_allclose(ds["mean"].values[k], v.mean(), rtol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=1, max_size=300), st.booleans(),
       st.integers(0, 2**32 - 1), st.booleans())
def test_weighted_quantiles_match_numpy(values, equal, seed, continuous):
    """Bucketed quickselect, with ties and weights, gives numpy's inverted-CDF quantiles."""
    from entropice.aggregate import _kernels

    v = np.asarray(values, dtype=np.float64)
    if continuous:  # skewed, spread values instead of small integers
        v = np.random.default_rng(seed).lognormal(0, 2, len(v))
    w = np.ones(len(v)) if equal else np.random.default_rng(seed).uniform(0.5, 2.0, len(v))
    qs = np.array([0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
    out = np.empty(len(qs))
    _kernels.weighted_quantiles(v.copy(), w.copy(), qs, out)
    np.testing.assert_array_equal(out, np.quantile(v, qs, weights=w, method="inverted_cdf"))


def test_nodata_is_missing():
    values = np.full((100, 100), 7.0, dtype=np.float32)
    values[:, :50] = -9999.0
    da = projected_raster(values).rio.write_nodata(-9999.0)
    ds = raster_to_cells(da, get_grid("h3", 6), stats=("mean", "count", "min"))
    assert np.all((ds["mean"].values == 7.0) | np.isnan(ds["mean"].values))
    assert ds["count"].sum() == 100 * 50
    assert np.nanmin(ds["min"].values) == 7.0


def test_latlon_raster_is_area_weighted():
    """On a lat/lon grid a pixel's weight is its area: cos(lat) at first order."""
    lat = np.arange(89.975, 50.0, -0.05)
    lon = np.arange(-179.975, 180.0, 0.05)
    field = np.broadcast_to(lat[:, None], (len(lat), len(lon)))
    da = xr.DataArray(field, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    grid = get_grid("healpix", 3)
    ds = raster_to_cells(da, grid, stats=("mean",))
    # one cell by hand, with pixel areas from the geodesic library
    k = 5
    cid = ds.cell_ids.values[k]
    lon2, lat2 = np.meshgrid(lon, lat)
    inside = grid.latlon_to_cells(lat2.ravel(), lon2.ravel()) == cid
    rows = np.nonzero(inside.reshape(lat2.shape))[0]
    areas = np.array([abs(GEOD.polygon_area_perimeter([0, 0.05, 0.05, 0],
                                                      [a - 0.025, a - 0.025, a + 0.025,
                                                       a + 0.025])[0]) for a in lat[rows]])
    np.testing.assert_allclose(ds["mean"].values[k], np.average(lat[rows], weights=areas),
                               rtol=1e-9)


def test_coarse_raster_is_sampled_at_cell_centres():
    """ERA5-like 0.25 deg data on H3 level 6: no cell under the raster is left empty."""
    lat = np.arange(90.0, 49.0, -0.25)
    lon = np.arange(0.0, 360.0, 0.25)  # 0..360, as ERA5
    field = np.broadcast_to(lat[:, None], (len(lat), len(lon))) + 0.0
    da = xr.DataArray(field, dims=("latitude", "longitude"),
                      coords={"latitude": lat, "longitude": lon})
    grid = get_grid("h3", 5)
    ds = raster_to_cells(da, grid, stats=("mean", "count"))
    cells = grid.cells()
    assert ds.sizes["cells"] == cells.sizes["cells"]
    assert "sampled" in ds.attrs["aggregation"]
    np.testing.assert_allclose(ds["mean"].values, cells.lat.values, atol=1e-9)


def test_extra_dimensions_are_kept():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(3, 80, 80))
    da = projected_raster(values)
    ds = raster_to_cells(da, get_grid("healpix", 7), stats=("mean",))
    assert ds["mean"].dims == ("time", "cells")
    for t in range(3):
        one = raster_to_cells(da.isel(time=t), get_grid("healpix", 7), stats=("mean",))
        np.testing.assert_allclose(ds["mean"].isel(time=t), one["mean"])


@pytest.mark.parametrize("chunked", [False, True])
def test_domain_gives_every_cell(chunked):
    """``domain=True`` is the result on every domain cell: no copy onto it after."""
    rng = np.random.default_rng(5)
    values = rng.normal(size=(2, 120, 100))
    da = projected_raster(values)
    if chunked:
        da = da.chunk({"time": 1, "y": 50, "x": 40})
    grid = get_grid("healpix", 7)
    stats = ("count", "mean", "p50")
    part = raster_to_cells(da, grid, stats=stats)
    whole = raster_to_cells(da, grid, stats=stats, domain=True)
    ids = grid.cells().cell_ids.values
    np.testing.assert_array_equal(whole.cell_ids.values, ids)
    xr.testing.assert_equal(whole["mean"], grid.on_domain(part["mean"], ids))
    assert (whole["count"].sel(cells=~np.isin(ids, part.cell_ids.values)) == 0).all()


def test_dask_chunks_give_the_same_result():
    import dask.array

    rng = np.random.default_rng(4)
    values = rng.normal(size=(300, 260)).astype(np.float32)
    values[10:40, 10:60] = np.nan
    da = projected_raster(values)
    stats = ("count", "sum", "mean", "std", "min", "max", "p10", "p90")
    ref = raster_to_cells(da, get_grid("h3", 5), stats=stats)
    lazy = da.copy(data=dask.array.from_array(values, chunks=(70, 90)))
    clear_cache()
    got = raster_to_cells(lazy, get_grid("h3", 5), stats=stats)
    # chunk by chunk: no index of the whole raster was built
    shapes = {ix.shape for ix in _index._MEMORY_CACHE.values()}
    assert values.shape not in shapes and max(s[0] for s in shapes) <= 70
    # chunk edges cut runs; pixel areas are linear along each piece, so the weights
    # differ by ~1e-9 and the means by ~1e-7 of the values' spread
    xr.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-6)


def test_dask_distributed_cluster_gives_the_same_result():
    """On a LocalCluster with two worker processes, as on a real cluster."""
    import dask.array
    from distributed import Client, LocalCluster

    rng = np.random.default_rng(5)
    values = rng.normal(size=(240, 200)).astype(np.float32)
    da = projected_raster(values)
    stats = ("count", "mean", "std", "p50", "p90")
    ref = raster_to_cells(da, get_grid("healpix", 8), stats=stats)
    lazy = da.copy(data=dask.array.from_array(values, chunks=(80, 100)))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        got = raster_to_cells(lazy, get_grid("healpix", 8), stats=stats)
        assert len(client.scheduler_info()["workers"]) == 2
    xr.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-6)
    # the chunks are folded in one order whichever finished first: every bit as threaded
    xr.testing.assert_identical(got, raster_to_cells(lazy, get_grid("healpix", 8),
                                                     stats=stats))


def test_a_cluster_with_few_blocks_splits_their_slices_and_gives_the_same_result(
        monkeypatch):
    """With fewer blocks than TASKS_PER_THREAD per worker thread a block's slices go to
    several tasks; the indexes the first pass keeps on the workers serve the second
    (sent lean to another worker), or, beyond the room the workers' caches have, are
    built again: every way, every bit as on the threaded scheduler."""
    import dask.array
    from distributed import Client, LocalCluster

    rng = np.random.default_rng(6)
    values = rng.normal(size=(3, 160, 200)).astype(np.float32)
    da = projected_raster(values)
    lazy = da.copy(data=dask.array.from_array(values, chunks=(1, 80, 100)))  # 4 blocks
    grids = [get_grid("healpix", 7), get_grid("healpix", 8), get_grid("h3", 4)]
    stats = ("count", "mean", "std", "min", "p10", "p50")
    ref = raster_to_levels(lazy, grids, stats=stats)
    split = []
    groups = raster_module._slice_groups

    def recorded(*args):
        split.append(groups(*args))
        return split[-1]

    monkeypatch.setattr(raster_module, "_slice_groups", recorded)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        kept = raster_to_levels(lazy, grids, stats=stats)
        monkeypatch.setattr(_index, "MEMORY_CACHE_BYTES", 0)  # no room: indexed again
        rebuilt = raster_to_levels(lazy, grids, stats=stats)
    assert split == [[(0, 1), (1, 2), (2, 3)]] * 2  # a task per slice of each block
    for key, ds in ref.items():
        xr.testing.assert_identical(kept[key], ds)
        xr.testing.assert_identical(rebuilt[key], ds)


def test_indexes_kept_between_the_passes_travel_as_their_runs():
    """A block's indexes, kept by the worker that built them for the second pass, are
    sent to another worker without the domains' cell ids and the arrays derived from
    the runs, and made whole there: the same indexes, the same partials; dask counts
    their arrays' bytes."""
    import pickle

    from dask.sizeof import sizeof

    clear_cache()  # a base index cached by another test would hold other levels
    rng = np.random.default_rng(8)
    values = rng.normal(size=(120, 140))
    da = projected_raster(values)
    x, y, crs = da.x.values, da.y.values, CRS.from_user_input(da.rio.crs)
    targets = raster_module._targets(
        [get_grid("healpix", 7), get_grid("healpix", 8), get_grid("h3", 4)], 50.0)
    kept = raster_module._KeptIndexes(x, y, crs, targets)
    sent = pickle.dumps(kept, protocol=5)
    assert len(sent) < len(pickle.dumps(kept.indexes, protocol=5)) / 3
    back = pickle.loads(sent)
    assert back.indexes.keys() == kept.indexes.keys()
    for key, index in kept.indexes.items():
        other = back.indexes[key]
        for attr in ("row", "start", "length", "cell", "weight", "slope", "cell_ids",
                     "touched", "local_cell", "local_pixels", "order", "cell_start"):
            np.testing.assert_array_equal(getattr(other, attr), getattr(index, attr))
        assert other.shape == index.shape
        assert other.max_pixels_per_cell == index.max_pixels_per_cell
        assert other.memo.keys() == index.memo.keys()
        if "from_base" in index.memo:
            np.testing.assert_array_equal(other.memo["from_base"], index.memo["from_base"])
    assert sizeof(kept) >= sum(ix.nbytes() for key, ix in kept.indexes.items()
                               if key in {t.base for t in targets} or key == ("h3", 4))
    totals = [np.full(len(t.cells.cell_ids), 1e9) for t in targets]  # every cell split
    for complete in (None, totals):
        here, there = (raster_module._block_partials(
            [values], indexes, targets, None, True, True, [0.1, 0.5], complete)
            for indexes in (kept.indexes, back.indexes))
        assert [[c.tolist() for c in counts] for counts in here[0]] == \
            [[c.tolist() for c in counts] for counts in there[0]]
        for per_slice, other in zip(here[1], there[1]):
            for p, q in zip(per_slice, other):
                for field in p.__dataclass_fields__:
                    np.testing.assert_array_equal(getattr(p, field), getattr(q, field))


@pytest.mark.parametrize("shared", ["halo", "two variables"])
def test_a_chunk_its_neighbours_share_is_computed_once(monkeypatch, shared):
    """Each block's tasks take their chunks from the slices' graphs as they are: a chunk
    that its neighbours' halos read (``map_overlap``), or that two variables are made
    from (blockwise), is computed once by the reduction, not once per block or variable
    that reads it."""
    import threading

    import dask
    import dask.array

    rng = np.random.default_rng(9)
    values = rng.normal(size=(240, 200))
    lock, made = threading.Lock(), []

    def source(block_info=None):
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        with lock:
            made.append((r0, c0))
        return values[r0:r1, c0:c1]

    src = dask.array.map_blocks(source, chunks=((80,) * 3, (100,) * 2), dtype=values.dtype)
    if shared == "halo":
        lazy = projected_raster(values).copy(
            data=src.map_overlap(lambda a: a, depth=2, boundary="nearest"))
    else:
        base = projected_raster(values)
        lazy = xr.Dataset({"a": base.copy(data=src * 1.0), "b": base.copy(data=src + 1.0)})
    reduce = raster_module._reduce_dask
    during = []

    def counted(*args, **kwargs):
        made.clear()
        out = reduce(*args, **kwargs)
        during.extend(made)
        return out

    monkeypatch.setattr(raster_module, "_reduce_dask", counted)
    with dask.config.set(scheduler="threads", num_workers=2):  # one batch of 8 blocks
        got = raster_to_cells(lazy, get_grid("healpix", 8), stats=("mean", "p50"))
    assert sorted(during) == [(r, c) for r in (0, 80, 160) for c in (0, 100)]
    assert all(np.isfinite(got[v].values).any() for v in got.data_vars)


def test_the_driver_holds_only_the_cells_still_split(monkeypatch):
    """Chunks are folded in as they come, row by row: the driver holds the summaries of
    the cells split between chunks folded and chunks to come, never all of them, and
    none once every chunk is in; every cell gets its quantiles."""
    import dask.array

    monkeypatch.setattr(raster_module, "SUMMARY_POINTS", 8)
    rng = np.random.default_rng(21)
    values = rng.gamma(2.0, size=(360, 360))
    da = projected_raster(values, crs="EPSG:6931", x0=0, y0=-2000e3, res=1000.0)
    lazy = da.copy(data=dask.array.from_array(values, chunks=(40, 40)))  # 9 x 9 chunks
    sent, held = {}, {}
    add = raster_module._Fold.add

    def watched(self, touched, pixels, partials):
        add(self, touched, pixels, partials)
        sent.setdefault(id(self), []).append(sum(len(p.g_values) for p in partials))
        held.setdefault(id(self), []).append(self.held_points)

    monkeypatch.setattr(raster_module._Fold, "add", watched)
    stats = ("count", "mean", "p10", "p50")
    got = raster_to_levels(lazy, [get_grid("healpix", lv) for lv in (7, 8)], stats=stats)
    assert sorted(len(s) for s in sent.values()) == [81, 81]
    for fold in sent:
        assert sum(sent[fold]) > 0 and held[fold][-1] == 0
        assert max(held[fold]) < 0.4 * sum(sent[fold])  # two rows of nine chunks at most
    for ds in got.values():
        valid = ds["count"].values > 0
        assert np.isfinite(ds["p10"].values[valid]).all()
        assert np.isfinite(ds["p50"].values[valid]).all()


def test_the_driver_holds_the_moments_of_open_cells_only(monkeypatch):
    """A cell's moments are held while its chunks come and made final when the last
    has: the rows held stay a small part of the cells (two rows of nine chunks, and the
    rows double as they grow), and the statistics equal the raster's in one block."""
    import dask.array

    rng = np.random.default_rng(22)
    values = rng.gamma(2.0, size=(360, 360))
    values[rng.random(values.shape) < 0.05] = np.nan
    da = projected_raster(values, crs="EPSG:6931", x0=0, y0=-2000e3, res=1000.0)
    lazy = da.copy(data=dask.array.from_array(values, chunks=(40, 40)))  # 9 x 9 chunks
    rows = {}
    add = raster_module._Fold.add

    def watched(self, touched, pixels, partials):
        add(self, touched, pixels, partials)
        rows[id(self)] = (len(self.cells), max(rows.get(id(self), (0, 0))[1],
                                               self.held_rows))

    monkeypatch.setattr(raster_module._Fold, "add", watched)
    grids = [get_grid("healpix", lv) for lv in (9, 10)]
    stats = ("count", "sum", "mean", "std", "min", "max")
    got = raster_to_levels(lazy, grids, stats=stats, dtype=np.float32)
    whole = raster_to_levels(da, grids, stats=stats, dtype=np.float32)
    cells, held = rows[max(rows, key=lambda k: rows[k][0])]
    assert cells > 3000 and held < 0.1 * cells
    for key, ds in got.items():
        assert ds["mean"].dtype == np.float32 and ds["count"].dtype == np.int64
        np.testing.assert_array_equal(ds["count"].values, whole[key]["count"].values)
        for s in stats[1:]:
            np.testing.assert_allclose(ds[s].values, whole[key][s].values, rtol=1e-6)


def test_a_cell_whole_in_a_chunk_is_final_as_a_split_one():
    """A cell whose pixels are all in one chunk is made final from that chunk alone, as
    if combined with the others: its minimum keeps a -0.0, and an infinite pixel makes
    the mean NaN, whatever the chunks."""
    import dask.array

    values = np.full((60, 60), -0.0)
    values[40:, :] = 1.0
    values[45, 45] = np.inf
    da = projected_raster(values, crs="EPSG:6931", x0=0, y0=-2000e3, res=1000.0)
    grids = [get_grid("healpix", 7)]
    stats = ("min", "max", "mean", "std")
    whole = raster_to_levels(da, grids, stats=stats)["healpix", 7]
    for chunks in ((7, 7), (30, 60)):
        lazy = da.copy(data=dask.array.from_array(values, chunks=chunks))
        got = raster_to_levels(lazy, grids, stats=stats)["healpix", 7]
        for s in stats:  # (a split cell's mean to rounding: its parts are combined)
            a, b = got[s].values, whole[s].values
            np.testing.assert_allclose(a, b, rtol=1e-15 if s in ("mean", "std") else 0)
            np.testing.assert_array_equal(np.signbit(a), np.signbit(b))
    assert np.signbit(whole["min"].values).sum() > 0
    assert np.isnan(whole["mean"].values).sum() == 1


LEVEL_STATS = ("count", "sum", "mean", "std", "min", "max", "p10", "p50", "p90")


@pytest.mark.parametrize("chunked", [False, True])
def test_healpix_levels_from_one_index_equal_each_level_on_its_own(chunked, monkeypatch):
    """HEALPix cells nest: every level derived from the finest one's index has the
    pixels of the level reduced on its own; its moments are combined from the finest
    level's (equal to ~1e-9: run pieces change the pixel areas by that much), and its
    quantiles come from the finest cells' summaries, their rank within
    1.5 / SUMMARY_POINTS of the true one (exact at the finest level, in one block)."""
    m = 32
    monkeypatch.setattr(raster_module, "SUMMARY_POINTS", m)
    rng = np.random.default_rng(11)
    values = rng.gamma(2.0, size=(260, 240)).cumsum(axis=1)
    values[rng.random(values.shape) < 0.02] = np.nan
    # an equal-area raster: every pixel weighs the same, so ranks are pixel counts
    da = projected_raster(values, crs="EPSG:6931", x0=0, y0=-2000e3, res=1000.0)
    if chunked:  # the chunks cut the cells: their parts are summarised
        da = da.chunk({"y": 130, "x": 120})
    grids = [get_grid("healpix", lv) for lv in (6, 7, 8, 9)]
    clear_cache()
    levels = raster_to_levels(da, grids, stats=LEVEL_STATS, domain=True)
    assert set(levels) == {("healpix", lv) for lv in (6, 7, 8, 9)}
    # one index of the finest level for every level: per chunk, or for the raster
    assert {ix.shape for ix in _index._MEMORY_CACHE.values()} == (
        {(130, 120)} if chunked else {values.shape})
    xx, yy = np.meshgrid(da.x.values, da.y.values)
    lon, lat = Transformer.from_crs("EPSG:6931", "EPSG:4326", always_xy=True).transform(
        xx.ravel(), yy.ravel())
    for g in grids:
        one = raster_to_cells(da, g, stats=LEVEL_STATS, domain=True)
        got = levels[g.name, g.level]
        np.testing.assert_array_equal(got.cell_ids, one.cell_ids)
        np.testing.assert_array_equal(got["count"], one["count"])
        for s in ("sum", "mean", "std", "min", "max"):
            xr.testing.assert_allclose(got[s], one[s], rtol=1e-7, atol=1e-6 * np.nanstd(values))
        ids = g.latlon_to_cells(lat, lon)
        bound = 0 if g.level == 9 and not chunked else 1.5 / m
        for k in np.flatnonzero(got["count"].values > 0):
            v = values.ravel()[(ids == got.cell_ids.values[k]) & np.isfinite(values.ravel())]
            for q, name in ((0.1, "p10"), (0.5, "p50"), (0.9, "p90")):
                x = got[name].values[k]
                assert np.mean(v < x) <= q + bound + 1e-9, (g, name)
                assert np.mean(v <= x) >= q - bound - 1e-9, (g, name)


def test_levels_keep_cells_whose_part_in_a_chunk_is_all_missing():
    """A cell whose pixels in one chunk are all missing keeps its mean and std at every
    level; a domain reaching the south pole, and a level asked for twice, work too."""
    rng = np.random.default_rng(12)
    v = rng.normal(size=(200, 210))
    v[rng.random(v.shape) < 0.1] = np.nan
    da = projected_raster(v, res=1500.0, y0=-1500e3).chunk({"y": 50, "x": 70})
    grids = [get_grid("healpix", 8), get_grid("healpix", 6), get_grid("healpix", 8)]
    levels = raster_to_levels(da, grids, stats=("count", "mean", "std"), domain=True)
    for g in grids[:2]:
        one = raster_to_cells(da, g, stats=("count", "mean", "std"), domain=True)
        for s in ("count", "mean", "std"):
            xr.testing.assert_allclose(levels[g.name, g.level][s], one[s], rtol=1e-6, atol=1e-6)
    whole = raster_to_levels(da, grids[:2], stats=("mean", "p50"), min_lat=-90.0)
    assert all(np.isfinite(ds["mean"]).any() for ds in whole.values())


def test_h3_coarse_levels_hold_their_finest_descendants_pixels():
    """A coarse H3 cell gets the pixels of its descendants at the finest level: its
    count is theirs, its mean their area-weighted mean; its own outline differs from
    theirs by a few per cent of its area."""
    rng = np.random.default_rng(12)
    da = projected_raster(rng.normal(size=(300, 300)), res=1500.0, y0=-1500e3)
    grids = [get_grid("h3", lv) for lv in (3, 5)]
    levels = raster_to_levels(da, grids, stats=("count", "mean"), domain=True)
    fine, coarse = levels["h3", 5], levels["h3", 3]
    parents = get_grid("h3", 5).parents(fine.cell_ids.values, 3)
    count = pd.Series(fine["count"].values).groupby(parents).sum()
    n = coarse["count"].to_series()
    n.index = coarse.cell_ids.values
    n = n[n > 0]
    np.testing.assert_array_equal(n.values, count.reindex(n.index).values)
    direct = raster_to_cells(da, get_grid("h3", 3), stats=("count",), domain=True)["count"]
    moved = np.abs(coarse["count"].values - direct.values).sum() / direct.values.sum()
    assert 0 < moved < 0.1


def test_split_cells_quantiles_from_summaries_are_within_their_rank_bound(monkeypatch):
    """Each chunk's part of a split cell is summarised by at most SUMMARY_POINTS points:
    the merged quantiles' ranks are within 1 / SUMMARY_POINTS of the true ones."""
    import dask.array

    m = 16
    monkeypatch.setattr(raster_module, "SUMMARY_POINTS", m)
    grid = get_grid("healpix", 6)
    rng = np.random.default_rng(13)
    # an equal-area raster: every pixel weighs the same, so ranks are pixel counts
    values = rng.gamma(2.0, size=(240, 240))
    da = projected_raster(values, crs="EPSG:6931", x0=0, y0=-2000e3, res=1500.0)
    lazy = da.copy(data=dask.array.from_array(values, chunks=(50, 70)))
    qs = (0.1, 0.5, 0.9)
    got = raster_to_cells(lazy, grid, stats=("p10", "p50", "p90"))
    exact = raster_to_cells(da, grid, stats=("p10", "p50", "p90"))
    assert not np.allclose(got.p50, exact.p50)  # summaries were used
    xx, yy = np.meshgrid(da.x.values, da.y.values)
    lon, lat = Transformer.from_crs("EPSG:6931", "EPSG:4326", always_xy=True).transform(
        xx.ravel(), yy.ravel())
    ids = grid.latlon_to_cells(lat, lon)
    for k, cid in enumerate(got.cell_ids.values):
        v = values.ravel()[ids == cid]
        for q, name in zip(qs, ("p10", "p50", "p90")):
            x = got[name].values[k]
            assert np.mean(v < x) <= q + 1 / m + 1e-9
            assert np.mean(v <= x) >= q - 1 / m - 1e-9


def assert_merged_within_rank(values, weights, v, w, qs, m):
    """The quantiles ``qs`` of summary points (``values``, ``weights``) merged into one
    cell lie within 1/m of their true rank among the pixels ``v`` weighted ``w``."""
    from entropice.aggregate import _kernels

    got = _kernels.grouped_quantiles(np.zeros(len(values), dtype=np.int64), values, weights,
                                     1, qs)[0]
    total = w.sum()
    for q, x in zip(qs, got):
        assert w[v < x].sum() / total <= q + 1 / m + 1e-9
        assert w[v <= x].sum() / total >= q - 1 / m - 1e-9


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.sampled_from([4, 16, 64]),
       st.sampled_from(["continuous", "ties", "heavy"]))
def test_summaries_of_parts_merge_within_the_rank_bound(seed, n_parts, m, kind):
    """Parts of one cell's pixels, each summarised (``_kernels.summarise``) and merged,
    give every quantile within 1/m of its true rank: ties, a heavy bucket (most pixels
    in a narrow range) and unequal pixel weights included."""
    from entropice.aggregate import _kernels

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    if kind == "continuous":
        v = rng.gamma(2.0, size=n)
    elif kind == "ties":
        v = rng.integers(0, 7, size=n).astype(float)
    else:
        v = np.where(rng.random(n) < 0.9, 1.0 + 1e-6 * rng.random(n), rng.normal(size=n) * 50)
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(n_parts - 1, n - 1), replace=False))
    starts = np.concatenate([[0], cuts]).astype(np.int32)
    lengths = np.diff(np.append(starts, n)).astype(np.int32)
    k = len(starts)
    weight = rng.uniform(0.5, 1.5, size=k)  # each part's first pixel area...
    slope = rng.uniform(-1e-4, 1e-4, size=k)  # ...changing along it
    data = v[None, :]
    runs = (data, 0.0, False, np.zeros(k, dtype=np.int32), starts, lengths,
            np.arange(k, dtype=np.int32), weight, slope)
    count, wsum, _, _, _, lo, hi = _kernels.moments(*runs, k, False, True)
    _, values, weights = _kernels.summarise(
        *runs, np.arange(k), np.arange(k + 1, dtype=np.int64), np.ones(k, dtype=bool), count,
        wsum, lo, hi, int(lengths.max()), m, int(np.minimum(lengths, m).sum()))
    assert len(values) <= np.minimum(lengths, m).sum()
    w = np.concatenate([weight[p] + np.arange(lengths[p]) * slope[p] for p in range(k)])
    np.testing.assert_allclose(weights.sum(), w.sum(), rtol=1e-9)
    qs = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    assert_merged_within_rank(values, weights, v, w, qs, m)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.sampled_from([4, 16, 64]),
       st.sampled_from(["continuous", "ties", "heavy", "arcsine"]))
def test_sketches_merge_within_the_rank_bound_and_give_exact_quantiles(seed, n_parts, m,
                                                                      kind):
    """``_kernels.sketch`` (the finest cells' summaries that coarser levels merge): each
    cell's points, merged with the others', give every quantile within 1/m of its true
    rank; the quantiles it computes besides are numpy's, exactly, and the summaries of
    the cells it is told are split are ``summarise``'s, every bit."""
    from entropice.aggregate import _kernels

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4000))
    v = {"continuous": lambda: rng.gamma(2.0, size=n),
         "ties": lambda: rng.integers(0, 7, size=n).astype(float),
         "heavy": lambda: np.where(rng.random(n) < 0.9, 1.0 + 1e-6 * rng.random(n),
                                   rng.normal(size=n) * 50),
         "arcsine": lambda: np.cos(rng.uniform(0, 2 * np.pi, size=n))}[kind]()
    k = min(n_parts, n)  # the parts are cells here, one run each
    starts = np.concatenate([[0], np.sort(rng.choice(np.arange(1, n), size=k - 1,
                                                     replace=False))]).astype(np.int32)
    lengths = np.diff(np.append(starts, n)).astype(np.int32)
    weight, slope = rng.uniform(0.5, 1.5, size=k), rng.uniform(-1e-4, 1e-4, size=k)
    runs = (v[None, :], 0.0, False, np.zeros(k, dtype=np.int32), starts, lengths,
            np.arange(k, dtype=np.int32), weight, slope)
    moments = _kernels.moments(*runs, k, False, True)
    qs = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    split = rng.random(k) < 0.5
    (cells, values, weights), exact, summaries = _kernels.sketch(
        runs, np.arange(k), np.arange(k + 1, dtype=np.int64), moments, m, qs,
        np.ones(k, dtype=bool), split)
    count, wsum, _, _, _, lo, hi = moments
    want = _kernels.summarise(*runs, np.arange(k), np.arange(k + 1, dtype=np.int64), split,
                              count, wsum, lo, hi, int(lengths.max()), m,
                              int(np.minimum(lengths[split], m).sum()))
    for got, expected in zip(summaries, want):
        np.testing.assert_array_equal(got, expected)
    assert np.all(np.bincount(cells, minlength=k) <= np.minimum(lengths, m))
    w = np.concatenate([weight[p] + np.arange(lengths[p]) * slope[p] for p in range(k)])
    np.testing.assert_allclose(weights.sum(), w.sum(), rtol=1e-9)
    for p in range(k):
        part = slice(starts[p], starts[p] + lengths[p])
        np.testing.assert_array_equal(exact[p], np.quantile(
            v[part], qs, weights=w[part], method="inverted_cdf"))
    assert_merged_within_rank(values, weights, v, w, qs, m)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 4, 16]),
       st.sampled_from(["continuous", "float32", "ties", "signed zeros",
                        "signed zeros, float64", "one value"]))
def test_merge_gives_grouped_quantiles_and_compressed_points(seed, m, kind):
    """``_kernels.merge`` (the finest cells' points, sorted by value, into a coarser
    level's cells in one pass): a whole cell's quantiles are ``grouped_quantiles``' of its
    points, every bit, whatever the order of ``qs``; a split cell keeps its points where it
    has at most ``m``, else their inverted-CDF quantiles at (j + 1/2) / m, each weighing 1/m
    of its weight (summed in value order), sorted by cell and value; points of finest
    cells outside the level are left out. ``by_value`` orders the points as a stable sort
    by value does, every bit (float32 values, which it sorts by keys, or others; -0.0
    equal to 0.0)."""
    from entropice.aggregate import _kernels

    rng = np.random.default_rng(seed)
    n, n_fine, n_cells = int(rng.integers(0, 400)), 12, 5
    cells = rng.integers(0, n_fine, size=n)
    values = {"continuous": lambda: rng.gamma(2.0, size=n),
              "float32": lambda: rng.normal(size=n).astype(np.float32).astype(float),
              "ties": lambda: rng.integers(0, 5, size=n).astype(float),
              "signed zeros": lambda: rng.choice([-0.0, 0.0, -1.5, 2.0], size=n),
              # 0.1 is no float32: sorted without keys
              "signed zeros, float64": lambda: rng.choice([-0.0, 0.0, 0.1, -1.5], size=n),
              "one value": lambda: np.full(n, 3.0)}[kind]()
    weights = rng.uniform(0.5, 1.5, size=n)
    stable = np.argsort(values, kind="stable")
    points = (cells[stable], values[stable], weights[stable])
    cells, values, weights = _kernels.by_value(cells, values, weights)
    for got, want in zip((cells, values, weights), points):
        np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
    to_cell = rng.integers(-1, n_cells, size=n_fine)
    whole = rng.random(n_cells) < 0.5
    qs = np.array([0.9, 0.0, 0.5, 0.1, 1.0])
    quant, (got_c, got_v, got_w) = _kernels.merge(cells, values, weights, to_cell, whole, qs, m)
    coarse = to_cell[cells]
    inside = coarse >= 0
    expected = _kernels.grouped_quantiles(coarse[inside], values[inside], weights[inside],
                                          n_cells, qs)
    np.testing.assert_array_equal(quant[whole], expected[whole])
    assert np.isnan(quant[~whole]).all()
    want_c, want_v, want_w = [], [], []
    for c in np.flatnonzero(~whole):
        v, w = values[coarse == c], weights[coarse == c]
        if len(v) <= m:
            want_c += [c] * len(v)
            want_v += list(v)
            want_w += list(w)
            continue
        total = 0.0
        for x in w:
            total += x
        cum, p = 0.0, 0
        for j in range(m):
            while p < len(v) - 1 and cum + w[p] < (j + 0.5) / m * total:
                cum += w[p]
                p += 1
            want_c.append(c)
            want_v.append(v[p])
            want_w.append(total / m)
    np.testing.assert_array_equal(got_c, np.array(want_c, dtype=np.int64))
    np.testing.assert_array_equal(got_v, np.array(want_v, dtype=float))
    np.testing.assert_array_equal(got_w, np.array(want_w, dtype=float))


@pytest.mark.parametrize("chunks", [None, {}, {"y": 60, "x": 70}])
def test_progress_gives_its_total_first_and_steps_for_a_raster_in_one_block(chunks):
    """``progress`` hears the total before any work, then every step: a dask raster's
    blocks counted and reduced (a raster in memory, or in one dask block, shows steps
    too) and each level assembled."""
    rng = np.random.default_rng(14)
    da = projected_raster(rng.normal(size=(120, 130)), res=1500.0, y0=-1500e3)
    if chunks is not None:
        da = da.chunk(chunks)  # {}: the whole raster in one dask block
    calls = []
    grids = [get_grid("healpix", 6), get_grid("healpix", 8)]
    raster_to_levels(da, grids, stats=("mean", "p50"),
                     progress=lambda done, total: calls.append((done, total)))
    total = calls[0][1]
    blocks = 1 if chunks in (None, {}) else 4
    assert total == 2 * blocks + len(grids)
    assert calls == [(k, total) for k in range(total + 1)]


def test_index_is_cached_in_memory_and_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("ENTROPICE_CACHE_DIR", str(tmp_path))
    clear_cache()
    da = projected_raster(np.ones((50, 50)))
    grid = get_grid("h3", 4)
    raster_to_cells(da, grid)
    files = list((tmp_path / "pixel-index").glob("*.npz"))
    assert len(files) == 1
    first = next(iter(_index._MEMORY_CACHE.values()))
    raster_to_cells(da * 2, grid)
    assert next(iter(_index._MEMORY_CACHE.values())) is first
    clear_cache()
    ds = raster_to_cells(da * 3, grid)  # from disk
    assert len(_index._MEMORY_CACHE) == 1 and np.allclose(ds["mean"], 3.0)


def test_raster_without_crs_is_an_error():
    da = xr.DataArray(np.ones((4, 4)), dims=("y", "x"), coords={"y": np.arange(4.0),
                                                                 "x": np.arange(4.0)},
                      name="dem")
    with pytest.raises(ValueError, match="raster 'dem' has no CRS"):
        raster_to_cells(da, get_grid("h3", 3))


def test_raster_with_untransformable_crs_is_an_error():
    local = CRS.from_wkt(
        'ENGCRS["site grid",EDATUM["local"],CS[Cartesian,2],'
        'AXIS["x",east,LENGTHUNIT["metre",1]],AXIS["y",north,LENGTHUNIT["metre",1]]]')
    da = projected_raster(np.ones((4, 4)), crs=local, name="dem")
    with pytest.raises(ValueError, match="raster 'dem': its CRS .* cannot be transformed"):
        raster_to_cells(da, get_grid("h3", 3))


def test_raster_outside_the_domain_is_an_error():
    lat, lon = np.arange(10.0, 0.0, -1.0), np.arange(0.0, 10.0, 1.0)
    da = xr.DataArray(np.ones((10, 10)), dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
                      name="tropics")
    with pytest.raises(ValueError, match="raster 'tropics' does not overlap the domain"):
        raster_to_cells(da, get_grid("h3", 3))


def test_unknown_statistic_is_an_error():
    with pytest.raises(ValueError, match="unknown statistic 'mode'"):
        raster_to_cells(projected_raster(np.ones((4, 4))), get_grid("h3", 3), stats=("mode",))


# -- polygons -----------------------------------------------------------------------------


def geod_area_km2(poly_lonlat):
    return abs(GEOD.geometry_area_perimeter(shapely.segmentize(poly_lonlat, 0.01))[0]) / 1e6


@settings(max_examples=15, deadline=None)
@given(st.floats(52.0, 85.0), st.floats(-179.0, 179.0), st.sampled_from([("h3", 4),
                                                                         ("healpix", 6)]))
def test_polygon_inside_one_cell_gives_it_its_area(lat, lon, grid_spec):
    grid = get_grid(*grid_spec)
    cid = grid.latlon_to_cells([lat], [lon])[0]
    clat, clon = grid.centres([cid])
    small = shapely.Point(clon[0], clat[0]).buffer(0.02)
    gdf = gpd.GeoDataFrame({"n": [4.0]}, geometry=[small], crs="EPSG:4326")
    ds = polygons_to_cells(gdf, grid, attributes=["n"])
    assert list(ds.cell_ids.values) == [cid]
    assert ds.overlap_area_km2.item() == pytest.approx(geod_area_km2(small), rel=1e-5)
    assert ds["count"].item() == 1 and ds["sum_n"].item() == pytest.approx(4.0)


def test_polygon_across_cells_is_split_and_keeps_its_area():
    grid = get_grid("healpix", 7)
    big = shapely.box(10.0, 65.0, 14.0, 67.0)
    gdf = gpd.GeoDataFrame({"n": [10.0]}, geometry=[big], crs="EPSG:4326")
    ds = polygons_to_cells(gdf, grid, attributes=["n"])
    assert ds.sizes["cells"] > 10
    assert ds.overlap_area_km2.sum() == pytest.approx(geod_area_km2(big), rel=1e-5)
    assert ds["sum_n"].sum() == pytest.approx(10.0)
    assert ds["count"].sum() == 1
    # a cell wholly inside the polygon gets the whole cell area
    k = int(np.argmax(ds.overlap_area_km2.values))
    full = ds.overlap_area_km2.values[k]
    assert full == pytest.approx(grid.areas_km2(ds.cell_ids.values[[k]])[0], rel=1e-3)


@pytest.mark.parametrize("shape", [
    shapely.Polygon([(179, 70), (-179, 70), (-179, 71), (179, 71)]),  # edges jump +-180
    shapely.MultiPolygon([shapely.box(179, 70, 180, 71), shapely.box(-180, 70, -179, 71)]),
    shapely.box(179, 70, 181, 71),  # longitudes past 180
])
def test_polygon_across_the_antimeridian(shape):
    ds = polygons_to_cells(gpd.GeoDataFrame(geometry=[shape], crs="EPSG:4326"), get_grid("h3", 4))
    expected = geod_area_km2(shapely.box(179, 70, 181, 71))
    assert ds.overlap_area_km2.sum() == pytest.approx(expected, rel=1e-5)
    lons = get_grid("h3", 4).centres(ds.cell_ids.values)[1]
    assert (lons > 170).any() and (lons < -170).any()


def test_polygon_around_the_pole():
    cap = shapely.Polygon([(-180, 85), (180, 85), (180, 90), (-180, 90)])
    for grid in (get_grid("h3", 4), get_grid("healpix", 6)):
        ds = polygons_to_cells(gpd.GeoDataFrame(geometry=[cap], crs="EPSG:4326"), grid)
        assert ds.overlap_area_km2.sum() == pytest.approx(
            geometry.ellipsoid_area_north_of(85.0), rel=1e-5)
        assert ds["count"].sum() == 1


def test_polygons_in_a_projected_crs():
    poly_3413 = shapely.box(-100e3, -1200e3, 100e3, -1000e3)
    gdf = gpd.GeoDataFrame(geometry=[poly_3413], crs="EPSG:3413")
    ds = polygons_to_cells(gdf, get_grid("h3", 5))
    dense = gdf.geometry.segmentize(200.0).to_crs("EPSG:4326").iloc[0]
    expected = abs(GEOD.geometry_area_perimeter(dense)[0]) / 1e6
    assert ds.overlap_area_km2.sum() == pytest.approx(expected, rel=1e-4)


def test_invalid_polygons_are_repaired_or_rejected():
    bowtie = shapely.Polygon([(10, 60), (11, 61), (11, 60), (10, 61)])
    gdf = gpd.GeoDataFrame(geometry=[bowtie], crs="EPSG:4326", index=["rts-17"])
    ds = polygons_to_cells(gdf, get_grid("h3", 5))
    repaired = shapely.make_valid(bowtie)
    assert ds.overlap_area_km2.sum() == pytest.approx(geod_area_km2(repaired), rel=1e-3)
    with pytest.raises(ValueError, match="polygon row 'rts-17' is invalid"):
        polygons_to_cells(gdf, get_grid("h3", 5), repair=False)


def test_bad_polygon_input():
    grid = get_grid("h3", 3)
    with pytest.raises(ValueError, match="have no CRS"):
        polygons_to_cells(gpd.GeoDataFrame(geometry=[shapely.box(0, 60, 1, 61)]), grid)
    with pytest.raises(ValueError, match="is a Point, not a polygon"):
        polygons_to_cells(gpd.GeoDataFrame(geometry=[shapely.Point(0, 60)], crs="EPSG:4326"),
                          grid)
    with pytest.raises(ValueError, match="row 0 reaches latitudes beyond"):
        polygons_to_cells(gpd.GeoDataFrame(geometry=[shapely.box(0, 89, 1, 91)],
                                           crs="EPSG:4326"), grid)
    with pytest.raises(ValueError, match="attribute 'area' is not a column"):
        polygons_to_cells(gpd.GeoDataFrame(geometry=[shapely.box(0, 60, 1, 61)],
                                           crs="EPSG:4326"), grid, attributes=["area"])


def test_land_fraction():
    grid = get_grid("healpix", 5)
    cells = grid.cells()
    land = gpd.GeoDataFrame(geometry=[shapely.box(-180, 50, 0, 90)], crs="EPSG:4326")
    frac = land_fraction(grid, land)
    west = cells.lon.values < -20
    east = cells.lon.values > 20
    inner = (cells.lat.values > 53) & (cells.lat.values < 80)  # away from 50 N and the pole
    np.testing.assert_allclose(frac.values[west & inner], 1.0, atol=1e-4)
    np.testing.assert_allclose(frac.values[east & inner], 0.0, atol=1e-9)
    assert frac.attrs["units"] == "1"


# -- roll-up --------------------------------------------------------------------------------


def test_healpix_rollup_of_sums_is_exact():
    fine = get_grid("healpix", 7)
    ds = fine.cells()
    rng = np.random.default_rng(5)
    ds["n"] = ("cells", rng.integers(0, 5, ds.sizes["cells"]).astype(float),
               {"units": "1", "long_name": "count", "cell_methods": "area: sum"})
    ds["t"] = ("cells", rng.normal(size=ds.sizes["cells"]), {"units": "K", "long_name": "t"})
    up = rollup(ds, 5)
    parents = fine.parents(ds.cell_ids.values, 5)
    for k, pid in enumerate(up.cell_ids.values[:50]):
        sel = parents == pid
        assert up.n.values[k] == ds.n.values[sel].sum()
        w = ds.area_km2.values[sel]
        assert up.t.values[k] == pytest.approx(np.average(ds.t.values[sel], weights=w))
    # the children tile the parent: areas add up to the coarse grid's own areas (for
    # parents whose children all lie in the domain: away from its 50 N edge)
    inner = up.lat.values > 52
    np.testing.assert_allclose(up.area_km2.values[inner],
                               get_grid("healpix", 5).areas_km2(up.cell_ids.values[inner]),
                               rtol=1e-6)


def test_h3_rollup_approximates_the_parent_areas():
    ds = get_grid("h3", 5).cells()
    up = rollup(ds, 3)
    ref = get_grid("h3", 3).areas_km2(up.cell_ids.values)
    complete = up.lat.values > 52  # parents whose children all lie in the domain
    ratio = up.area_km2.values[complete] / ref[complete]
    assert np.median(np.abs(ratio - 1)) < 0.05
    assert up.area_km2.sum() == pytest.approx(ds.area_km2.sum())


def _numpy_bilinear(data, row, col, nodata):
    """Bilinear samples in plain numpy: missing corners left out, weights renormalised,
    relative to the heaviest valid corner."""
    rows, cols, w = raster_module._corners(row, col, data.shape)
    vals = data[rows, cols].astype(np.float64)
    if nodata is not None:
        vals = np.where(vals == nodata, np.nan, vals)
    w = np.where(np.isfinite(vals), w, 0.0)
    ref = vals[np.argmax(w, axis=0), np.arange(vals.shape[1])]
    wsum = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = (w * np.where(w > 0, vals - ref, 0.0)).sum(axis=0) / wsum
    return np.where(wsum > 0, ref + offset, np.nan)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.sampled_from(["float32", "float64", "int16"]),
       st.booleans(), st.integers(0, 2**31))
def test_bilinear_samples_equal_the_numpy_formula(ny, nx, dtype, with_nodata, seed):
    """The sampling kernels (a raster in memory, and the corners gathered from a dask
    one) give the numpy formula bit for bit: NaN and nodata corners left out, rows
    clamped, columns wrapped."""
    from entropice.aggregate import _kernels

    rng = np.random.default_rng(seed)
    data = rng.normal(0, 100, (ny, nx)).astype(dtype)
    if dtype != "int16":
        data[rng.random((ny, nx)) < 0.2] = np.nan
    data[rng.random((ny, nx)) < 0.15] = -9
    nodata = -9 if with_nodata else None
    row = rng.uniform(-1, ny, 200)
    col = rng.uniform(-2, nx + 1, 200)
    row[:20], col[20:40] = np.floor(row[:20]), np.floor(col[20:40])
    expected = _numpy_bilinear(data, row, col, nodata)
    nd = 0.0 if nodata is None else float(nodata)
    np.testing.assert_array_equal(_kernels.bilinear(data, row, col, nd, with_nodata), expected)
    rows, cols, w = raster_module._corners(row, col, data.shape)
    np.testing.assert_array_equal(_kernels.interpolate(data[rows, cols], w, nd, with_nodata),
                                  expected)
