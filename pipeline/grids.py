"""Pipeline stage `grids`: the same as `entropice grids`.

Cells of every grid and level: ids, centres, areas, land fraction.

    python pipeline/grids.py [--config pipeline/config.toml] [--force] [--quiet]
"""

import sys
from pathlib import Path

from entropice.cli import app

if __name__ == "__main__":  # the command of this file's name (entropice.stages lists them)
    app([Path(__file__).stem, *sys.argv[1:]], prog_name=f"pipeline/{Path(__file__).name}")
