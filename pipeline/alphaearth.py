"""Pipeline stage `alphaearth`: the same as `entropice alphaearth`.

    python pipeline/alphaearth.py [--config pipeline/config.toml] [--force] [--quiet]
"""

import sys

from entropice.cli import app

if __name__ == "__main__":
    app(["alphaearth", *sys.argv[1:]], prog_name="pipeline/alphaearth.py")
