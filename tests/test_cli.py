"""The ``entropice`` console command, run as a user runs it."""

import subprocess
import sys

import entropice


def run(*args):
    return subprocess.run([sys.executable, "-m", "entropice", *args], capture_output=True,
                          text=True, timeout=120)


def test_version():
    out = run("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"entropice {entropice.__version__}"


def test_help():
    out = run("--help")
    assert out.returncode == 0, out.stderr
    assert "Retrogressive Thaw Slumps" in out.stdout
    assert "--version" in out.stdout


def test_import_is_light():
    """Importing the package does no I/O and loads no heavy dependency."""
    code = ("import sys, entropice; heavy = {'numba', 'sklearn', 'pandas'} & set(sys.modules);"
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
