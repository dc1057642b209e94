"""Pipeline stage `labels`: the same as `entropice labels`.

    python pipeline/labels.py [--config pipeline/config.toml] [--force] [--quiet]
"""

import sys

from entropice.cli import app

if __name__ == "__main__":
    app(["labels", *sys.argv[1:]], prog_name="pipeline/labels.py")
