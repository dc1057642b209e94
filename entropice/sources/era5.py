"""ERA5 single-level climate: per cell and (Arctic) year climate features.

``open`` reads ERA5 as the Copernicus Climate Data Store delivers it (NetCDF or GRIB;
the older ``time`` layout and the newer ``valid_time`` one, hourly or monthly means)
or the analysis-ready ERA5 Zarr layout (``2m_temperature``, ``total_precipitation``,
...), and brings it to one form: short names ``t2m`` (K), ``tp`` and ``sf`` (m of
water), dimensions ``time``, ``latitude``, ``longitude``. ``features`` computes the
yearly features on the ERA5 grid; ``to_cells`` puts them into cells.

Years are Arctic-aligned by default: year Y runs from 1 October of Y-1 to 30 September
of Y (``year_start_month``; 1 gives calendar years).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..grids import DEFAULT_MIN_LAT, Grid

log = logging.getLogger("entropice")

NAMES = {
    "t2m": "t2m", "2t": "t2m", "2m_temperature": "t2m",
    "tp": "tp", "total_precipitation": "tp",
    "sf": "sf", "snowfall": "sf",
}
REQUIRED = ("t2m",)
GRIB = (".grib", ".grb", ".grib2")
TO_STANDARD = {  # variable: {units: (scale, offset)} to K and m of water
    "t2m": {"K": (1.0, 0.0), "kelvin": (1.0, 0.0), "degC": (1.0, 273.15),
            "C": (1.0, 273.15), "°C": (1.0, 273.15), "celsius": (1.0, 273.15)},
    "tp": {"m": (1.0, 0.0), "mm": (1e-3, 0.0), "kg m-2": (1e-3, 0.0), "kg m**-2": (1e-3, 0.0)},
    "sf": {"m": (1.0, 0.0), "m of water equivalent": (1.0, 0.0), "mm": (1e-3, 0.0),
           "kg m-2": (1e-3, 0.0), "kg m**-2": (1e-3, 0.0)},
}
PLAUSIBLE = {"t2m": (-90.0, 60.0, "degC"), "tp": (0.0, 1000.0, "mm per day")}
"""Physical ranges (after conversion) outside which a stage stops."""
SEASONS = {"djf": (12, 1, 2), "mam": (3, 4, 5), "jja": (6, 7, 8), "son": (9, 10, 11)}


def _label(paths):
    paths = [str(p) for p in paths]
    return paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)"


def open(paths, *, min_lat: float = DEFAULT_MIN_LAT, engine=None, units=None,  # noqa: A001
         daily_means=None):
    """Read ERA5 files (NetCDF, GRIB) or an ERA5 Zarr store into one standard form.

    Parameters
    ----------
    paths : str, Path or list of them
        NetCDF (``.nc``) or GRIB (``.grib``, ``.grb``; needs ``cfgrib``) files of the
        CDS, the CDS's zip of them (new layout: one file per step type, such as
        ``data_stream-oper_stepType-instant.nc`` and ``...-accum.nc``), or one Zarr
        store (a local path or an fsspec URL such as ``gs://...``).
    min_lat : float, default 50
        Latitudes south of ``min_lat`` minus one degree are dropped (lazily).
    units : dict, optional
        The units of variables whose files say otherwise (mislabelled files), such as
        ``{"t2m": "degC", "tp": "mm"}``; by default each variable's ``units``.
    daily_means : bool, optional
        Whether one step a day holds daily means (as the CDS's daily statistics do),
        not samples. By default: steps at 00:00, or a ``cell_methods`` of "time: mean",
        are means; other once-a-day data are refused.

    Precipitation and snowfall of sub-daily and daily steps are read as ERA5 gives
    them: each hourly step the hour's accumulation, so a day is the mean of its steps
    times 24 (right for 1-, 3- or 6-hourly downloads), and a daily-statistics step the
    mean hourly accumulation; monthly means hold the mean daily accumulation.

    Returns
    -------
    xarray.Dataset
        ``t2m`` (K), ``tp`` (m) and, if present, ``sf`` (m of water) on ``time``,
        ``latitude`` (descending), ``longitude`` (-180..180); the time step in
        ``attrs["frequency"]`` (hourly, daily or monthly).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [q for p in paths for q in _unzipped(p)]
    if not paths:
        raise ValueError("no ERA5 files given.")
    label = _label(paths)
    first = str(paths[0])
    is_zarr = first.rstrip("/").endswith(".zarr") or (Path(first) / "zarr.json").exists() or (
        Path(first) / ".zmetadata").exists()
    if not is_zarr:
        for p in paths:
            if "://" not in str(p) and not Path(p).exists():
                raise ValueError(f"ERA5 file {p} does not exist.")
        paths = [_grib_as_netcdf(p) if str(p).lower().endswith(GRIB) else p for p in paths]
    try:
        if is_zarr:  # analysis-ready stores are consolidated; local ones may not be
            from . import remote

            store = remote.zarr_store(first)
            try:
                ds = xr.open_zarr(store, consolidated=True)
            except Exception:  # noqa: BLE001
                ds = xr.open_zarr(store, consolidated=False)
        else:
            engine = engine or _netcdf_engine(paths)
            ds = xr.open_mfdataset([str(p) for p in paths], combine="by_coords", chunks={},
                                   compat="no_conflicts", coords="minimal",
                                   **({"engine": engine} if engine else {}))
    except Exception as err:  # noqa: BLE001 - the backends raise many types
        raise ValueError(f"cannot read ERA5 data {label}: {err}. Expected readable NetCDF "
                         "files or a Zarr store; a file may be truncated or damaged: download "
                         "it again.") from None
    return _standardise(ds, label, min_lat, units or {}, daily_means)


def _cache_dir():
    from .remote import cache_dir

    return cache_dir("era5")


def _grib_as_netcdf(path):
    """A GRIB file converted to NetCDF-4 in a child process (ecCodes never in this one),
    once: the result is cached by the file's fingerprint."""
    import importlib.util
    import subprocess
    import sys

    from ..cube import fingerprint

    if importlib.util.find_spec("cfgrib") is None:
        raise ValueError(f"reading GRIB ({path}) needs cfgrib: pip install cfgrib, or ask "
                         "the CDS for NetCDF.")
    path = Path(path)
    out = _cache_dir() / f"{path.stem}-{fingerprint(path)}.nc"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        run = subprocess.run([sys.executable, "-m", "entropice.sources._grib", str(path),
                              str(out)], capture_output=True, text=True)
        if run.returncode != 0:
            why = (run.stderr.strip().splitlines() or [f"exit code {run.returncode}"])[-1]
            raise ValueError(f"cannot read ERA5 GRIB file {path}: {why}")
    return str(out)


def _unzipped(path):
    """The NetCDF files of a CDS zip (extracted once into the cache), or the path."""
    if "://" in str(path) or not str(path).lower().endswith(".zip"):
        return [path]
    import zipfile

    from ..cube import fingerprint
    from .remote import replace_atomically

    path = Path(path)
    if not path.exists():
        raise ValueError(f"ERA5 file {path} does not exist.")
    target = _cache_dir() / f"{path.stem}-{fingerprint(path)}"
    try:
        with zipfile.ZipFile(path) as z:
            members = [m for m in z.namelist() if m.lower().endswith((".nc",) + GRIB)]
            if not members:
                raise ValueError(f"ERA5 zip {path} holds no NetCDF or GRIB file (it holds "
                                 f"{', '.join(z.namelist()[:5]) or 'nothing'}).")
            if not all((target / m).exists() for m in members):
                replace_atomically(target, lambda tmp: z.extractall(tmp, members))
    except (zipfile.BadZipFile, OSError) as err:  # CRC errors are BadZipFile too
        raise ValueError(f"ERA5 zip {path} is not a readable zip: {err}") from None
    return sorted(str(target / m) for m in members)


def _netcdf_engine(paths):
    """h5netcdf for NetCDF-4 files, scipy for NetCDF-3 ones: never the netCDF4 C
    library, which crashed the process on repeated opens after a failed one."""
    if any("://" in str(p) for p in paths):
        return None
    kinds = {}
    for p in paths:
        with Path(p).open("rb") as f:
            magic = f.read(4)
        kinds[p] = "h5netcdf" if magic == b"\x89HDF" else "scipy" if magic[:3] == b"CDF" \
            else "zip" if magic[:2] == b"PK" else None
    bad = next((p for p, k in kinds.items() if k in (None, "zip")), None)
    if bad is not None:
        hint = (" It is a zip archive (the CDS zips files): unzip it and give the .nc files."
                if kinds[bad] == "zip" else "")
        raise ValueError(f"ERA5 file {bad} is not NetCDF (nor GRIB by its name): its first "
                         f"bytes are no NetCDF signature.{hint}")
    if len(set(kinds.values())) > 1:
        raise ValueError(f"ERA5 files {_label(paths)} mix NetCDF-3 and NetCDF-4 files.")
    return kinds[paths[0]]


def _standardise(ds, label, min_lat, units, daily_means=None):
    if "valid_time" in ds.dims or "valid_time" in ds.coords:
        ds = ds.rename({"valid_time": "time"}) if "time" not in ds.dims else ds
    rename = {v: NAMES[v] for v in ds.data_vars if v in NAMES}
    ds = ds.rename(rename)
    for dim, alts in (("latitude", ("lat",)), ("longitude", ("lon",))):
        for alt in alts:
            if alt in ds.dims and dim not in ds.dims:
                ds = ds.rename({alt: dim})
    if "expver" in ds.dims:  # ERA5 and ERA5T side by side: take what is there
        ds = ds.bfill("expver").isel(expver=0)
    for extra in ("number", "expver", "step", "surface"):
        if extra in ds.coords and extra not in ds.dims:
            ds = ds.drop_vars(extra)
    has = (f"(it has the dimensions {', '.join(map(str, ds.dims)) or 'none'} and the "
           f"variables {', '.join(map(str, ds.data_vars)) or 'none'})")
    missing_dims = [d for d in ("time", "latitude", "longitude") if d not in ds.dims]
    if missing_dims:
        raise ValueError(f"ERA5 data {label} lacks the dimension(s) {', '.join(missing_dims)} "
                         f"{has}.")
    missing = [v for v in REQUIRED if v not in ds.data_vars]
    if missing:
        raise ValueError(f"ERA5 data {label} lacks the variable(s) {', '.join(missing)} "
                         f"{has}.")
    unknown = sorted(set(units) - set(NAMES))
    if unknown:
        raise ValueError(f"ERA5 data {label}: units given for {unknown[0]!r}, which is no "
                         f"ERA5 variable read here; [era5] units takes "
                         f"{', '.join(sorted(TO_STANDARD))} (or their long names).")
    units = {NAMES[k]: v for k, v in units.items()}
    if daily_means is None:
        daily_means = "mean" in str(ds.t2m.attrs.get("cell_methods", ""))
    ds = ds[[v for v in ("t2m", "tp", "sf") if v in ds.data_vars]]
    for v in list(ds.data_vars):
        known = TO_STANDARD[v]
        unit = units.get(v, ds[v].attrs.get("units", next(iter(known))))  # none: ERA5's
        if unit not in known:
            raise ValueError(f"ERA5 data {label}: {v} has units {unit!r}; expected one of "
                             f"{', '.join(known)} (a mislabelled file: set [era5] units).")
        scale, offset = known[unit]
        if (scale, offset) != (1.0, 0.0):
            ds[v] = ds[v] * scale + offset
        ds[v].attrs["units"] = "K" if v == "t2m" else "m"
    lon = ds.longitude.values
    if lon.max() > 180:
        ds = ds.assign_coords(longitude=((ds.longitude + 180) % 360) - 180)
    ds = ds.sortby("longitude").sortby("latitude", ascending=False)
    ds = ds.sel(latitude=slice(90, min_lat - 1.0))
    if ds.sizes["latitude"] == 0:
        raise ValueError(f"ERA5 data {label} has no latitude north of {min_lat - 1} degrees.")
    times = pd.DatetimeIndex(ds.time.values)
    step = np.median(np.diff(times.values)) / np.timedelta64(1, "h") if len(times) > 1 else 24
    ds.attrs["frequency"] = "hourly" if step < 23 else "daily" if step < 24 * 27 else "monthly"
    _check_sampling(times, label, daily_means)
    ds.attrs["source_files"] = label
    return ds


def _check_sampling(times, label, daily_means=False):
    """Refuse time steps that are not the means the features assume."""
    if len(times) < 2:
        return
    month = times.to_period("M")
    n_months = len(np.unique(month))
    if 1 < n_months < len(times) and (times.day == 1).all():
        raise ValueError(f"ERA5 data {label} holds monthly means by hour of day ({len(times)} "
                         f"steps on the first days of {len(np.unique(month))} months): ask the "
                         "CDS for 'monthly_averaged_reanalysis', or for hourly data.")
    step = np.median(np.diff(times.values)) / np.timedelta64(1, "h")
    if 23 <= step <= 25 and (times.hour != 0).all() and not daily_means:
        raise ValueError(f"ERA5 data {label} holds one sample a day (at {times.hour[0]:02d}:00), "
                         "not daily means: ask the CDS for every hour (or every 6 h), or for "
                         "the daily statistics (daily mean); if they are daily means, say so "
                         "in the config ([era5] daily_means = true).")


def check_plausible(ds, label=""):
    """Stop on values outside physical ranges: 2 m temperature (after conversion to
    degC) outside -90..60, precipitation negative or above 1000 mm a day."""
    checks = {"t2m": ds.t2m_mean}
    if "tp" in ds:
        checks["tp"] = ds.tp / ds.days
    for name, values in checks.items():
        lo, hi, unit = PLAUSIBLE[name]
        vmin, vmax = float(values.min()), float(values.max())
        tol = 1e-3 if name == "tp" else 0.0  # ERA5's accumulations dip below 0 by rounding
        if vmin < lo - tol or vmax > hi:
            cause = {"t2m": "degC labelled as K, or K labelled as degC",
                     "tp": "mm labelled as m, or a sign flipped"}[name]
            raise ValueError(
                f"ERA5 data {label}: {name} ranges {vmin:.4g} to {vmax:.4g} {unit}, outside "
                f"the physical range {lo:g} to {hi:g}; likely cause: {cause}. If the file's "
                f"units are wrong, set them in [era5] units (e.g. {{{name} = "
                f"\"{'degC' if name == 't2m' else 'mm'}\"}}).")


# -- features ------------------------------------------------------------------------------


def arctic_year(times, year_start_month=10):
    """The (Arctic) year each time belongs to: Y from month ``year_start_month`` of Y-1."""
    t = pd.DatetimeIndex(times)
    return np.where(t.month >= year_start_month, t.year + 1, t.year) if year_start_month > 1 \
        else t.year.values


def to_daily(ds):
    """Daily values: mean/min/max 2 m temperature (degC), precipitation and snowfall sums
    (mm). Monthly data stays monthly, with totals per month."""
    freq = ds.attrs.get("frequency", "hourly")
    t = ds.t2m - 273.15
    out = xr.Dataset()
    if freq == "monthly":
        days = xr.DataArray(pd.DatetimeIndex(ds.time.values).days_in_month, dims="time",
                            coords={"time": ds.time})
        out["t2m_mean"] = t
        out["days"] = days
        # ERA5 monthly means hold the mean daily accumulation (m per day)
        for v in ("tp", "sf"):
            if v in ds:
                out[v] = ds[v] * 1000.0 * days
    elif freq == "daily":  # the CDS's daily statistics: the mean hourly accumulation
        out["t2m_mean"] = t
        out["days"] = xr.ones_like(ds.time, dtype=float)
        for v in ("tp", "sf"):
            if v in ds:
                out[v] = ds[v] * 1000.0 * 24.0
    else:  # hourly: reduce the steps of each day (numpy reduceat, the steps sorted)
        ds = ds.load()
        day = ds.time.values.astype("datetime64[D]")
        starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
        coords = {"time": day[starts].astype("datetime64[ns]"),
                  "latitude": ds.latitude, "longitude": ds.longitude}
        dims = ("time", "latitude", "longitude")
        tv = t.transpose(*dims).values
        counts = np.diff(np.r_[starts, len(day)])[:, None, None]
        out["t2m_mean"] = (dims, np.add.reduceat(tv, starts, axis=0) / counts)
        out["t2m_min"] = (dims, np.minimum.reduceat(tv, starts, axis=0))
        out["t2m_max"] = (dims, np.maximum.reduceat(tv, starts, axis=0))
        for v in ("tp", "sf"):  # each step the hour's accumulation: a day is 24 mean steps
            if v in ds:
                out[v] = (dims, np.add.reduceat(ds[v].transpose(*dims).values * 1000.0, starts,
                                                axis=0) / counts * 24.0)
        out = out.assign_coords(coords)
        out["days"] = ("time", np.ones(len(starts)))
    out.attrs["frequency"] = "monthly" if freq == "monthly" else "daily"
    return out


def _onsets(t, pos, year_days, monthly):
    """Thaw onset and freeze-up, in days from the year's start, and the season between.

    Thaw onset: where the temperature (a 7-day running mean of daily means, or the
    monthly means placed mid-month) first crosses 0 degC upwards within the year;
    freeze-up: where it next crosses downwards, looked for up to three months past
    the year's end. Both are interpolated between the steps around the crossing. Where
    the temperature stays above 0 all year the season is the whole year; where it
    never rises above 0 there is no onset (NaN) and the season is 0 days.
    """
    s = t if monthly else t.rolling(time=7, center=True, min_periods=4).mean()
    s = s.transpose("time", ...).values
    above = s > 0
    thaw = np.full(s.shape[1:], np.nan)
    freeze = np.full(s.shape[1:], np.nan)
    for i in range(1, s.shape[0]):
        with np.errstate(divide="ignore", invalid="ignore"):  # used only where s changes sign
            frac = s[i - 1] / (s[i - 1] - s[i])
        at = pos[i - 1] + frac * (pos[i] - pos[i - 1])
        up = ~above[i - 1] & above[i] & np.isnan(thaw) & (pos[i] <= year_days)
        thaw[up] = at[up]
        down = above[i - 1] & ~above[i] & np.isnan(freeze) & ~np.isnan(thaw)
        freeze[down] = at[down]
    within = pos < year_days
    always = above[within].all(axis=0)
    never = ~above[within].any(axis=0)
    thaw[always] = 0.0
    freeze[always] = year_days
    season = freeze - thaw
    season[never] = 0.0
    return thaw, freeze, season


def _window_mean(t, pos, centre, half=14.0):
    """Mean of the piecewise-linear temperature series over [centre - half, centre + half]
    (daily steps), per pixel; NaN where ``centre`` is NaN."""
    s = t.transpose("time", ...).values
    flat = s.reshape(s.shape[0], -1)
    c = centre.ravel()
    total = np.zeros(c.shape)
    offsets = np.arange(-half, half + 1.0)
    cols = np.arange(flat.shape[1])
    for d in offsets:
        q = np.clip(c + d, pos[0], pos[-1])
        j = np.clip(np.searchsorted(pos, q, side="right") - 1, 0, len(pos) - 2)
        f = np.where(np.isfinite(q), (q - pos[j]) / (pos[j + 1] - pos[j]), 0.0)
        jj = np.where(np.isfinite(q), j, 0)
        total += (1 - f) * flat[jj, cols] + f * flat[jj + 1, cols]
    out = total / len(offsets)
    return np.where(np.isfinite(c), out, np.nan).reshape(centre.shape)


FEATURES = {
    "era5_t2m_annual_mean": ("degC", "annual mean 2 m temperature"),
    "era5_t2m_djf_mean": ("degC", "winter (DJF) mean 2 m temperature"),
    "era5_t2m_mam_mean": ("degC", "spring (MAM) mean 2 m temperature"),
    "era5_t2m_jja_mean": ("degC", "summer (JJA) mean 2 m temperature"),
    "era5_t2m_son_mean": ("degC", "autumn (SON) mean 2 m temperature"),
    "era5_tdd_sum": ("degC day", "thawing degree days"),
    "era5_fdd_sum": ("degC day", "freezing degree days"),
    "era5_tp_annual_sum": ("mm", "annual total precipitation"),
    "era5_tp_jja_sum": ("mm", "summer (JJA) total precipitation"),
    "era5_sf_annual_sum": ("mm", "annual snowfall (water equivalent)"),
    "era5_t2m_p10": ("degC", "10th percentile of daily mean 2 m temperature"),
    "era5_t2m_p90": ("degC", "90th percentile of daily mean 2 m temperature"),
    "era5_thaw_onset_doy": ("day", "thaw onset, day of the year (0 = first day)"),
    "era5_freeze_onset_doy": ("day", "freeze-up onset, day of the year (0 = first day)"),
    "era5_thaw_season_days": ("day", "days from thaw onset to freeze-up"),
    "era5_t2m_thaw_shoulder_mean": ("degC", "mean 2 m temperature in the four weeks "
                                            "around thaw onset"),
    "era5_t2m_freeze_shoulder_mean": ("degC", "mean 2 m temperature in the four weeks "
                                              "around freeze-up"),
    "era5_t2m_trend": ("degC decade-1", "linear trend of the annual mean 2 m temperature "
                                         "over the trend window ending with the year"),
}


def _time_quantile(t, q):
    """Quantile over time: vectorised where no day is missing (numpy's NaN-skipping
    quantile goes point by point, minutes on a fine grid), NaN-skipping elsewhere."""
    out = t.quantile(q, dim="time", skipna=False).drop_vars("quantile")
    gaps = (out.isnull() & t.notnull().any("time")).values
    if gaps.any():
        values = out.values.copy()
        values[gaps] = np.nanquantile(t.transpose("time", *out.dims).values[:, gaps], q,
                                      axis=0)
        out = out.copy(data=values)
    return out


def features(ds, *, years=None, year_start_month=10, trend_window=10) -> xr.Dataset:
    """Yearly climate features on the ERA5 grid (dimensions year, latitude, longitude).

    From monthly data the degree days, percentiles and onsets use monthly means (the
    degree days then miss the days on the other side of 0 degC within a month).
    Only complete years (12 months of data) get features.
    """
    monthly = ds.attrs.get("frequency") == "monthly"
    if "tp" not in ds:
        log.warning("ERA5 data %s has no precipitation (tp): the features "
                    "era5_tp_annual_sum and era5_tp_jja_sum are left out",
                    ds.attrs.get("source_files", ""))
    label = arctic_year(ds.time.values, year_start_month)
    months = pd.DatetimeIndex(ds.time.values).month
    out = {}
    all_years = []
    for y in np.unique(label):
        sel = label == y
        if len(np.unique(months[sel])) < 12:
            continue
        all_years.append(y)
        # one year at a time, with three months of the next for the freeze-up
        idx = np.flatnonzero(sel)
        nxt = np.flatnonzero(label == y + 1)
        end = ds.time.values[idx[-1]] + np.timedelta64(92, "D")
        nxt = nxt[ds.time.values[nxt] <= end]
        try:  # the pixels are read here (lazily opened): a damaged file fails here
            ext = to_daily(ds.isel(time=np.concatenate([idx, nxt]))).load()
        except (OSError, RuntimeError, ValueError) as err:  # h5py, netCDF4, zarr ...
            raise ValueError(f"cannot read ERA5 data {ds.attrs.get('source_files', '')} of "
                             f"the year {y}: {err}. Expected readable NetCDF (or GRIB) files; "
                             "one may be truncated or damaged: download it again.") from None
        check_plausible(ext, ds.attrs.get("source_files", ""))
        in_year = arctic_year(ext.time.values, year_start_month) == y
        d = ext.isel(time=np.flatnonzero(in_year))
        m = pd.DatetimeIndex(d.time.values).month
        w = d.days
        t = d.t2m_mean
        rec = {}
        rec["era5_t2m_annual_mean"] = (t * w).sum("time") / w.sum()
        for name, season in SEASONS.items():
            k = np.isin(m, season)
            ws = w.isel(time=k)
            rec[f"era5_t2m_{name}_mean"] = (t.isel(time=k) * ws).sum("time") / ws.sum()
        rec["era5_tdd_sum"] = (t.clip(min=0) * w).sum("time")
        rec["era5_fdd_sum"] = ((-t).clip(min=0) * w).sum("time")
        if "tp" in d:
            rec["era5_tp_annual_sum"] = d.tp.sum("time")
            rec["era5_tp_jja_sum"] = d.tp.isel(time=np.isin(m, SEASONS["jja"])).sum("time")
        if "sf" in d:
            rec["era5_sf_annual_sum"] = d.sf.sum("time")
        rec["era5_t2m_p10"] = _time_quantile(t, 0.1)
        rec["era5_t2m_p90"] = _time_quantile(t, 0.9)
        start = np.concatenate([[0.0], np.cumsum(ext.days.values)[:-1]])
        pos = start + (ext.days.values / 2.0 if monthly else 0.0)
        thaw, freeze, season = _onsets(ext.t2m_mean, pos, float(w.sum()), monthly)
        thaw_shoulder = _window_mean(ext.t2m_mean, pos, thaw)
        freeze_shoulder = _window_mean(ext.t2m_mean, pos, freeze)
        dims = ("latitude", "longitude")
        coords = dict(latitude=t.latitude, longitude=t.longitude)
        rec["era5_thaw_onset_doy"] = xr.DataArray(thaw, dims=dims, coords=coords)
        rec["era5_freeze_onset_doy"] = xr.DataArray(freeze, dims=dims, coords=coords)
        rec["era5_thaw_season_days"] = xr.DataArray(season, dims=dims, coords=coords)
        rec["era5_t2m_thaw_shoulder_mean"] = xr.DataArray(thaw_shoulder, dims=dims,
                                                          coords=coords)
        rec["era5_t2m_freeze_shoulder_mean"] = xr.DataArray(freeze_shoulder, dims=dims,
                                                            coords=coords)
        for k, v in rec.items():
            out.setdefault(k, []).append(v)
    if not all_years:
        raise ValueError(f"ERA5 data {ds.attrs.get('source_files', '')} holds no complete "
                         f"year (12 months from month {year_start_month}).")
    year_coord = xr.DataArray(np.asarray(all_years, dtype=np.int64), dims="year")
    fds = xr.Dataset({k: xr.concat(v, dim=year_coord) for k, v in out.items()})
    fds = fds.assign_coords(year=year_coord)
    fds["era5_t2m_trend"] = _trend(fds.era5_t2m_annual_mean, trend_window)
    if years is not None:
        fds = fds.sel(year=[y for y in years if y in fds.year.values])
    for name, var in fds.data_vars.items():
        units, long_name = FEATURES[name]
        var.attrs.update(units=units, long_name=long_name, source="era5")
    fds.attrs["frequency"] = ds.attrs.get("frequency")
    return fds


def _trend(annual, window):
    """Least-squares slope (per decade) over the ``window`` years ending with each year."""
    y = annual.year.values
    vals = annual.values
    out = np.full(vals.shape, np.nan)
    for i, year in enumerate(y):
        k = (y > year - window) & (y <= year)
        if k.sum() < 3:
            continue
        x = y[k] - y[k].mean()
        out[i] = np.tensordot(x, vals[k] - vals[k].mean(axis=0), axes=(0, 0)) / (x @ x) * 10
    return annual.copy(data=out)


def to_cells(ds, grid: Grid, *, years=None, year_start_month=10, trend_window=10,
             min_lat: float = DEFAULT_MIN_LAT) -> xr.Dataset:
    """ERA5 features per cell and year on the whole domain.

    Features are computed on the ERA5 grid, then averaged over each cell's pixels
    (area-weighted), or sampled bilinearly at the cell centre where the cells are
    smaller than ERA5's pixels.

    Returns
    -------
    xarray.Dataset
        Dimensions (year, cells), the variables of ``FEATURES``.
    """
    fds = features(ds, years=years, year_start_month=year_start_month,
                   trend_window=trend_window)
    return features_to_cells(fds, grid, min_lat=min_lat)


def features_to_cells(fds, grid: Grid, *, min_lat: float = DEFAULT_MIN_LAT,
                      store=None) -> xr.Dataset:
    """Features from :func:`features` into cells, one year at a time (each year's cells
    written to ``store``, by default in memory, see :func:`entropice.parts.concat_parts`);
    the result is lazy."""
    from ..aggregate import raster_to_cells
    from ..parts import concat_parts

    cells = grid.cells(min_lat)
    fds = fds.rename({"latitude": "lat", "longitude": "lon"})

    def year(y):
        per_cell = raster_to_cells(fds.sel(year=[y]), grid, stats=("mean",), min_lat=min_lat,
                                   domain=True)
        return xr.Dataset({name: (("year", "cells"), per_cell[f"{name}_mean"].transpose(
            "year", "cells").values, dict(var.attrs)) for name, var in fds.data_vars.items()},
            coords={"cell_ids": cells.cell_ids, "year": [y]})

    return concat_parts((year(y) for y in fds.year.values), "year", store)
