"""What a resource provider has (CPU, GPUs, VRAM, RAM, disk) and whether a module fits it.

A node advertises what it finds on its host, or less. Whether a job fits a node is the twin's own matching rule
(`sim.offers.compatible`, the Lilypad solver's rule) applied to the job's machine request and the node's
capacities, so the live solver and the twin can never disagree on it: a GPU module never lands on a node without
a GPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from live.modules.spec import Machine
from sim.market import RESOURCES
from sim.offers import compatible


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    vram: int  # MiB


@dataclass(frozen=True)
class Capabilities:
    """A node's capacities in the twin's resource order; `vram` is per GPU (the smallest GPU's)."""

    cpu: int  # milli-CPU
    gpu: int
    vram: int  # MiB
    ram: int  # MiB
    disk: int  # MiB

    def vector(self) -> tuple[int, int, int, int, int]:
        return tuple(getattr(self, r) for r in RESOURCES)  # type: ignore[return-value]

    @classmethod
    def detect(cls, work_dir: Path, gpus: list[Gpu] | None = None) -> Capabilities:
        """What this host offers: CPUs this process may use, memory (the cgroup limit if lower), GPUs found by
        `nvidia-smi`, free disk under `work_dir`."""
        gpus = detect_gpus() if gpus is None else gpus
        work_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            cpu=len(os.sched_getaffinity(0)) * 1000,
            gpu=len(gpus),
            vram=min((g.vram for g in gpus), default=0),
            ram=memory_mib(),
            disk=shutil.disk_usage(work_dir).free >> 20,
        )


def detect_gpus() -> list[Gpu]:
    """NVIDIA GPUs on this host, via nvidia-smi; none when it is missing or fails."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return parse_gpus(out)


def parse_gpus(csv: str) -> list[Gpu]:
    """nvidia-smi's `index, name, memory.total` CSV lines."""
    gpus = []
    for line in csv.strip().splitlines():
        index, rest = line.split(",", 1)
        name, vram = rest.rsplit(",", 1)
        gpus.append(Gpu(int(index), name.strip(), int(float(vram))))
    return gpus


def memory_mib() -> int:
    """Physical memory, capped by this process's cgroup memory limit (v2 or v1) when one is set."""
    with open("/proc/meminfo") as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(limit).read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            total = min(total, int(value))
    return total >> 20


def fits(machine: Machine, caps: Capabilities) -> bool:
    """The twin's matching rule on resources alone (any module, market price, a common mediator)."""
    return bool(compatible(machine.needs(), 0, False, 0, 1, caps.vector(), 0, 0, 1))


def shortfall(machine: Machine, caps: Capabilities) -> list[str]:
    """The resources `caps` lacks for `machine`, e.g. ['gpu: needs 1, has 0']."""
    return [
        f"{r}: needs {n}, has {c}" for r, n, c in zip(RESOURCES, machine.needs(), caps.vector(), strict=True) if n > c
    ]
