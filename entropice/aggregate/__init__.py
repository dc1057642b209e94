"""Values into cells: rasters, polygons, and from fine levels to coarse ones.

``raster_to_cells`` reduces a raster's pixels per cell through a cached pixel -> cell
index (``raster_to_levels``: several levels in one pass); ``polygons_to_cells``
intersects polygons with cells exactly in an equal-area projection; ``rollup``
aggregates a fine level to a coarser one; ``land_fraction`` is each cell's land share.
"""

from ._index import clear_cache
from .land import globe_land_share, land_fraction
from .polygons import polygons_to_cells
from .raster import raster_to_cells, raster_to_levels
from .rollup import rollup

__all__ = ["clear_cache", "globe_land_share", "land_fraction", "polygons_to_cells",
           "raster_to_cells", "raster_to_levels", "rollup"]
