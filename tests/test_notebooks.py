"""The five notebooks run top to bottom on the demo cube; any cell that raises fails,
and no output loads a script or a stylesheet from the network."""

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXTERNAL = re.compile(
    r"""(?:<script[^>]*\ssrc=|<link[^>]*\shref=|<img[^>]*\ssrc=|"url":\s*)["'](https?://[^"']+)""")
"""A script, stylesheet (a <link>, or a Bokeh ImportedStyleSheet) or image fetched from a
URL (hyperlinks, such as the logos' to bokeh.org, are not fetched)."""


def external_references(nb) -> list[str]:
    """The URLs an executed notebook's rendered outputs would fetch (the inlined libraries'
    own code, which loads MathJax only for math text, is not a rendered output)."""
    return sorted({url for cell in nb.cells for out in cell.get("outputs", [])
                   for mime, data in out.get("data", {}).items() if mime == "text/html"
                   for url in EXTERNAL.findall("".join(data))})


NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_five_notebooks_stored_without_outputs():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, demo_cube, monkeypatch):
    monkeypatch.setenv("ENTROPICE_CUBE", str(demo_cube[0]))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    assert external_references(nb) == []  # the plots draw offline
    assert os.environ["ENTROPICE_CUBE"] == str(demo_cube[0])
