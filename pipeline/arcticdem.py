"""Pipeline stage `arcticdem`: the same as `entropice arcticdem`.

    python pipeline/arcticdem.py [--config pipeline/config.toml] [--force] [--quiet]
"""

import sys

from entropice.cli import app

if __name__ == "__main__":
    app(["arcticdem", *sys.argv[1:]], prog_name="pipeline/arcticdem.py")
