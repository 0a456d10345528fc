"""README tables written by the benchmarks themselves: a table lives between `<!-- table:NAME -->` and
`<!-- /table:NAME -->`, and a benchmark run with `--readme README.md` replaces what is between the markers, so
every figure in the README comes from a script."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def replace_block(path: str | Path, name: str, text: str) -> None:
    """Put `text` between the `table:name` markers of the file at `path` (which must hold both markers once)."""
    path = Path(path)
    start, end = f"<!-- table:{name} -->", f"<!-- /table:{name} -->"
    doc = path.read_text()
    if doc.count(start) != 1 or doc.count(end) != 1 or doc.index(start) > doc.index(end):
        raise ValueError(f"{path}: needs exactly one {start} ... {end} block")
    head, rest = doc.split(start)
    _, tail = rest.split(end)
    path.write_text(f"{head}{start}\n{text.strip()}\n{end}{tail}")
