"""The README's figures are put there by ``benchmarks/readme.py`` from what a command
printed: every block it names is in the README, and a block is replaced whole."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_tool():
    spec = importlib.util.spec_from_file_location("readme", ROOT / "benchmarks" / "readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_block_is_replaced_whole_and_a_missing_one_is_named():
    tool = _readme_tool()
    text = "a\n<!-- x -->\nold\nlines\n<!-- /x -->\nb\n<!-- y -->\nkeep\n<!-- /y -->\n"
    out = tool.replace_block(text, "x", "\nnew\n\n")
    assert out == "a\n<!-- x -->\nnew\n<!-- /x -->\nb\n<!-- y -->\nkeep\n<!-- /y -->\n"
    with pytest.raises(SystemExit, match="no block <!-- z -->"):
        tool.replace_block(text, "z", "new")


def test_the_readme_has_every_block_it_quotes_closed():
    text = (ROOT / "README.md").read_text()
    opened = re.findall(r"<!-- ([a-z_]+) -->", text)
    assert {"demo_summary", "espa_speed", "espa_accuracy", "espa_relevance"} <= set(opened)
    for name in opened:
        assert text.count(f"<!-- /{name} -->") == 1, name
