"""Readers of the data sources, each with the same two verbs.

``open(...)`` reads the source in its own form (a GeoDataFrame or xarray objects);
``to_cells(obj, grid, ...)`` turns it into an ``xarray.Dataset`` on the domain's
``cell_ids``. Modules: ``darts`` (RTS footprints: the labels), ``era5`` (climate),
``arcticdem`` (terrain), ``alphaearth`` (satellite embeddings).
"""
