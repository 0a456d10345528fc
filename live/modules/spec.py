"""A rendered Lilypad module as a validated, typed job spec.

A rendered template is `{machine: {gpu, cpu (milli), ram (MB)[, vram, disk]}, job: {Spec: {...}}}` with a Bacalhau
style job spec (Docker image, entrypoint, environment, network, outputs, resources, timeout). Everything the
executor relies on is checked here, so a bad module is refused with an error naming the field before any deposit:
the image must be pinned by digest, the network must be `None`, outputs go to `/outputs`, and the container's
limits never exceed what the job asked the market for (`machine`, the vector the solver matches on).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mechanisms.config import ConfigError, require, require_int

IMAGE = re.compile(r"^(?P<name>[a-z0-9]+(?:[._/:-][a-zA-Z0-9]+)*)@(?P<digest>sha256:[0-9a-f]{64})$")
ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=", re.DOTALL)
QUANTITY = re.compile(r"^(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[a-zA-Z]*)$")
MEMORY_UNITS = {
    "": 1 / 2**20,
    "b": 1 / 2**20,
    "k": 1 / 1024,
    "kb": 1 / 1024,
    "ki": 1 / 1024,
    "kib": 1 / 1024,
    "m": 1,
    "mb": 1,
    "mi": 1,
    "mib": 1,
    "g": 1024,
    "gb": 1024,
    "gi": 1024,
    "gib": 1024,
}
DEFAULT_TIMEOUT = 1800  # seconds, Lilypad's usual module timeout
MAX_TIMEOUT = 86_400
DEFAULT_PIDS = 256
OUTPUTS = "/outputs"


@dataclass(frozen=True)
class Machine:
    """What the job asks the market for: the resource vector the solver matches against node capacities."""

    gpu: int
    cpu: int  # milli-CPU
    ram: int  # MiB
    vram: int = 0  # MiB
    disk: int = 0  # MiB

    def needs(self) -> tuple[int, int, int, int, int]:
        """In the twin's resource order `sim.market.RESOURCES` (cpu, gpu, vram, ram, disk)."""
        return self.cpu, self.gpu, self.vram, self.ram, self.disk


@dataclass(frozen=True)
class Limits:
    """What the container may use: the job's Resources where given, else its machine request."""

    cpu: int  # milli-CPU
    memory: int  # MiB
    gpu: int
    pids: int


@dataclass(frozen=True)
class JobSpec:
    """A validated job: the module it came from, its inputs, and what the executor needs to run it."""

    module: str
    inputs: Mapping[str, str]
    machine: Machine
    image: str  # name@sha256:<hex>
    entrypoint: tuple[str, ...]
    env: tuple[str, ...]  # KEY=VALUE
    limits: Limits
    timeout: int  # seconds
    rendered: str  # the rendered template, canonical JSON

    @property
    def digest(self) -> str:
        """The pinned content digest `sha256:<hex>` (the locally built image's id)."""
        return self.image.rsplit("@", 1)[1]

    @property
    def spec_id(self) -> str:
        """A hash of the rendered spec: two jobs with the same id run the same container the same way."""
        return hashlib.sha256(self.rendered.encode()).hexdigest()


MISSING = object()


def _get(obj: Mapping[str, Any], key: str, path: str, kind: type, default: Any = MISSING) -> Any:
    """`obj[key]`, of type `kind` (never a bool), or `default` when absent and a default exists."""
    field = f"{path}.{key}" if path else key
    if key not in obj:
        require(default is not MISSING, field, "<missing>", f"a {_kind(kind)}")
        return default
    value = obj[key]
    require(isinstance(value, kind) and not isinstance(value, bool), field, value, f"a {_kind(kind)}")
    return value


def _kind(kind: type) -> str:
    return {dict: "mapping", list: "list", str: "string", int: "integer"}.get(kind, kind.__name__)


def _quantity(value: Any, field: str, units: Mapping[str, float], allowed: str, zero: bool = False) -> int | None:
    """A Bacalhau resource quantity ("500m", "0.5", "64mb", "1Gi", 2) in the unit `units` maps to 1; "" = unset;
    zero only when `zero` (no GPUs, yes; no memory, no)."""
    if value in ("", None):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    m = QUANTITY.match(value.strip()) if isinstance(value, str) else None
    unit = m.group("unit").lower() if m else ""
    require(m is not None and unit in units, field, value, allowed)
    amount = float(m.group("num")) * units[unit]  # type: ignore[union-attr]
    ok = amount == int(amount) and (amount > 0 or (zero and amount == 0))
    require(ok, field, value, f"{allowed}, a {'' if zero else 'positive '}whole number of units")
    return int(amount)


def parse_machine(raw: Any) -> Machine:
    require(isinstance(raw, Mapping), "machine", raw, "a mapping with gpu, cpu (milli) and ram (MiB)")
    unknown = sorted(set(raw) - {"gpu", "cpu", "ram", "vram", "disk", "gpus"})
    require(not unknown, "machine", unknown, "the fields gpu, cpu, ram, vram, disk, gpus")
    raw = dict(raw)
    gpus = _get(raw, "gpus", "machine", list, [])  # Lilypad's per-GPU list: [{"vram": MiB}, ...]
    for i, g in enumerate(gpus):
        require(isinstance(g, Mapping) and set(g) <= {"vram"}, f"machine.gpus[{i}]", g, 'a mapping {"vram": MiB}')
        require_int(g.get("vram", 0), f"machine.gpus[{i}].vram", 0, 10**9)
    if gpus:
        raw.setdefault("vram", max(g.get("vram", 0) for g in gpus))
        raw.setdefault("gpu", len(gpus))
    values = {}
    for name in ("gpu", "cpu", "ram", "vram", "disk"):
        values[name] = raw.get(name, 0 if name in ("gpu", "vram", "disk") else None)
        require(values[name] is not None, f"machine.{name}", "<missing>", "an integer")
        require_int(values[name], f"machine.{name}", 0, 10**9)
    require(values["cpu"] > 0, "machine.cpu", values["cpu"], "a positive number of milli-CPUs")
    require(values["ram"] > 0, "machine.ram", values["ram"], "a positive number of MiB")
    return Machine(**values)


def parse_limits(spec: Mapping[str, Any], machine: Machine) -> Limits:
    """Container limits from `job.Spec.Resources` (Bacalhau's strings), each at most the machine request."""
    path = "job.Spec.Resources"
    res = _get(spec, "Resources", "job.Spec", dict, {})
    cpu = _quantity(res.get("CPU"), f"{path}.CPU", {"": 1000, "m": 1}, "a CPU quantity such as 0.5, 2 or 500m")
    mem = _quantity(res.get("Memory"), f"{path}.Memory", MEMORY_UNITS, "a memory quantity such as 64mb or 1Gi")
    gpu = _quantity(res.get("GPU"), f"{path}.GPU", {"": 1}, "a whole number of GPUs", zero=True)
    pids = res.get("Pids", DEFAULT_PIDS)
    pids = int(pids) if isinstance(pids, str) and pids.isdigit() else pids
    require_int(pids, f"{path}.Pids", 8, 1 << 20)
    limits = Limits(cpu or machine.cpu, mem or machine.ram, machine.gpu if gpu is None else gpu, pids)
    for field, got, asked in (
        ("CPU", limits.cpu, machine.cpu),
        ("Memory", limits.memory, machine.ram),
        ("GPU", limits.gpu, machine.gpu),
    ):
        require(got <= asked, f"{path}.{field}", res.get(field), f"at most the machine request ({asked})")
    return limits


def parse_spec(module: str, inputs: Mapping[str, str], data: Any) -> JobSpec:
    """Validate a rendered module (parsed JSON) into a JobSpec; a ConfigError names the first bad field."""
    require(isinstance(data, Mapping), "module", type(data).__name__, "a JSON object with machine and job")
    machine = parse_machine(data.get("machine"))
    job = _get(data, "job", "", dict)
    spec = _get(job, "Spec", "job", dict)
    engine = spec.get("Engine", "Docker")
    require(engine == "Docker", "job.Spec.Engine", engine, "'Docker'")
    docker = _get(spec, "Docker", "job.Spec", dict)
    image = _get(docker, "Image", "job.Spec.Docker", str)
    require(
        IMAGE.match(image) is not None,
        "job.Spec.Docker.Image",
        image,
        "an image pinned by digest, name[:tag]@sha256:<64 hex digits>",
    )
    entrypoint = _get(docker, "Entrypoint", "job.Spec.Docker", list, [])
    for i, arg in enumerate(entrypoint):
        require(isinstance(arg, str), f"job.Spec.Docker.Entrypoint[{i}]", arg, "a string")
    env = _get(docker, "EnvironmentVariables", "job.Spec.Docker", list, [])
    for i, var in enumerate(env):
        require(
            isinstance(var, str) and ENV.match(var) is not None,
            f"job.Spec.Docker.EnvironmentVariables[{i}]",
            var,
            "a string KEY=VALUE",
        )
    network = _get(spec, "Network", "job.Spec", dict, {"Type": "None"}).get("Type", "None")
    require(network == "None", "job.Spec.Network.Type", network, "'None' (jobs run without a network)")
    outputs = _get(spec, "Outputs", "job.Spec", list, [{"Name": "outputs", "Path": OUTPUTS}])
    paths = [o.get("Path") if isinstance(o, Mapping) else o for o in outputs]
    require(paths == [OUTPUTS], "job.Spec.Outputs", paths, f"exactly one output at {OUTPUTS}")
    timeout = _get(spec, "Timeout", "job.Spec", int, DEFAULT_TIMEOUT)
    require_int(timeout, "job.Spec.Timeout", 1, MAX_TIMEOUT)
    limits = parse_limits(spec, machine)
    return JobSpec(
        module,
        dict(inputs),
        machine,
        image,
        tuple(entrypoint),
        tuple(env),
        limits,
        timeout,
        json.dumps(data, sort_keys=True, separators=(",", ":")),
    )


def decode(rendered: str) -> Any:
    """Parse rendered JSON; duplicate keys are refused (with last-wins parsing, a repeated key could replace the
    image after the checks a reader made by eye)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup is not None:
            raise ConfigError(f"rendered module repeats the key {dup!r}: allowed each key once per object")
        return dict(items)

    try:
        return json.loads(rendered, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        line = rendered.splitlines()[exc.lineno - 1] if rendered.splitlines() else ""
        raise ConfigError(
            f"rendered module is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}: {line.strip()!r}"
        ) from None
