"""The parameter files and the parameter tables agree with the Config dataclasses they document."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mechanisms import MechanismStack, registered

ROOT = Path(__file__).resolve().parents[2]
PARTS = ROOT / "configs" / "mechanism" / "parts"
DOCS = ROOT / "docs" / "mechanisms.md"
DOCUMENTED = tuple(sorted(registered()))  # every registered mechanism has a parameter table


def defaults(name: str) -> dict[str, Any]:
    return {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
            for f in dataclasses.fields(registered()[name].Config)}


def plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("path", sorted(PARTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_part_lists_every_field_at_its_default(path: Path) -> None:
    part = yaml.safe_load(path.read_text())
    assert part.pop("enabled") is True
    assert {k: plain(v) for k, v in part.items()} == {k: plain(v) for k, v in defaults(path.stem).items()}
    MechanismStack.from_config([{"name": path.stem, **part}])  # and it validates


def doc_tables() -> dict[str, dict[str, str]]:
    """Per `## `name`` section of docs/mechanisms.md: parameter -> default cell."""
    out: dict[str, dict[str, str]] = {}
    section = None
    for line in DOCS.read_text().splitlines():
        if m := re.match(r"## `(\w+)`", line):
            section = out.setdefault(m.group(1), {})
        elif section is not None and (m := re.match(r"\| `(\w+)` \| `([^`]*)` \|", line)):
            section[m.group(1)] = m.group(2)
    return out


@pytest.mark.parametrize("name", DOCUMENTED)
def test_docs_table_matches_the_config(name: str) -> None:
    assert (PARTS / f"{name}.yaml").exists()
    table = doc_tables()[name]
    assert {k: plain(yaml.safe_load(v)) for k, v in table.items()} == {k: plain(v) for k, v in defaults(name).items()}
