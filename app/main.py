"""`panel serve app/`: the Entropice dashboard. The cube is `--args --cube PATH`, else
$ENTROPICE_CUBE, else data/cube.zarr."""

from entropice.dashboard import build
from entropice.dashboard.page import cube_path

build(cube_path()).servable(title="Entropice")
