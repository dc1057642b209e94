"""Pipeline stage `train`: the same as `entropice train`.

eSPA+ and baselines on every group with spatial cross-validation; runs go to
models/<run_id>/ and a summary table to models/summary.md.

    python pipeline/train.py [--config pipeline/config.toml] [--force] [--quiet]
"""

import sys
from pathlib import Path

from entropice.cli import app

if __name__ == "__main__":  # the command of this file's name (entropice.stages lists them)
    app([Path(__file__).stem, *sys.argv[1:]], prog_name=f"pipeline/{Path(__file__).name}")
