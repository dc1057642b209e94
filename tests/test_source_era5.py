"""The ERA5 reader: CDS NetCDF (both layouts) and the analysis-ready Zarr layout,
written here in those formats; features checked against numpy on the same values."""

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.interpolate import RegularGridInterpolator

from entropice.grids import get_grid
from entropice.sources import era5

LAT = np.arange(90.0, 49.0, -2.0)
LON = np.arange(0.0, 360.0, 2.0)


def temperature_k(times, lat):
    """A seasonal cycle, colder to the north, warming by 0.3 K a year."""
    t = pd.DatetimeIndex(times)
    doy = t.day_of_year.values + t.hour.values / 24.0
    years = (t.year.values - 2010) + doy / 365.25
    season = 14.0 * np.sin(2 * np.pi * (doy - 110) / 365.25)
    return (273.15 + 2.0 + season[:, None, None] + 0.3 * years[:, None, None]
            - 0.4 * (lat[None, :, None] - 70.0) + np.zeros((1, 1, len(LON))))


def cds_hourly(path, start="2019-10-01", end="2021-12-31 18:00"):
    """6-hourly data in the new CDS NetCDF layout (valid_time, number, expver)."""
    times = pd.date_range(start, end, freq="6h")
    t2m = temperature_k(times, LAT).astype(np.float32)
    tp = np.full(t2m.shape, 0.0005, dtype=np.float32)  # 0.5 mm in the hour before each step
    ds = xr.Dataset(
        {"t2m": (("valid_time", "latitude", "longitude"), t2m, {"units": "K"}),
         "tp": (("valid_time", "latitude", "longitude"), tp, {"units": "m"}),
         "sf": (("valid_time", "latitude", "longitude"), tp / 2,
                {"units": "m of water equivalent"})},
        coords={"valid_time": times, "latitude": LAT, "longitude": LON,
                "number": 0, "expver": ("valid_time", np.full(len(times), "0001"))},
    )
    ds.to_netcdf(path)
    return ds


def cds_monthly(path, years=range(2009, 2022)):
    """Monthly means in the older CDS layout (time); tp as mean daily accumulation."""
    times = pd.date_range(f"{min(years)}-01-01", f"{max(years)}-12-01", freq="MS")
    mid = times + pd.to_timedelta(times.days_in_month / 2, unit="D")
    t2m = temperature_k(mid, LAT).astype(np.float32)
    tp = np.full(t2m.shape, 0.002, dtype=np.float32)  # 2 mm per day
    ds = xr.Dataset({"t2m": (("time", "latitude", "longitude"), t2m, {"units": "K"}),
                     "tp": (("time", "latitude", "longitude"), tp, {"units": "m"})},
                    coords={"time": times, "latitude": LAT, "longitude": LON})
    ds.to_netcdf(path)
    return ds


def sample_at_centres(field, grid):
    """Bilinear interpolation of a (lat, lon) field at the domain's cell centres."""
    cells = grid.cells()
    lon = np.mod(cells.lon.values, 360.0)
    ext_lon = np.append(LON, 360.0)
    ext = np.concatenate([field, field[:, :1]], axis=1)
    f = RegularGridInterpolator((LAT[::-1], ext_lon), ext[::-1])
    return f(np.column_stack([cells.lat.values, lon]))


def test_hourly_cds_netcdf(tmp_path):
    path = tmp_path / "era5_hourly.nc"
    raw = cds_hourly(path)
    ds = era5.open(path)
    assert ds.attrs["frequency"] == "hourly"
    assert set(ds.data_vars) == {"t2m", "tp", "sf"}
    assert ds.latitude.values[0] > ds.latitude.values[-1]
    assert ds.longitude.min() >= -180 and ds.longitude.max() < 180
    f = era5.features(ds)
    assert list(f.year.values) == [2020, 2021]  # Oct 2019 - Sep 2021, Arctic years
    # another way: numpy on the raw values of Arctic year 2021
    t = raw.t2m.sel(valid_time=slice("2020-10-01", "2021-09-30 18:00")).values - 273.15
    daily = t.reshape(-1, 4, *t.shape[1:]).mean(axis=1)
    tdd = np.clip(daily, 0, None).sum(axis=0)
    got = f.era5_tdd_sum.sel(year=2021).sortby("longitude")
    np.testing.assert_allclose(got.values, _to_minus180(tdd), rtol=1e-5)
    np.testing.assert_allclose(f.era5_tp_annual_sum.sel(year=2021), 365 * 24 * 0.5, rtol=1e-5)
    np.testing.assert_allclose(f.era5_sf_annual_sum.sel(year=2021), 365 * 24 * 0.25, rtol=1e-5)
    p90 = np.quantile(daily, 0.9, axis=0)
    np.testing.assert_allclose(f.era5_t2m_p90.sel(year=2021).sortby("longitude").values,
                               _to_minus180(p90), rtol=1e-5)
    # thaw onset: the first upward crossing of 0 degC by the daily means, within the
    # ~1 day that the 7-day smoothing moves it
    thaw = f.era5_thaw_onset_doy.sel(year=2021).sortby("longitude").values[:, 0]
    col = daily[:, :, 90]  # longitude 180 = -180, the first after sorting
    for row in range(len(LAT)):
        up = np.flatnonzero((col[:-1, row] <= 0) & (col[1:, row] > 0))
        if len(up) == 0:
            continue
        i = up[0]
        expected = i + col[i, row] / (col[i, row] - col[i + 1, row])
        assert abs(thaw[row] - expected) < 1.5, (row, thaw[row], expected)
    # the shoulder: the four weeks around thaw onset, another way (daily means by hand)
    shoulder = f.era5_t2m_thaw_shoulder_mean.sel(year=2021).sortby("longitude").values[:, 0]
    for row in np.flatnonzero(np.isfinite(thaw))[:5]:
        days = np.arange(thaw[row] - 14, thaw[row] + 15)
        expected = np.interp(days, np.arange(len(col)), col[:, row]).mean()
        assert abs(shoulder[row] - expected) < 0.05
    season = f.era5_thaw_season_days.sel(year=2021).values
    found = ~np.isnan(season)  # NaN: no freeze-up within three months past the year
    assert found.mean() > 0.5 and (season[found] >= 0).all() and (season[found] <= 458).all()


def _to_minus180(field):
    """Reorder a field on LON (0..358) to longitudes -180..178."""
    return np.roll(field, len(LON) // 2, axis=-1)


def test_hourly_to_cells_samples_coarse_era5(tmp_path):
    path = tmp_path / "era5.nc"
    cds_hourly(path)
    ds = era5.open(path)
    grid = get_grid("h3", 3)
    cells = era5.to_cells(ds, grid)
    assert cells.era5_tdd_sum.dims == ("year", "cells")
    assert cells.sizes["cells"] == grid.cells().sizes["cells"]
    assert not np.isnan(cells.era5_t2m_annual_mean.values).any()
    f = era5.features(ds).sel(year=2021)
    # ERA5 pixels (2 deg) are larger than the cells: bilinear at the cell centres
    lon_sorted = f.era5_t2m_jja_mean.sortby("longitude").values
    expected = sample_at_centres(np.roll(lon_sorted, -len(LON) // 2, axis=-1), grid)
    np.testing.assert_allclose(cells.era5_t2m_jja_mean.sel(year=2021), expected, rtol=1e-6,
                               atol=1e-6)
    assert cells.era5_t2m_jja_mean.attrs["units"] == "degC"


def test_monthly_means_and_the_trend(tmp_path):
    path = tmp_path / "era5_monthly.nc"
    raw = cds_monthly(path)
    ds = era5.open(path)
    assert ds.attrs["frequency"] == "monthly"
    f = era5.features(ds, trend_window=10)
    assert f.year.values[0] == 2010 and f.year.values[-1] == 2021
    # mean daily accumulation (m/day) -> mm per year
    np.testing.assert_allclose(f.era5_tp_annual_sum.sel(year=2015), 2.0 * 365, rtol=1e-5)
    # degree days from monthly means, weighted by the days of each month
    sel = raw.sel(time=slice("2014-10-01", "2015-09-01"))
    days = pd.DatetimeIndex(sel.time.values).days_in_month.values[:, None, None]
    tdd = (np.clip(sel.t2m.values - 273.15, 0, None) * days).sum(axis=0)
    np.testing.assert_allclose(f.era5_tdd_sum.sel(year=2015).sortby("longitude").values,
                               _to_minus180(tdd), rtol=1e-5)
    # 0.3 K per year -> 3 K per decade, once the window holds enough years
    np.testing.assert_allclose(f.era5_t2m_trend.sel(year=2021), 3.0, rtol=1e-2)
    assert np.isnan(f.era5_t2m_trend.sel(year=2011)).all()


def test_analysis_ready_zarr_layout(tmp_path):
    nc = tmp_path / "m.nc"
    raw = cds_monthly(nc, years=range(2019, 2022))
    arco = raw.rename({"t2m": "2m_temperature", "tp": "total_precipitation"})
    arco = arco.sortby("latitude")  # ascending, unlike the CDS files
    store = tmp_path / "era5.zarr"
    arco.to_zarr(store, zarr_format=3, consolidated=False)
    a = era5.features(era5.open(store))
    b = era5.features(era5.open(nc))
    xr.testing.assert_allclose(a, b)


def test_calendar_years(tmp_path):
    path = tmp_path / "m.nc"
    cds_monthly(path, years=range(2019, 2022))
    f = era5.features(era5.open(path), year_start_month=1)
    assert list(f.year.values) == [2019, 2020, 2021]


# -- bad input ------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="ERA5 file .*none.nc does not exist"):
        era5.open(tmp_path / "none.nc")


def test_missing_variable(tmp_path):
    path = tmp_path / "only_tp.nc"
    raw = cds_monthly(tmp_path / "m.nc", years=[2020])
    raw[["tp"]].to_netcdf(path)
    with pytest.raises(ValueError, match="only_tp.nc lacks the variable\\(s\\) t2m"):
        era5.open(path)


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.nc"
    path.write_text("not netcdf")
    with pytest.raises(ValueError, match="cannot read ERA5 data .*broken.nc"):
        era5.open(path)


def test_no_arctic_data(tmp_path):
    path = tmp_path / "tropics.nc"
    raw = cds_monthly(tmp_path / "m.nc", years=[2020])
    raw.assign_coords(latitude=raw.latitude - 80).to_netcdf(path)
    with pytest.raises(ValueError, match="tropics.nc has no latitude north of 49"):
        era5.open(path)


def test_no_complete_year(tmp_path):
    path = tmp_path / "short.nc"
    raw = cds_monthly(tmp_path / "m.nc", years=[2020])
    raw.isel(time=slice(0, 6)).to_netcdf(path)
    with pytest.raises(ValueError, match="holds no complete year"):
        era5.features(era5.open(path))


# -- as the CDS delivers it ------------------------------------------------------------------


def test_new_layout_pair_and_zip(tmp_path, monkeypatch):
    """The new CDS layout splits step types into files, often zipped: the pair and the
    zip give what one file gives."""
    import zipfile

    monkeypatch.setenv("ENTROPICE_CACHE", str(tmp_path / "cache"))
    raw = cds_hourly(tmp_path / "all.nc", start="2020-10-01", end="2021-09-30 18:00")
    instant = tmp_path / "data_stream-oper_stepType-instant.nc"
    accum = tmp_path / "data_stream-oper_stepType-accum.nc"
    raw[["t2m"]].to_netcdf(instant)
    raw[["tp", "sf"]].to_netcdf(accum)
    with zipfile.ZipFile(tmp_path / "era5.zip", "w") as z:
        z.write(instant, instant.name)
        z.write(accum, accum.name)
    one = era5.features(era5.open(tmp_path / "all.nc"))
    for paths in ([instant, accum], tmp_path / "era5.zip"):
        xr.testing.assert_allclose(era5.features(era5.open(paths)), one)
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match="ERA5 zip .*bad.zip is not a readable zip"):
        era5.open(tmp_path / "bad.zip")
    # a download cut short or damaged: the CRC fails part way; nothing half-extracted stays
    data = bytearray((tmp_path / "era5.zip").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "damaged.zip").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged.zip is not a readable zip"):
        era5.open(tmp_path / "damaged.zip")
    assert not [p for p in (tmp_path / "cache").rglob("*") if "damaged" in str(p)]


def test_temperature_without_precipitation(tmp_path, caplog):
    raw = cds_monthly(tmp_path / "m.nc", years=[2019, 2020])
    raw[["t2m"]].to_netcdf(tmp_path / "t2m.nc")
    with caplog.at_level("WARNING", logger="entropice"):
        f = era5.features(era5.open(tmp_path / "t2m.nc"))
    assert "t2m.nc has no precipitation" in caplog.text and "era5_tp_jja_sum" in caplog.text
    assert "era5_tdd_sum" in f and "era5_tp_annual_sum" not in f


def test_samples_that_are_not_means_are_refused(tmp_path):
    times = pd.date_range("2019-10-01", "2020-12-01", freq="MS")
    by_hour = times.repeat(24) + pd.to_timedelta(np.tile(np.arange(24), len(times)), "h")
    base = cds_monthly(tmp_path / "m.nc", years=[2020])
    lat, lon = base.latitude.values, base.longitude.values
    for name, t, expect in (("by_hour.nc", by_hour, "monthly means by hour of day"),
                            ("noon.nc", pd.date_range("2019-10-01 12:00", periods=500, freq="D"),
                             "one sample a day \\(at 12:00\\), not daily means")):
        shape = (len(t), len(lat), len(lon))
        xr.Dataset({"t2m": (("time", "latitude", "longitude"), np.full(shape, 260.0, "f4"),
                            {"units": "K"}),
                    "tp": (("time", "latitude", "longitude"), np.full(shape, 1e-4, "f4"),
                           {"units": "m"})},
                   coords={"time": t, "latitude": lat, "longitude": lon}).to_netcdf(
            tmp_path / name)
        with pytest.raises(ValueError, match=f"{name} holds {expect}"):
            era5.open(tmp_path / name)


def _small(path, times, tp, **t2m_attrs):
    lat, lon = np.array([72.0, 70.0]), np.array([0.0, 10.0, 20.0])
    shape = (len(times), len(lat), len(lon))
    xr.Dataset({"t2m": (("time", "latitude", "longitude"),
                        temperature_k(times, lat)[:, :, :3].astype("f4"),
                        {"units": "K", **t2m_attrs}),
                "tp": (("time", "latitude", "longitude"), np.full(shape, tp, "f4"),
                       {"units": "m"})},
               coords={"time": times, "latitude": lat, "longitude": lon}).to_netcdf(path)
    return path


def test_precipitation_of_every_time_step(tmp_path):
    """1-hourly and 6-hourly downloads (each step the hour's accumulation) and the CDS's
    daily statistics (the mean hourly accumulation) give the same precipitation."""
    hourly = pd.date_range("2019-10-01", "2020-09-30 23:00", freq="h")
    got = {}
    for name, times in (("1h", hourly), ("6h", hourly[::6]),
                        ("daily", pd.date_range("2019-10-01", "2020-09-30", freq="D"))):
        f = era5.features(era5.open(_small(tmp_path / f"{name}.nc", times, 2e-4)))
        got[name] = float(f.era5_tp_annual_sum.mean())
    assert got == pytest.approx({"1h": 366 * 24 * 0.2, "6h": 366 * 24 * 0.2,
                                 "daily": 366 * 24 * 0.2}, rel=1e-4)


def test_sampling_edge_cases(tmp_path):
    """One day of hourly data on the 1st is hourly data, not monthly means by hour;
    daily means stamped at noon are accepted when they say so (cell_methods) or the
    config does; units for a variable that does not exist are an error."""
    one_day = pd.date_range("2020-07-01", periods=24, freq="h")
    assert era5.open(_small(tmp_path / "day.nc", one_day, 1e-4)).attrs["frequency"] == "hourly"
    noon = pd.date_range("2019-10-01 12:00", periods=400, freq="D")
    path = _small(tmp_path / "noon.nc", noon, 1e-4, cell_methods="time: mean")
    assert era5.open(path).attrs["frequency"] == "daily"
    plain = _small(tmp_path / "noon_plain.nc", noon, 1e-4)
    with pytest.raises(ValueError, match="daily_means = true"):
        era5.open(plain)
    assert era5.open(plain, daily_means=True).attrs["frequency"] == "daily"
    with pytest.raises(ValueError, match="units given for 't2n', which is no ERA5 variable"):
        era5.open(path, units={"t2n": "degC"})


def test_impossible_values_name_the_cause(tmp_path):
    raw = cds_monthly(tmp_path / "m.nc", years=[2019, 2020])
    celsius = raw.assign(t2m=raw.t2m - 273.15)  # degC, still labelled K
    celsius.to_netcdf(tmp_path / "celsius.nc")
    with pytest.raises(ValueError, match=r"celsius.nc: t2m ranges -2\d\d.* outside the physical "
                                         r"range -90 to 60; likely cause: degC labelled as K"):
        era5.features(era5.open(tmp_path / "celsius.nc"))
    fixed = era5.features(era5.open(tmp_path / "celsius.nc", units={"t2m": "degC"}))
    xr.testing.assert_allclose(fixed, era5.features(era5.open(tmp_path / "m.nc")), rtol=1e-5)
    raw.assign(tp=raw.tp * 1000).to_netcdf(tmp_path / "mm.nc")  # mm, labelled m
    with pytest.raises(ValueError, match="mm.nc: tp ranges 2000 to 2000 mm per day.*mm labelled"):
        era5.features(era5.open(tmp_path / "mm.nc"))
    with pytest.raises(ValueError, match="t2m has units 'F'; expected one of K"):
        era5.open(tmp_path / "m.nc", units={"t2m": "F"})


def test_failed_and_good_opens_alternate_without_a_crash(tmp_path):
    """Opening a broken file, a good one, a file lacking a variable and a good one
    again, in one process, never crashes it (the netCDF4 C library did)."""
    import subprocess
    import sys
    import textwrap

    raw = cds_monthly(tmp_path / "good.nc", years=[2020])
    raw[["tp"]].to_netcdf(tmp_path / "no_t2m.nc")
    (tmp_path / "trunc.nc").write_bytes((tmp_path / "good.nc").read_bytes()[:4000])
    code = textwrap.dedent(f"""
        from entropice.sources import era5
        for i in range(5):
            for name in ("trunc.nc", "good.nc", "no_t2m.nc", "good.nc"):
                try:
                    era5.open({str(tmp_path)!r} + "/" + name).t2m.mean().compute()
                    print("ok", name)
                except ValueError as err:
                    print("error", name)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split().count("ok") == 10 and out.stdout.split().count("error") == 10


# -- GRIB, converted in a child process -------------------------------------------------------


def write_grib(path, ds):
    """ERA5 fields as GRIB 1 messages, one per variable and step (as the CDS sends)."""
    eccodes = pytest.importorskip("eccodes", reason="GRIB needs the grib extra (cfgrib)")
    lat, lon = ds.latitude.values, ds.longitude.values
    params = {"t2m": 167, "tp": 228}
    with open(path, "wb") as f:
        for t in range(ds.sizes["time"]):
            when = pd.Timestamp(ds.time.values[t])
            for name, param in params.items():
                h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib1")
                for k, v in {"Ni": len(lon), "Nj": len(lat),
                             "latitudeOfFirstGridPointInDegrees": lat[0],
                             "latitudeOfLastGridPointInDegrees": lat[-1],
                             "longitudeOfFirstGridPointInDegrees": lon[0],
                             "longitudeOfLastGridPointInDegrees": lon[-1],
                             "iDirectionIncrementInDegrees": lon[1] - lon[0],
                             "jDirectionIncrementInDegrees": lat[0] - lat[1],
                             "paramId": param, "dataDate": int(when.strftime("%Y%m%d")),
                             "dataTime": when.hour * 100}.items():
                    eccodes.codes_set(h, k, v)
                eccodes.codes_set_values(h, ds[name].values[t].astype(np.float64).ravel())
                eccodes.codes_write(h, f)
                eccodes.codes_release(h)


def test_grib_reads_like_netcdf(tmp_path, monkeypatch):
    monkeypatch.setenv("ENTROPICE_CACHE", str(tmp_path / "cache"))
    raw = cds_monthly(tmp_path / "m.nc", years=[2019, 2020])
    write_grib(tmp_path / "m.grib", raw)
    from_grib = era5.open(tmp_path / "m.grib")
    assert from_grib.attrs["frequency"] == "monthly"
    xr.testing.assert_allclose(era5.features(from_grib), era5.features(era5.open(
        tmp_path / "m.nc")), rtol=1e-4)
    # one time step: no "the new name 'time' conflicts"
    write_grib(tmp_path / "one.grib", raw.isel(time=[0]))
    one = era5.open(tmp_path / "one.grib")
    assert one.sizes["time"] == 1 and set(one.data_vars) == {"t2m", "tp"}
    (tmp_path / "broken.grib").write_bytes(b"GRIB nonsense")
    with pytest.raises(ValueError, match="cannot read ERA5 GRIB file .*broken.grib"):
        era5.open(tmp_path / "broken.grib")


def test_time_quantiles_skip_missing_days_only_where_there_are_some():
    """The vectorised quantile equals xarray's NaN-skipping one, gaps and all."""
    from entropice.sources.era5 import _time_quantile

    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 5, 6))
    a[3, 1, 2] = np.nan  # a missing day
    a[:, 0, 0] = np.nan  # a point with no data
    t = xr.DataArray(a, dims=("time", "latitude", "longitude"))
    for q, da in ((0.1, t), (0.9, t.transpose("latitude", "time", "longitude"))):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = t.quantile(q, dim="time").drop_vars("quantile")
        xr.testing.assert_allclose(_time_quantile(da, q), ref)
