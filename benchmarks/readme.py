"""Put a benchmark's printed figures (or the demo's summary table) into the README.

The README holds each block between ``<!-- NAME -->`` and ``<!-- /NAME -->``; this
replaces what stands between them with a file's text (or standard input), so that the
figures quoted are the ones a command printed, not copied by hand.

    python benchmarks/espa_relevance.py | python benchmarks/readme.py espa_relevance
    python benchmarks/readme.py demo_summary data/models/summary.md
"""

import argparse
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the block ``name`` holding ``body``; an error if it has no such block."""
    pattern = re.compile(rf"(<!-- {re.escape(name)} -->\n).*?(<!-- /{re.escape(name)} -->)",
                         re.S)
    if not pattern.search(text):
        raise SystemExit(f"error: {README} has no block <!-- {name} --> ... "
                         f"<!-- /{name} -->.")
    return pattern.sub(lambda m: m.group(1) + body.strip("\n") + "\n" + m.group(2), text,
                       count=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the block, e.g. espa_speed or demo_summary")
    parser.add_argument("file", nargs="?", help="its new text (default: standard input)")
    args = parser.parse_args()
    body = Path(args.file).read_text() if args.file else sys.stdin.read()
    README.write_text(replace_block(README.read_text(), args.name, body))


if __name__ == "__main__":
    main()
