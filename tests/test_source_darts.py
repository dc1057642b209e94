"""The DARTS reader: files in DARTS's formats, written here, checked against geometry;
and a real per-image inventory (Nitze et al. 2021)."""

import logging
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from entropice.grids import get_grid
from entropice.sources import darts

GRID = get_grid("h3", 5)


def footprint_in_cell(cell_index, size_m=300.0, shift=0.0):
    """A square RTS footprint (EPSG:3413, as DARTS) at the centre of a domain cell."""
    cells = GRID.cells()
    lat, lon = cells.lat.values[cell_index], cells.lon.values[cell_index]
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3413", always_xy=True).transform(lon, lat)
    return shapely.box(x + shift, y, x + shift + size_m, y + size_m), cells.cell_ids.values[
        cell_index]


@pytest.fixture
def inventory(tmp_path):
    lat, lon = GRID.cells().lat.values, GRID.cells().lon.values
    cells_in_siberia = np.flatnonzero((lat > 68) & (lat < 72) & (lon > 120) & (lon < 140))[:3]
    rows = []
    for k, idx in enumerate(cells_in_siberia):
        geom, _ = footprint_in_cell(idx)
        rows.append({"year": 2021, "geometry": geom})
        rows.append({"year": 2022, "geometry": shapely.affinity.scale(geom, 1.5, 1.5)})
        if k == 0:
            rows.append({"year": 2022,  # a second slump in the cell
                         "geometry": shapely.affinity.translate(geom, 1000.0, 0.0)})
    rows.append(dict(rows[0]))  # an exact duplicate
    gdf = gpd.GeoDataFrame(rows, crs="EPSG:3413")
    path = tmp_path / "darts_level2.gpkg"
    gdf.to_file(path, layer="rts", driver="GPKG")
    return path, cells_in_siberia


def test_open_geopackage_drops_duplicates(inventory):
    path, _ = inventory
    gdf = darts.open(path)
    assert len(gdf) == 7
    assert gdf.crs.to_epsg() == 3413
    assert sorted(set(gdf.year)) == [2021, 2022]


@pytest.mark.parametrize("fmt", ["parquet", "shp"])
def test_other_formats(inventory, tmp_path, fmt):
    path, _ = inventory
    gdf = gpd.read_file(path)
    out = tmp_path / f"darts.{fmt}"
    gdf.to_parquet(out) if fmt == "parquet" else gdf.to_file(out)
    assert len(darts.open(out)) == 7


def test_to_cells_counts_areas_and_density(inventory):
    path, idx = inventory
    gdf = darts.open(path)
    land = np.full(GRID.cells().sizes["cells"], 0.5)
    ds = darts.to_cells(gdf, GRID, land_fraction=land)
    assert ds.rts_class.dims == ("year", "cells")
    cells = GRID.cells()
    for year, n_expected in ((2021, 1), (2022, 2)):
        one = ds.sel(year=year)
        c = idx[0]
        assert one.rts_count.values[c] == n_expected
        # the area another way: the footprints' areas on the ellipsoid (the polygons
        # are in EPSG:3413, conformal, so project them to equal-area to compare)
        sel = gdf[gdf.year == year].to_crs("EPSG:6931")
        centroid_cells = GRID.latlon_to_cells(*_latlon(sel.centroid))
        expected = sel.area[centroid_cells == cells.cell_ids.values[c]].sum() / 1e6
        assert one.rts_area_km2.values[c] == pytest.approx(expected, rel=1e-6)
        density = expected / (0.5 * cells.area_km2.values[c])
        assert one.rts_density.values[c] == pytest.approx(density, rel=1e-6)
    assert ds.rts_count.sum() == 7
    assert set(np.unique(ds.rts_class.values)) <= {0.0, 1.0, 2.0, 3.0}
    assert ds.rts_class.attrs["flag_meanings"] == "none low medium high"
    assert (ds.rts_class.values == 0).sum() > 0.99 * ds.rts_class.size


def _latlon(points):
    lon, lat = Transformer.from_crs("EPSG:6931", "EPSG:4326", always_xy=True).transform(
        points.x.values, points.y.values)
    return lat, lon


NITZE = Path(__file__).parent / "data" / "Nitze2021" / "GT_Set_Nitze_etal_2021_TrainingSet_RTS.shp"


def test_an_inventory_without_a_mapped_year_is_refused():
    gdf = darts.open(NITZE)
    with pytest.raises(ValueError, match="no mapped year"):
        darts.to_cells(gdf.iloc[:0], GRID)


def test_per_image_footprints_are_one_slump(caplog):
    """Nitze et al. 2021 map a slump once per image (Banks Island three times in 2019):
    overlapping footprints of a year are one slump, their area the union's."""
    gdf = darts.open(NITZE)
    assert set(gdf.year) == {2018, 2019}
    with caplog.at_level(logging.INFO, logger="entropice"):
        ds = darts.to_cells(gdf, GRID)
    merged, n_left = map(int, re.search(r"(\d+) footprints overlapped .* (\d+) distinct",
                                        caplog.text).groups())
    assert merged + n_left == len(gdf)
    eq = gdf.to_crs("EPSG:6931")
    for year in (2018, 2019):  # the union, but for slivers between neighbours (< 0.1 %)
        union = shapely.union_all(eq[eq.year == year].geometry.values).area / 1e6
        assert float(ds.rts_area_km2.sel(year=year).sum()) == pytest.approx(union, rel=2e-3)
    assert float(ds.rts_area_km2.sel(year=2019).sum()) == pytest.approx(12.0, abs=0.03)
    assert float(eq[eq.year == 2019].area.sum() / 1e6) == pytest.approx(36.0, abs=0.1)
    cell = np.flatnonzero(ds.cell_ids.values == 599023639290970111)[0]  # Banks Island
    assert float(ds.rts_area_km2.sel(year=2019)[cell]) == pytest.approx(2.26, abs=5e-3)
    assert ds.rts_count.sum() == n_left  # distinct slumps, each counted once
    assert (ds.rts_density <= 1).all()


def test_dissolve_keeps_touching_footprints_apart():
    a, b = shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)  # a shared edge
    c = shapely.box(50, 50, 150, 150)  # overlaps both, but in another year
    gdf = gpd.GeoDataFrame({"year": [2020, 2020, 2021]}, geometry=[a, b, c], crs="EPSG:3413")
    out, merged = darts.dissolve(gdf)
    assert merged == 0 and len(out) == 3
    gdf.loc[2, "year"] = 2020  # now c joins a and b into one slump
    out, merged = darts.dissolve(gdf)
    assert merged == 2 and len(out) == 1
    assert out.geometry[0].area == pytest.approx(20000 + 10000 - 5000)


def test_neighbours_crossing_by_a_sliver_stay_two():
    a = shapely.box(0, 0, 100, 100)
    sliver = shapely.box(99, 0, 199, 100)  # 1 % of each: digitised outlines that cross
    again = shapely.box(40, 0, 140, 100)  # 60 %: the same slump in another image
    gdf = gpd.GeoDataFrame({"year": [2020, 2020]}, geometry=[a, sliver], crs="EPSG:3413")
    assert darts.dissolve(gdf)[1] == 0
    gdf.loc[1, "geometry"] = again
    assert darts.dissolve(gdf)[1] == 1
    assert darts.dissolve(gdf.iloc[[0]].assign(geometry=[a]))[1] == 0


def test_density_classes():
    d = np.array([0.0, 5e-5, 1e-4, 5e-4, 1e-3, 0.01, np.nan])
    np.testing.assert_array_equal(darts.density_classes(d, (1e-4, 1e-3)),
                                  [0, 1, 1, 2, 2, 3, np.nan])
    with pytest.raises(ValueError, match="positive and increasing"):
        darts.density_classes(d, (1e-3, 1e-4))


def test_coverage_makes_unmapped_cells_missing(inventory):
    path, idx = inventory
    gdf = darts.open(path)
    cells = GRID.cells()
    lat, lon = cells.lat.values[idx[0]], cells.lon.values[idx[0]]
    footprint = gpd.GeoDataFrame(geometry=[shapely.box(lon - 3, lat - 1.5, lon + 3, lat + 1.5)],
                                 crs="EPSG:4326")
    ds = darts.to_cells(gdf, GRID, coverage=footprint)
    mapped = ~np.isnan(ds.rts_density.sel(year=2021).values)
    assert mapped[idx[0]] and 0 < mapped.sum() < 0.01 * len(mapped)
    assert np.nansum(ds.rts_count.sel(year=2021).values) >= 1
    # a self-intersecting coverage footprint (a bow tie) is repaired, not a GEOS error
    x0, x1, y0, y1 = lon - 3, lon + 3, lat - 1.5, lat + 1.5
    bowtie = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])
    assert not bowtie.is_valid
    tied = darts.to_cells(gdf, GRID, coverage=footprint.set_geometry([bowtie]))
    assert 0 < int(np.isfinite(tied.rts_density.sel(year=2021)).sum()) <= mapped.sum()


# -- bad input ------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="RTS inventory .*nope.gpkg does not exist"):
        darts.open(tmp_path / "nope.gpkg")


def test_unreadable_file(tmp_path):
    bad = tmp_path / "broken.gpkg"
    bad.write_text("not a geopackage")
    with pytest.raises(ValueError, match="cannot read RTS inventory .*broken.gpkg"):
        darts.open(bad)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.gpkg"
    gpd.GeoDataFrame({"year": []}, geometry=[], crs="EPSG:3413").to_file(path)
    with pytest.raises(ValueError, match="empty.gpkg holds no polygons"):
        darts.open(path)


def test_file_without_year(tmp_path):
    path = tmp_path / "noyear.gpkg"
    gpd.GeoDataFrame({"id": [1]}, geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:3413").to_file(
        path)
    with pytest.raises(ValueError, match="noyear.gpkg has no year of observation"):
        darts.open(path)


def test_year_from_a_date_column(tmp_path):
    path = tmp_path / "level1.gpkg"
    gpd.GeoDataFrame({"acquisition_date": ["2020-07-14", "2021-08-01"]},
                     geometry=[shapely.box(0, 0, 1, 1), shapely.box(2, 0, 3, 1)],
                     crs="EPSG:3413").to_file(path)
    assert list(darts.open(path).year) == [2020, 2021]


def test_points_are_rejected(tmp_path):
    path = tmp_path / "points.gpkg"
    gpd.GeoDataFrame({"year": [2020]}, geometry=[shapely.Point(0, 0)], crs="EPSG:3413").to_file(
        path)
    with pytest.raises(ValueError, match="points.gpkg holds Point geometries"):
        darts.open(path)


def _arts(path, cells):
    """A file in the ARTS schema (Yang et al. 2025): RTS outlines and boxes ('Positive'),
    and digitised land without RTS ('Negative'), dates of the base maps as text."""
    slump, _ = footprint_in_cell(cells[0])
    box, _ = footprint_in_cell(cells[1], size_m=200.0)
    background = shapely.box(*footprint_in_cell(cells[2])[0].buffer(12_000).bounds)
    around = shapely.box(*slump.buffer(12_000).bounds)  # the image around a1, in 2020
    gpd.GeoDataFrame({
        "UID": ["a1", "a2", "a3", "a4"],
        "TrainClass": ["Positive", "Positive", "Negative", "Negative"],
        "BaseMapDate": ["2019-07-21, 2020-08-02", "2020-07-30", "2020-07-01", "2020-08-02"],
        "RegionName": ["Yamal"] * 4,
        "LabelType": ["Polygon", "BoundingBox", "Polygon", "Polygon"]},
        geometry=[slump, box, background, around], crs="EPSG:3413").to_file(path)


def test_arts_schema(tmp_path, caplog):
    lat, lon = GRID.cells().lat.values, GRID.cells().lon.values
    cells = np.flatnonzero((lat > 68) & (lat < 72) & (lon > 60) & (lon < 75))[:3]
    _arts(tmp_path / "arts.gpkg", cells)
    with caplog.at_level(logging.WARNING, logger="entropice"):
        gdf = darts.open(tmp_path / "arts.gpkg")
    assert "1 RTS are bounding boxes" in caplog.text
    assert sorted(zip(gdf.UID, gdf.year, gdf.rts)) == [
        ("a1", 2019, True), ("a1", 2020, True), ("a2", 2020, True), ("a3", 2020, False),
        ("a4", 2020, False)]
    ds = darts.to_cells(gdf, GRID)
    assert list(ds.year.values) == [2019, 2020]
    # the negatives and the RTS are the mapped land: a cell at least half mapped is
    # labelled, with or without RTS; elsewhere the labels are missing, RTS or not (an
    # RTS found alone in an unmapped cell would bias the labels towards RTS)
    y20 = ds.rts_count.sel(year=2020)
    assert y20.values[cells[0]] == 1 and y20.values[cells[2]] == 0
    assert np.isnan(y20.values[cells[1]])
    assert int(np.isfinite(y20).sum()) <= 24
    assert np.isnan(ds.rts_count.sel(year=2019).values[cells[0]])
    # a year mapped without RTS is a year of zeros, not left out
    around = gdf.geometry[gdf.UID == "a4"].iloc[0]
    cov = gpd.GeoDataFrame({"year": [2021]}, geometry=[around], crs=gdf.crs)
    ds = darts.to_cells(gdf, GRID, coverage=cov)
    assert list(ds.year.values) == [2019, 2020, 2021]
    assert ds.rts_count.sel(year=2021).values[cells[0]] == 0


def test_year_rules(tmp_path):
    path = tmp_path / "inv.gpkg"
    geom, _ = footprint_in_cell(10)
    gpd.GeoDataFrame({"obs": ["2019-06-01"], "y": [2017]}, geometry=[geom],
                     crs="EPSG:3413").to_file(path)
    assert list(darts.open(path, year=2021).year) == [2021]
    assert list(darts.open(path, year_column="y").year) == [2017]
    assert list(darts.open(path, date_column="obs").year) == [2019]
    with pytest.raises(ValueError, match="inv.gpkg: give one of year_column, date_column"):
        darts.open(path, year=2021, year_column="y")
    with pytest.raises(ValueError, match="inv.gpkg has no column 'when'"):
        darts.open(path, date_column="when")
    with pytest.raises(ValueError, match="inv.gpkg: 1 footprints have no readable year in "
                                         "column 'obs'"):
        gpd.GeoDataFrame({"obs": ["soon"]}, geometry=[geom], crs="EPSG:3413").to_file(path)
        darts.open(path, date_column="obs")


def test_shapefile_without_prj(tmp_path):
    """Nitze et al.'s labels with their .prj lost: the CRS comes from the caller."""
    for part in NITZE.parent.glob(NITZE.stem + ".*"):
        if part.suffix != ".prj":
            (tmp_path / part.name).write_bytes(part.read_bytes())
    shp = tmp_path / NITZE.name
    with pytest.raises(ValueError, match=r"GT_Set_Nitze.*\.shp has no CRS.*crs = "):
        darts.open(shp)
    gdf = darts.open(shp, crs="EPSG:4326")
    assert gdf.crs.to_epsg() == 4326 and len(gdf) == len(darts.open(NITZE))
    with pytest.raises(ValueError, match="says its CRS is EPSG:4326, the configuration says"):
        darts.open(NITZE, crs="EPSG:3413")


def test_published_quirks(tmp_path):
    """A GeoParquet geometry column not called 'geometry', years as numbers or compact
    dates, a nullable year with a gap, and a file of empty geometries."""
    geom, _ = footprint_in_cell(10)
    other = shapely.affinity.translate(geom, 150.0, 0.0)  # overlaps the first
    gdf = gpd.GeoDataFrame({"date": ["20190701", "2019;2020"]}, geometry=[geom, other],
                           crs="EPSG:3413").rename_geometry("geom")
    gdf.to_parquet(tmp_path / "inv.parquet")
    read = darts.open(tmp_path / "inv.parquet")
    assert sorted(read.year) == [2019, 2019, 2020] and read.geometry.notna().all()
    out, merged = darts.dissolve(read)
    assert merged == 1 and len(out) == 2 and out.geometry.notna().all()
    gpd.GeoDataFrame({"year": pd.array([2019, None], dtype="Int64")}, geometry=[geom, other],
                     crs="EPSG:3413").to_parquet(tmp_path / "gap.parquet")
    with pytest.raises(ValueError, match="gap.parquet: 1 footprints have no readable year"):
        darts.open(tmp_path / "gap.parquet")
    gpd.GeoDataFrame({"year": [2019]}, geometry=[shapely.Polygon()],
                     crs="EPSG:3413").to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match="empty.parquet holds no polygons"):
        darts.open(tmp_path / "empty.parquet")
