"""The layer order of docs/architecture.md ("Layers") holds in the code: the table there is parsed and every import
of every module (module level, inside functions, under TYPE_CHECKING) is checked against it; a deliberate
violation is detected; every package is placed in the table and installed by pyproject.toml.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
RL_STACK = ("ray", "gymnasium", "pettingzoo", "torch")
#: Top-level directories that hold no layered code (tests and notebooks may import anything).
NOT_LAYERED = ("tests", "notebooks", "configs", "docs", "outputs", "multirun", "results")


@dataclass(frozen=True)
class Layer:
    package: str
    may_import: frozenset[str]
    rl_stack: bool


def parse_layers(text: str) -> dict[str, Layer]:
    """The table between the `layers: begin` and `layers: end` markers: package | may import | RL stack."""
    block = re.search(r"<!-- layers: begin.*?-->(.*?)<!-- layers: end -->", text, re.S)
    assert block, "docs/architecture.md has no layers table"
    layers = {}
    for line in block.group(1).strip().splitlines()[2:]:  # skip the header and the |---| rule
        package, may, rl = (cell.strip() for cell in line.strip().strip("|").split("|"))
        allowed = frozenset(re.findall(r"`(\w+)`", may))
        layers[package.strip("`")] = Layer(package.strip("`"), allowed, {"yes": True, "no": False}[rl])
    return layers


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import anywhere in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def violations(root: Path, layers: dict[str, Layer]) -> list[str]:
    """Every import under `root` that the table forbids, as `file:line: package imports module (rule)`."""
    found = []
    for package, layer in layers.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, module in imported_modules(path):
                where = f"{path.relative_to(root)}:{line}: {package} imports {module}"
                if module in layers and module != package and module not in layer.may_import:
                    found.append(f"{where} (allowed: {sorted(layer.may_import) or 'no project package'})")
                elif module in RL_STACK and not layer.rl_stack:
                    found.append(f"{where} (no RL stack below marl)")
    return found


LAYERS = parse_layers(DOC.read_text())


def test_the_code_follows_the_layer_table() -> None:
    assert violations(REPO, LAYERS) == []


def test_the_table_is_a_strict_order() -> None:
    """Each package may import only packages listed above it: no cycle can be allowed."""
    order = list(LAYERS)
    for i, layer in enumerate(LAYERS.values()):
        assert layer.may_import <= set(order[:i]), f"{layer.package} may import a package listed after it"


def test_every_package_is_placed_and_installed() -> None:
    packages = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
    scripts = {
        p.name
        for p in REPO.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in NOT_LAYERED and any(p.glob("*.py"))
    }
    assert packages | scripts == set(LAYERS), "a package or script directory is missing from docs/architecture.md"
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {name.rstrip("*") for name in include} == packages


@pytest.mark.parametrize(
    ("package", "source", "rule"),
    [
        (
            "sim",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from agents.population import Population\n",
            "sim imports agents",
        ),
        ("mechanisms", "def f():\n    import sim.engine\n", "mechanisms imports sim"),
        ("agents", "import gymnasium\n", "no RL stack below marl"),
        ("twin", "from marl.env import MarketEnv\n", "twin imports marl"),
    ],
)
def test_a_deliberate_violation_is_detected(tmp_path: Path, package: str, source: str, rule: str) -> None:
    for name in LAYERS:
        (tmp_path / name).mkdir()
    (tmp_path / package / "bad.py").write_text(source)
    (tmp_path / "experiments" / "fine.py").write_text("import ray\nfrom marl.env import MarketEnv\n")
    found = violations(tmp_path, LAYERS)
    assert len(found) == 1 and found[0].startswith(f"{package}/bad.py:") and rule in found[0], found
