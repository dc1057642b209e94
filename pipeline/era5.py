"""Pipeline stage `era5`: the same as `entropice era5`.

    python pipeline/era5.py [--config pipeline/config.toml] [--force] [--quiet]
"""

import sys

from entropice.cli import app

if __name__ == "__main__":
    app(["era5", *sys.argv[1:]], prog_name="pipeline/era5.py")
