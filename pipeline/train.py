"""Pipeline stage `train`: the same as `entropice train`.

    python pipeline/train.py [--config pipeline/config.toml] [--force] [--quiet]
"""

import sys

from entropice.cli import app

if __name__ == "__main__":
    app(["train", *sys.argv[1:]], prog_name="pipeline/train.py")
