"""The ERA5 reader: CDS NetCDF (both layouts) and the analysis-ready Zarr layout,
written here in those formats; features checked against numpy on the same values."""

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
    tp = np.full(t2m.shape, 0.0005, dtype=np.float32)  # 0.5 mm per 6 h step
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
    np.testing.assert_allclose(f.era5_tp_annual_sum.sel(year=2021), 365 * 4 * 0.5, rtol=1e-5)
    np.testing.assert_allclose(f.era5_sf_annual_sum.sel(year=2021), 365 * 4 * 0.25, rtol=1e-5)
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
