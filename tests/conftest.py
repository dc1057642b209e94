"""Shared test set-up."""

import os

# scikit-learn skips its array-API estimator check unless SciPy's array API is on;
# it must be set before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")


import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def demo_cube(tmp_path_factory):
    """`entropice demo` run once, as a newcomer runs it: (cube path, its output)."""
    cube_path = tmp_path_factory.mktemp("demo") / "data" / "cube.zarr"
    out = subprocess.run([sys.executable, "-m", "entropice", "demo", "--cube", str(cube_path),
                          "--quiet"], capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr
    return cube_path, out.stdout
