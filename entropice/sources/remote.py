"""Sources read where they are published: static STAC catalogues, COGs and Zarr stores
over HTTP(S), fetched by range requests and kept in a local cache.

Only what touches the domain is fetched: STAC items (and whole collections) whose
extent misses it are never opened; COG tiles that touch it are fetched once into a
local cache (``$ENTROPICE_CACHE``, default ``~/.cache/entropice``), so a second run
reads the disk; Zarr chunks are fetched as they are read (only those of the domain).
"""

from __future__ import annotations

import os
from pathlib import Path


def is_remote(href) -> bool:
    """Whether ``href`` is a URL (``http://``, ``https://``, ``s3://`` ...)."""
    return "://" in str(href)


def cache_dir(kind: str) -> Path:
    """The local cache of one kind of download (``$ENTROPICE_CACHE/<kind>``)."""
    root = Path(os.environ.get("ENTROPICE_CACHE", Path.home() / ".cache" / "entropice"))
    return root / kind


def cached_copy(href) -> Path:
    """A remote file in the local cache, fetched once (a stage that reduces a tile reads
    all of it; a re-run then reads the disk)."""
    import hashlib

    import fsspec

    name = str(href).split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    target = cache_dir("files") / hashlib.sha256(str(href).encode()).hexdigest()[:16] / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{name}.{os.getpid()}.tmp")
        try:
            with fsspec.open(href, "rb", block_size=2**22) as src, open(tmp, "wb") as dst:
                while block := src.read(2**22):
                    dst.write(block)
        except Exception as err:  # noqa: BLE001 - the file systems raise many types
            tmp.unlink(missing_ok=True)
            raise ValueError(f"cannot fetch {href}: {err}") from None
        os.replace(tmp, target)
    return target


def open_rasterio(href, **kwargs):
    """``rioxarray.open_rasterio`` for local files and URLs: a URL is fetched once into
    the local cache, then read from the disk."""
    import rioxarray

    return rioxarray.open_rasterio(cached_copy(href) if is_remote(href) else href, **kwargs)


def zarr_store(href):
    """A Zarr store path or URL as ``xarray.open_zarr`` takes it (a URL is read chunk by
    chunk over HTTP: only the chunks asked for are fetched; they are not cached)."""
    return href


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
