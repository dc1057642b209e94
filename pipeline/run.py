"""Run the whole pipeline, stage after stage: the same as `entropice run`.

    python pipeline/run.py [--config pipeline/config.toml] [--force] [--quiet]
                           [--scheduler tcp://...]
"""

import sys

from entropice.cli import app

if __name__ == "__main__":
    app(["run", *sys.argv[1:]], prog_name="pipeline/run.py")
