"""`panel serve app/`: the Entropice dashboard. The cube is `--args --cube PATH`, else
$ENTROPICE_CUBE, else data/cube.zarr."""

from entropice.dashboard import build

build().servable(title="Entropice")
