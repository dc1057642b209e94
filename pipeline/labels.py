"""Pipeline stage `labels`: the same as `entropice labels`.

RTS labels from the inventories: count, area, density and class per cell and year.

    python pipeline/labels.py [--config pipeline/config.toml] [--force] [--quiet]
"""

import sys
from pathlib import Path

from entropice.cli import app

if __name__ == "__main__":  # the command of this file's name (entropice.stages lists them)
    app([Path(__file__).stem, *sys.argv[1:]], prog_name=f"pipeline/{Path(__file__).name}")
