"""The parameter files and the parameter tables agree with the Config dataclasses they document."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml

from mechanisms import MechanismStack, registered
from mechanisms.config import ConfigError, Range, describe, field_hints

ROOT = Path(__file__).resolve().parents[2]
PARTS = ROOT / "configs" / "mechanism" / "parts"
DOCS = ROOT / "docs" / "mechanisms.md"
DOCUMENTED = tuple(sorted(registered()))  # every registered mechanism has a parameter table


def defaults(name: str) -> dict[str, Any]:
    return {
        f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
        for f in dataclasses.fields(registered()[name].Config)
    }


def plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("path", sorted(PARTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_part_lists_every_field_at_its_default(path: Path) -> None:
    part = yaml.safe_load(path.read_text())
    assert part.pop("enabled") is True
    assert {k: plain(v) for k, v in part.items()} == {k: plain(v) for k, v in defaults(path.stem).items()}
    MechanismStack.from_config([{"name": path.stem, **part}])  # and it validates


def doc_tables() -> dict[str, dict[str, tuple[str, str]]]:
    """Per `## `name`` section of docs/mechanisms.md: parameter -> (default cell, allowed cell)."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    section = None
    for line in DOCS.read_text().splitlines():
        if m := re.match(r"## `(\w+)`", line):
            section = out.setdefault(m.group(1), {})
        elif section is not None and (m := re.match(r"\| `(\w+)` \| `([^`]*)` \| (.*?) \| ", line)):
            section[m.group(1)] = (m.group(2), m.group(3))
    return out


@pytest.mark.parametrize("name", DOCUMENTED)
def test_docs_table_matches_the_config(name: str) -> None:
    assert (PARTS / f"{name}.yaml").exists()
    table = doc_tables()[name]
    assert {k: plain(yaml.safe_load(v)) for k, (v, _) in table.items()} == {
        k: plain(v) for k, v in defaults(name).items()
    }


@pytest.mark.parametrize("name", DOCUMENTED)
def test_docs_allowed_column_is_what_the_field_types_check(name: str) -> None:
    """The "allowed" cell is the description of the field's annotated type and bounds (what `from_mapping`
    enforces), optionally followed by `; ` and the rules `validate` adds across fields."""
    hints = field_hints(registered()[name].Config)
    for param, (_, allowed) in doc_tables()[name].items():
        derived = describe(hints[param], markdown=True)
        assert allowed == derived or allowed.startswith(f"{derived}; "), f"{name}.{param}: {allowed!r} vs {derived!r}"


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_annotated_bound_is_enforced(name: str) -> None:
    """A value just outside each field's declared range is refused with an error naming the field and quoting the
    same allowed text as the docs."""
    for param, hint in field_hints(registered()[name].Config).items():
        for bad in outside(hint):
            with pytest.raises(ConfigError, match=re.escape(f"mechanism.stack[0].{param}")):
                MechanismStack.from_config([{"name": name, param: bad}])


def outside(hint: Any) -> list[Any]:
    """Values of the wrong type, and just past each numeric bound, for a field type."""
    bare, bounds = hint, []
    while typing.get_origin(bare) is Annotated or (typing.get_origin(bare) in (typing.Union, types.UnionType)):
        if typing.get_origin(bare) is Annotated:
            bounds += [m for m in typing.get_args(bare)[1:] if isinstance(m, Range)]
        bare = next(a for a in typing.get_args(bare) if a is not type(None))
    bad: list[Any] = ["not a value"] if bare is not str else [3]
    for r in bounds:
        step = 1 if bare is int else 1e-9
        bad += [
            v for v in (None if r.lo is None else r.lo - step, None if r.hi is None else r.hi + step) if v is not None
        ]
    if typing.get_origin(bare) in (tuple, list):
        bad = [[v] for v in outside(typing.get_args(bare)[0]) if v != "not a value"] + ["not a list"]
    return bad
