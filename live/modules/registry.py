"""Resolve `name:tag` to a module directory, render its template with the inputs, validate the result.

Lilypad resolves a module to a git repository at a tag; here a module is a local directory
`<modules root>/<name>/<tag>/` holding `lilypad_module.json.tmpl` (and `image/`, the files of its locally built
image). Roots are `$LIVE_MODULES_PATH` (colon separated) then the project's `live/modules_repo`. Built images are
recorded in a lock file under the runtime directory (`name:tag -> twin/name:tag@sha256:<id>`), written by
`python -m live.modules build`, which is how `{{ image }}` resolves.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from live.modules.spec import JobSpec, decode, parse_spec
from live.modules.template import Template, TemplateError, parse, render
from mechanisms.config import ConfigError

TEMPLATE = "lilypad_module.json.tmpl"
BUILTIN_ROOT = Path(__file__).resolve().parents[1] / "modules_repo"
DEFAULT_LOCK = Path(__file__).resolve().parents[2] / ".runtime" / "modules" / "images.json"
REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]*):(?P<tag>[A-Za-z0-9][A-Za-z0-9._-]*)$")
INPUT_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ModuleError(ConfigError):
    """A module cannot be used: unknown, a bad template, a bad or missing input, or an invalid rendered spec."""


@dataclass(frozen=True)
class Module:
    """A resolved module: its reference, directory and parsed template."""

    name: str
    tag: str
    path: Path
    template: Template

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def has_image(self) -> bool:
        """Whether the module ships files for a locally built image (else its template pins an image itself)."""
        return (self.path / "image").is_dir()


def roots() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("LIVE_MODULES_PATH", "").split(":") if p]
    return [*extra, BUILTIN_ROOT]


def available(search: Iterable[Path] | None = None) -> list[str]:
    """Every `name:tag` found under the module roots."""
    refs = {f"{t.parent.parent.name}:{t.parent.name}" for r in (search or roots()) for t in r.glob(f"*/*/{TEMPLATE}")}
    return sorted(refs)


def resolve(ref: str, search: Iterable[Path] | None = None) -> Module:
    """The module `name:tag`, parsed; ModuleError if the reference is malformed, unknown or its template bad."""
    m = REF.match(ref) if isinstance(ref, str) else None
    if m is None:
        raise ModuleError(f"module={ref!r} is invalid: allowed name:tag (lower-case name), e.g. cowsay:v1")
    search = list(search or roots())
    path = next((r / m["name"] / m["tag"] for r in search if (r / m["name"] / m["tag"] / TEMPLATE).is_file()), None)
    if path is None:
        raise ModuleError(f"module={ref!r} not found under {[str(r) for r in search]}: allowed {available(search)}")
    try:
        template = parse((path / TEMPLATE).read_text())
    except TemplateError as exc:
        raise ModuleError(f"module {ref}: {TEMPLATE} {exc}") from None
    return Module(m["name"], m["tag"], path, template)


def parse_inputs(pairs: Iterable[str]) -> dict[str, str]:
    """`-i Key=Value` arguments as a mapping; the value is everything after the first `=`."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not INPUT_KEY.match(key):
            raise ModuleError(
                f"input {pair!r} is invalid: allowed Key=Value with Key a letter or _ then letters, digits or _"
            )
        if key in out:
            raise ModuleError(f"input {key!r} is given twice: allowed once")
        out[key] = value
    return out


def read_lock(lock: Path = DEFAULT_LOCK) -> dict[str, str]:
    """`name:tag -> pinned image` for the modules built on this machine."""
    try:
        return json.loads(lock.read_text())
    except FileNotFoundError:
        return {}


def write_lock(entries: Mapping[str, str], lock: Path = DEFAULT_LOCK) -> None:
    """Merge `entries` into the lock file (written whole, then renamed, so a reader never sees half of it)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    merged = {**read_lock(lock), **entries}
    tmp = lock.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    tmp.replace(lock)


def load_module(
    ref: str, inputs: Mapping[str, str] | None = None, lock: Path = DEFAULT_LOCK, search: Iterable[Path] | None = None
) -> JobSpec:
    """Resolve, render and validate module `ref` with raw `inputs`; every failure is a ModuleError naming the
    module and the field, raised before anything is run or paid."""
    module = resolve(ref, search)
    inputs = dict(inputs or {})
    bad = [k for k in inputs if not isinstance(k, str) or not INPUT_KEY.match(k) or not isinstance(inputs[k], str)]
    if bad:
        raise ModuleError(f"module {ref}: input {bad[0]!r} is invalid: allowed string keys and string values")
    unknown = sorted(set(inputs) - module.template.inputs)
    if unknown:
        raise ModuleError(
            f"module {ref}: input {unknown[0]!r} is not used by the template: allowed {sorted(module.template.inputs)}"
        )

    def image() -> str:
        pinned = read_lock(lock).get(ref)
        if pinned is None:
            raise ModuleError(f"module {ref}: its image is not built: run `python -m live.modules build`")
        return pinned

    try:
        return parse_spec(ref, inputs, decode(render(module.template, inputs, image)))
    except (TemplateError, ConfigError) as exc:
        if isinstance(exc, ModuleError):
            raise
        raise ModuleError(f"module {ref}: {exc}") from None
