"""Readers of the data sources, each with the same two verbs.

``open(...)`` reads the source in its own form (a GeoDataFrame or an xarray object);
``to_cells(obj, grid, ...)`` turns it into an ``xarray.Dataset`` indexed by
``cell_ids``. Modules: ``darts`` (RTS footprints, the labels), ``era5`` (climate).
"""
