"""Pipeline stage `predict`: the same as `entropice predict`.

    python pipeline/predict.py [--config pipeline/config.toml] [--force] [--quiet]
"""

import sys

from entropice.cli import app

if __name__ == "__main__":
    app(["predict", *sys.argv[1:]], prog_name="pipeline/predict.py")
