"""Compile the Solidity sources with the pinned npm solc (solcjs) into cached artifacts (ABI and bytecode).

`python -m contracts.build` (and `make contracts`) compiles; `load()` returns the artifacts, compiling first when a
source, an imported OpenZeppelin file, the compiler or the settings changed (the cache key is a hash of the whole
compiler input). Artifacts live in the ignored `build/contracts/` and are never edited by hand.

The build also refuses to produce artifacts when the Solidity enums of `DealProtocol.sol` drift from
`mechanisms.protocol` (a missing, extra or reordered state, reason, direction or step).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from mechanisms.protocol import DealState, Direction, Reason, Step

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("contracts/src", "contracts/test")
NODE_MODULES = ROOT / "node_modules"
BUILD_DIR = ROOT / "build" / "contracts"
SOLC_VERSION = "0.8.37"
SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",  # explicit: anvil and py-evm both run Cancun; transient storage for the reentrancy guard
    "optimizer": {"enabled": True, "runs": 200},  # 1000 runs puts Deals (with the consortium) past EIP-170
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"], "": ["ast"]}},
}
#: Solidity enum (in DealProtocol.sol) -> the Python enum it must mirror, member by member.
MIRRORED: dict[str, type[IntEnum]] = {"State": DealState, "Reason": Reason, "Direction": Direction, "Step": Step}
_IMPORT = re.compile(r'^\s*import\s+(?:\{[^}]*\}\s+from\s+)?"([^"]+)"\s*;', re.MULTILINE)


class BuildError(RuntimeError):
    """The compiler, its input or the protocol drift check failed; the message says which file and why."""


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: its ABI and creation bytecode (hex, no 0x)."""

    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: str


def project_sources() -> dict[str, str]:
    """The project's Solidity files, keyed by unit name (path relative to the repository root)."""
    out = {}
    for d in SOURCE_DIRS:
        for path in sorted((ROOT / d).glob("*.sol")):
            out[path.relative_to(ROOT).as_posix()] = path.read_text()
    return out


def _resolve(unit: str, target: str) -> str:
    if target.startswith("."):
        return os.path.normpath(os.path.join(os.path.dirname(unit), target)).replace(os.sep, "/")
    return target


def _read_library(unit: str) -> str:
    path = NODE_MODULES / unit
    if not path.is_file():
        raise BuildError(f"import {unit!r} not found under {NODE_MODULES}; run `make setup` (npm ci)")
    return path.read_text()


def with_imports(sources: Mapping[str, str]) -> dict[str, str]:
    """`sources` plus every file they import, transitively (library files from node_modules)."""
    out = dict(sources)
    todo = list(out)
    while todo:
        unit = todo.pop()
        for target in _IMPORT.findall(out[unit]):
            dep = _resolve(unit, target)
            if dep not in out:
                out[dep] = sources[dep] if dep in sources else _read_library(dep)
                todo.append(dep)
    return dict(sorted(out.items()))


def compiler_input(sources: Mapping[str, str]) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in with_imports(sources).items()},
        "settings": SETTINGS,
    }


def _run_solc(payload: str) -> dict[str, Any]:
    script = ROOT / "contracts" / "solc.cjs"
    if not (NODE_MODULES / "solc").is_dir():
        raise BuildError(f"npm package solc missing under {NODE_MODULES}; run `make setup` (npm ci)")
    proc = subprocess.run(["node", str(script)], input=payload, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise BuildError(f"solc failed (exit {proc.returncode}): {proc.stderr.strip()[:2000]}")
    return json.loads(proc.stdout)


def _errors(output: Mapping[str, Any]) -> Iterator[str]:
    for e in output.get("errors", []):
        if e.get("severity") == "error":
            yield e.get("formattedMessage", e.get("message", str(e)))


def enum_members(output: Mapping[str, Any], unit: str) -> dict[str, list[str]]:
    """Enum name -> member names, from the AST of source `unit`."""
    found: dict[str, list[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("nodeType") == "EnumDefinition":
                found[node["name"]] = [m["name"] for m in node["members"]]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(output["sources"][unit]["ast"])
    return found


def check_protocol(output: Mapping[str, Any], unit: str = "contracts/src/DealProtocol.sol") -> None:
    """Raise BuildError if an enum of `unit` differs from its Python twin in `mechanisms.protocol`."""
    enums = enum_members(output, unit)
    for sol_name, py_enum in MIRRORED.items():
        want = [m.name for m in sorted(py_enum, key=int)]
        got = enums.get(sol_name)
        if got != want:
            raise BuildError(f"{unit}: enum {sol_name} is {got}, but mechanisms.protocol.{py_enum.__name__} is {want}")


def compile_sources(sources: Mapping[str, str], check: bool = True) -> dict[str, Artifact]:
    """Compile `sources` (unit name -> text; imports are added) and return the artifacts by contract name.

    Results are cached under build/contracts/ by a hash of the full compiler input.
    """
    payload = json.dumps(compiler_input(sources), sort_keys=True)
    key = hashlib.sha256(f"{SOLC_VERSION}\n{payload}".encode()).hexdigest()[:24]
    cached = BUILD_DIR / f"{key}.json"
    if cached.is_file():
        data = json.loads(cached.read_text())
    else:
        output = _run_solc(payload)
        errors = list(_errors(output))
        if errors:
            raise BuildError("solc reported errors:\n" + "\n".join(errors))
        if check and "contracts/src/DealProtocol.sol" in output.get("sources", {}):
            check_protocol(output)
        data = {
            unit: {name: {"abi": c["abi"], "bytecode": c["evm"]["bytecode"]["object"]} for name, c in cs.items()}
            for unit, cs in output["contracts"].items()
            if not unit.startswith("@")
        }
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, cached)
    artifacts: dict[str, Artifact] = {}
    for unit, contracts in data.items():
        for name, c in contracts.items():
            artifacts[name] = Artifact(name, unit, c["abi"], c["bytecode"])
    return artifacts


def load() -> dict[str, Artifact]:
    """The project's artifacts, compiled now if any source changed since the last build."""
    return compile_sources(project_sources())


def main() -> None:
    try:
        artifacts = load()
    except BuildError as exc:
        sys.exit(f"contracts.build: {exc}")
    for name, a in sorted(artifacts.items()):
        print(f"{name:20s} {a.source:40s} {len(a.bytecode) // 2:6d} bytes")


if __name__ == "__main__":
    main()
