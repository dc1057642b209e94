"""Pipeline stage `grids`: the same as `entropice grids`.

    python pipeline/grids.py [--config pipeline/config.toml] [--force] [--quiet]
"""

import sys

from entropice.cli import app

if __name__ == "__main__":
    app(["grids", *sys.argv[1:]], prog_name="pipeline/grids.py")
