"""A notebook's plots draw with the network off: notebook 01 executed on the demo cube,
exported to HTML and opened in headless chromium with every request to the network
refused."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_explore_cube.ipynb"

DRAWN = """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  for (let i = 3; i < d.length; i += 4) if (d[i]) return true;
                  return false; }"""
"""Whether a canvas holds a painted pixel."""


def test_exported_notebook_draws_offline(demo_cube, page, tmp_path, artifacts, monkeypatch):
    monkeypatch.setenv("ENTROPICE_CUBE", str(demo_cube[0]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    exporter = HTMLExporter(template_name="lab")
    html, _ = exporter.from_notebook_node(nb)
    (tmp_path / "01.html").write_text(html)
    asked = []

    def refuse(route):
        asked.append(route.request.url)
        route.abort()

    page.context.set_offline(True)
    page.context.route("http*://**", refuse)
    page.goto((tmp_path / "01.html").as_uri())
    canvases = page.locator("canvas")
    canvases.first.wait_for(state="attached", timeout=60_000)
    page.wait_for_timeout(2000)
    plots = sum(1 for cell in nb.cells for out in cell.get("outputs", [])
                if "application/vnd.holoviews_exec.v0+json" in out.get("data", {}))
    drawn = [canvases.nth(i).evaluate(DRAWN) for i in range(canvases.count())]
    page.screenshot(path=os.fspath(artifacts / "notebook01-offline.png"), full_page=True)
    assert plots >= 3 and sum(drawn) >= plots, (plots, drawn)
    # only the HTML template's own require.js and MathJax were asked for, no plot's asset
    assert set(asked) <= {exporter.require_js_url, exporter.mathjax_url}, asked
