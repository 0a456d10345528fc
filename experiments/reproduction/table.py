"""The "Reproduced results" table: `python -m experiments.reproduce all` saves the results
(`outputs/reproduce/results.json`), and the table is written into README.md between the markers
`<!-- table:reproduced -->` and `<!-- /table:reproduced -->` (by `--readme`, or `experiments.readme_tables`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from experiments.reproduction.common import Result
from experiments.reproduction.estimate import Estimate

RESULTS = Path(__file__).resolve().parents[2] / "outputs" / "reproduce" / "results.json"
COMMAND = "python -m experiments.reproduce all --readme  (saves outputs/reproduce/results.json)"

START, END = "<!-- table:reproduced -->", "<!-- /table:reproduced -->"
HEADER = "| paper | claim | closed form | measured [99% interval] | command |\n|---|---|---|---|---|"


def number(x: float) -> str:
    """Short, readable: whole numbers with thousands separators from 1000 up, else 4 significant digits."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def command(game: str) -> str:
    """The argparse form and, beside it, the Hydra form (configs/experiment/repro_<game>.yaml)."""
    return f"`python -m experiments.reproduce {game}` or `python -m experiments.reproduce +experiment=repro_{game}`"


def row(r: Result) -> str:
    m = r.measured
    measured = number(m.value) if m.lo == m.hi else f"{number(m.value)} [{number(m.lo)}, {number(m.hi)}]"
    return f"| {r.paper} | {r.claim} | {number(r.closed_form)} | {measured} | {command(r.game)} |"


def markdown(results: Sequence[Result]) -> str:
    return "\n".join([HEADER, *(row(r) for r in results)])


def write_readme(results: Sequence[Result], readme: Path) -> None:
    """Replace the table between the markers (which must be present once each)."""
    text = readme.read_text()
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"{readme} must hold {START} then {END} once each")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    readme.write_text(f"{head}{START}\n{markdown(results)}\n{END}{tail}")


def save(results: Sequence[Result], path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in results], indent=1))


def load_results(path: Path = RESULTS) -> list[Result]:
    rows = json.loads(path.read_text())
    return [Result(**{**r, "measured": Estimate(**r["measured"])}) for r in rows]
