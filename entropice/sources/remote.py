"""Sources read where they are published: static STAC catalogues, COGs and Zarr stores
over HTTP(S), fetched by range requests and kept in a local cache.

Only what touches the domain is fetched: STAC items (and whole collections) whose
extent misses it are never opened; of a COG, only the internal tiles inside the
domain's extent are fetched (range requests through GDAL), once, into a local cache
(``$ENTROPICE_CACHE``, default ``~/.cache/entropice``), so a second run reads the
disk; Zarr chunks are fetched as they are read (only those of the domain) and cached
the same way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..atomic import replacing

log = logging.getLogger("entropice")


def is_remote(href) -> bool:
    """Whether ``href`` is a URL (``http://``, ``https://``, ``s3://`` ...)."""
    return "://" in str(href)


def cache_dir(kind: str) -> Path:
    """The local cache of one kind of download (``$ENTROPICE_CACHE/<kind>``)."""
    root = Path(os.environ.get("ENTROPICE_CACHE", Path.home() / ".cache" / "entropice"))
    return root / kind


def _cache_path(kind: str, key, href=None) -> Path:
    """Where a download is kept: ``<cache>/<kind>/<hash of key>[/<file name of href>]``."""
    import hashlib

    text = key if isinstance(key, str) else repr(key)
    folder = cache_dir(kind) / hashlib.sha256(text.encode()).hexdigest()[:16]
    return folder / str(href).split("?")[0].rstrip("/").rsplit("/", 1)[-1] if href else folder


def replace_atomically(target: Path, write) -> Path:
    """``write(tmp)`` fills a temporary path beside ``target``, which then takes its place:
    a failed or killed fetch or extraction never leaves a partial file where a complete
    one is expected (nor a stray temporary one)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with replacing(target) as tmp:
        write(tmp)
    return target


def cached_copy(href) -> Path:
    """A whole remote file in the local cache, fetched once (for files read whole, such
    as an inventory); rasters are read by :func:`open_raster` instead."""
    import fsspec

    target = _cache_path("files", str(href), href)
    if target.exists():
        return target

    def fetch(tmp):
        try:
            with fsspec.open(href, "rb", block_size=2**22) as src, open(tmp, "wb") as dst:
                while block := src.read(2**22):
                    dst.write(block)
        except Exception as err:  # noqa: BLE001 - the file systems raise many types
            raise ValueError(f"cannot fetch {href}: {err}") from None

    return replace_atomically(target, fetch)


GDAL_HTTP = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no directory listing per file
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",
}
"""GDAL's settings for reading COGs by range requests."""


def _vsi(href) -> str:
    """GDAL's virtual path of a URL: ``/vsicurl/`` for HTTP(S), ``/vsis3/`` for S3."""
    href = str(href)
    if href.startswith("s3://"):
        return "/vsis3/" + href[5:]
    if href.startswith("gs://"):
        return "/vsigs/" + href[5:]
    return "/vsicurl/" + href


def _window(src, bbox):
    """The pixel window of ``src`` inside a lon/lat ``bbox`` (None: all of it)."""
    import math

    from rasterio.warp import transform_bounds
    from rasterio.windows import Window, from_bounds

    full = Window(0, 0, src.width, src.height)
    if bbox is None or src.crs is None:
        return full
    try:
        left, bottom, right, top = transform_bounds("EPSG:4326", src.crs, *bbox,
                                                    densify_pts=64)
    except Exception:  # noqa: BLE001 - a bbox the CRS cannot represent: read it all
        return full
    win = from_bounds(left, bottom, right, top, src.transform)
    c0, r0 = math.floor(win.col_off), math.floor(win.row_off)
    win = Window(c0, r0, math.ceil(win.col_off + win.width) - c0,
                 math.ceil(win.row_off + win.height) - r0)
    try:
        return win.intersection(full)
    except Exception:  # noqa: BLE001 - rasterio: "windows do not intersect"
        return Window(0, 0, 0, 0)


def domain_copy(href, bbox=None) -> Path | None:
    """The part of a remote COG inside a lon/lat ``bbox``, in the local cache.

    Only the COG's internal tiles that touch ``bbox`` are fetched (HTTP range requests,
    through GDAL), once: a re-run reads the local copy. None when the raster misses
    ``bbox``.
    """
    import rasterio
    import rasterio.errors
    import rasterio.windows

    target = _cache_path("tiles", (str(href), None if bbox is None else
                                   [round(float(v), 6) for v in bbox]), href)
    empty = target.with_name(target.name + ".outside")
    if target.exists():
        return target
    if empty.exists():
        return None

    def fetch(tmp):
        with rasterio.Env(**GDAL_HTTP), rasterio.open(_vsi(href)) as src:
            win = _window(src, bbox)
            if win.width == 0 or win.height == 0:
                raise _Outside
            profile = src.profile | {
                "driver": "GTiff", "width": int(win.width), "height": int(win.height),
                "transform": src.window_transform(win), "tiled": True, "blockxsize": 512,
                "blockysize": 512, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.descriptions = src.descriptions
                dst.update_tags(**src.tags())
                step = 2048
                for r in range(0, int(win.height), step):
                    part = rasterio.windows.Window(win.col_off, win.row_off + r, win.width,
                                                   min(step, int(win.height) - r))
                    dst.write(src.read(window=part),
                              window=rasterio.windows.Window(0, r, win.width, part.height))

    try:
        return replace_atomically(target, fetch)
    except _Outside:
        empty.parent.mkdir(parents=True, exist_ok=True)
        empty.touch()
        return None
    except rasterio.errors.RasterioError as err:
        raise ValueError(f"cannot read {href}: {err}") from None


class _Outside(Exception):
    """The raster misses the area asked for."""


def open_raster(href, what: str, *, bbox=None, chunks=2048):
    """A raster file or URL as a lazy (band, y, x) DataArray (dask chunks of ``chunks``
    pixels; ``chunks=None`` reads it into memory now), nodata as NaN, with its CRS; None
    when a URL's raster misses ``bbox`` (said in the log). Errors name ``what`` (such as
    "ArcticDEM tile") and the file, also those of pixels read later (:class:`_Pixels`).

    A URL's part inside ``bbox`` is fetched once into the local cache by range requests
    (:func:`domain_copy`), then read from the disk; a local file is read in place.
    """
    import dask.array as dsa
    import numpy as np
    import rioxarray
    import xarray as xr
    from dask.base import tokenize

    if not is_remote(href) and not Path(href).exists():
        raise ValueError(f"{what} {href} does not exist.")
    local = None
    try:
        local = domain_copy(href, bbox) if is_remote(href) else href
        if local is None:
            log.info("%s %s lies outside the domain: skipped", what, href)
            return None
        da = rioxarray.open_rasterio(local, masked=True, cache=False)
    except Exception as err:  # noqa: BLE001 - rasterio raises many types
        raise ValueError(f"cannot read {what} {href}: {_reason(err)}. "
                         f"{_expected(href, local)}.") from None
    if not isinstance(da, xr.DataArray):
        raise ValueError(f"{what} {href} holds several rasters; expected one.")
    if da.rio.crs is None:
        raise ValueError(f"{what} {href} has no CRS.")
    _check_degrees(da, f"{what} {href}")
    pixels = _Pixels(da, f"{what} {href}", _expected(href, local))
    if chunks is None:
        return da.copy(data=pixels[(slice(None),) * 3])
    name = f"open_raster-{tokenize(str(local), os.path.getmtime(local), chunks)}"
    return da.copy(data=dsa.from_array(pixels, chunks=(-1, chunks, chunks), name=name,
                                       meta=np.empty((0, 0, 0), da.dtype)))


def _check_degrees(da, label):
    """A raster whose CRS says degrees must have coordinates in degrees: a projected
    raster labelled EPSG:4326 would fall outside the Earth and give no values at all."""
    if not da.rio.crs.is_geographic:
        return
    west, south, east, north = da.rio.bounds()
    if not (-180.5 <= west and east <= 360.5 and -90.5 <= south and north <= 90.5):
        raise ValueError(f"{label} says its CRS is {da.rio.crs} (degrees), but its extent is "
                         f"x {west:g} to {east:g}, y {south:g} to {north:g}: not degrees. "
                         "Expected the CRS the file was made in (ArcticDEM: EPSG:3413): "
                         "fix its label (gdal_edit.py -a_srs).")


def _expected(href, local) -> str:
    """What a raster that cannot be read was expected to be, and what to do."""
    kind = "GeoTIFF" if str(href).split("?")[0].lower().endswith((".tif", ".tiff")) \
        else "raster"
    if is_remote(href) and local is not None:
        return f"Expected a readable {kind}; its cached copy {local} may be damaged: delete it"
    return (f"Expected a readable {kind}; the file may be truncated or damaged: download it "
            "again")


def _reason(err) -> str:
    """The first cause of an error (GDAL's own words, under rasterio's "Read failed. See
    previous exception for details.")."""
    while (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__
    return str(err).strip() or type(err).__name__


class _Pixels:
    """The pixels of a lazily opened raster, read a window at a time (as dask asks for
    them, inside whatever computation needs them): a read that fails stops with one
    ValueError naming the file, the bands and window, and what was expected."""

    def __init__(self, da, label, expected):
        self.da, self.label, self.expected = da, label, expected
        self.shape, self.dtype, self.ndim = da.shape, da.dtype, da.ndim

    def __getitem__(self, key):
        import numpy as np

        try:
            return self.da[key].values
        except Exception as err:  # noqa: BLE001 - rasterio and GDAL raise many types
            # dask may fuse later indexing (such as a squeeze) into the key
            band, row, col = (np.atleast_1d(np.arange(n)[k]) for k, n in zip(key, self.shape))
            bands = (f"band {band[0] + 1}" if len(band) == 1 else
                     f"bands {band.min() + 1}-{band.max() + 1}")
            raise ValueError(
                f"cannot read {self.label} ({bands}, rows {row.min()}-{row.max()}, columns "
                f"{col.min()}-{col.max()}): {_reason(err)}. {self.expected}.") from None


def zarr_store(href):
    """A Zarr store path or URL as ``xarray.open_zarr`` takes it. A URL's chunks are
    fetched as they are read (only those asked for) and kept in the local cache, so a
    re-run reads the disk (published analysis-ready stores do not change)."""
    if not is_remote(href):
        return href
    from zarr.experimental.cache_store import CacheStore
    from zarr.storage import FsspecStore, LocalStore

    local = _cache_path("zarr", str(href))
    local.mkdir(parents=True, exist_ok=True)
    return CacheStore(FsspecStore.from_url(str(href), read_only=True),
                      cache_store=LocalStore(local))


def _overlaps(bbox, domain):
    return domain is None or bbox is None or not (
        bbox[2] < domain[0] or bbox[0] > domain[2] or bbox[3] < domain[1] or bbox[1] > domain[3])


def stac_assets(href, keys=("dem",), bbox=None) -> list[str]:
    """Asset hrefs of a static STAC catalogue, collection, item collection or item.

    Parameters
    ----------
    href : str or Path
        The JSON document, local or a URL (such as the PGC's ArcticDEM mosaic catalogue).
    keys : sequence of str
        Asset keys to take, the first an item has; an item with none of them gives its
        first asset.
    bbox : (west, south, east, north), optional
        Lon/lat extent of interest: items outside it are left out, and collections
        whose extent misses it are not walked (their items are never fetched).

    Returns
    -------
    list of str
        Absolute hrefs (paths or URLs), in catalogue order.
    """
    import pystac

    href = str(href)
    try:
        doc = pystac.StacIO.default().read_json(href)
        if doc.get("type") == "FeatureCollection":
            root = pystac.ItemCollection.from_dict(doc, preserve_dict=False)
            items = [_with_self(it, href) for it in root]
        else:
            root = pystac.read_dict(doc, href=href)
            items = None
    except Exception as err:  # noqa: BLE001 - pystac and the file systems raise many types
        raise ValueError(f"cannot read the STAC document {href}: {err}") from None

    def walk(node):
        if isinstance(node, pystac.Item):
            yield node
            return
        if isinstance(node, pystac.Collection) and not _overlaps(
                node.extent.spatial.bboxes[0], bbox):
            return
        yield from node.get_items()
        for child in node.get_children():
            yield from walk(child)

    out = []
    for item in (items if items is not None else walk(root)):
        if not _overlaps(item.bbox, bbox):
            continue
        asset = next((item.assets[k] for k in keys if k in item.assets), None) or next(
            iter(item.assets.values()), None)
        if asset is None:
            raise ValueError(f"STAC item {item.id} in {href} has no assets.")
        out.append(asset.get_absolute_href() or asset.href)
    return out


def _with_self(item, href):
    """An item of an item collection, its relative asset hrefs resolved from the file."""
    if not item.get_self_href():
        item.set_self_href(href)
    return item
