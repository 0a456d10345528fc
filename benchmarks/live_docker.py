"""Executor overhead: a module job through `live.executor` against bare `docker run` of the same image, side by side.

Per module, three ways of running the same image and command, interleaved round-robin so a busy shared machine
slows them alike (after one warm-up each):

- `executor`: `Executor.run` (create, start, wait, inspect, logs, remove, result hashing) via the Docker SDK;
- `docker run (contained)`: the docker CLI with the executor's containment flags and an /outputs bind mount (the
  CLI cannot disable networking outright, so it uses `--network none`, which sets up a network sandbox);
- `docker run (bare)`: the docker CLI with `--rm` only.

It prints the median wall time of each and the executor's ratio to both. The engine is the one that answers, or
the project's own started for the run (and stopped after it); the example modules are built first.

    .venv/bin/python benchmarks/live_docker.py [--repeats 15] [--modules cowsay:v1 hashseq:v1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from live import docker_engine
from live.executor import Capabilities, Executor
from live.modules import JobSpec, load_module
from live.modules.build import build

INPUTS = {"cowsay:v1": {"Message": "moo"}, "hashseq:v1": {"N": "100000"}}


def cli_run(docker: str, host: str, spec: JobSpec, outputs: Path | None) -> Callable[[], None]:
    """A `docker run` of the spec's image and entrypoint: contained like the executor when `outputs` is given."""
    flags = ["--rm"]
    if outputs is not None:
        m = f"{spec.limits.memory}m"
        flags += [
            "--network",
            "none",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--user",
            "1000:1000",
            "--memory",
            m,
            "--memory-swap",
            m,
            "--cpus",
            str(spec.limits.cpu / 1000),
            "--pids-limit",
            str(spec.limits.pids),
            "--tmpfs",
            f"/tmp:rw,nosuid,nodev,size={m},mode=1777",
            "-v",
            f"{outputs}:/outputs",
        ]
    cmd = [docker, "-H", host, "run", *flags, "--entrypoint", spec.entrypoint[0], spec.digest, *spec.entrypoint[1:]]

    def run() -> None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return run


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--modules", nargs="+", default=list(INPUTS))
    parser.add_argument("--out", help="also write the rows as JSON here (read by experiments.readme_tables)")
    args = parser.parse_args()
    docker = shutil.which("docker")
    if docker is None:
        raise SystemExit("the docker CLI is needed for the bare `docker run` baseline (Debian's docker.io has it)")
    with (
        docker_engine.engine() as host,
        closing(docker_engine.client(host)) as client,
        tempfile.TemporaryDirectory(prefix="live-bench-") as tmp,
    ):
        work = Path(tmp)
        lock = work / "images.json"
        build(client, args.modules, lock)
        executor = Executor(client, work / "jobs", Capabilities.detect(work))
        load = os.getloadavg()[0]
        print(
            f"{args.repeats} interleaved runs per way after a warm-up, median wall time; {os.cpu_count()} CPUs, "
            f"load average {load:.1f} at start"
        )
        print(
            "| module | executor (s) | docker run, contained (s) | docker run, bare (s) | executor / contained "
            "| executor / bare |"
        )
        print("|---|---|---|---|---|---|")
        rows = []
        for ref in args.modules:
            spec = load_module(ref, INPUTS.get(ref, {}), lock=lock)
            outputs = work / "cli-outputs"
            outputs.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                os.chown(outputs, 1000, 1000)
            ways = {
                "executor": lambda spec=spec: executor.run(spec, "bench"),
                "contained": cli_run(docker, host, spec, outputs),
                "bare": cli_run(docker, host, spec, None),
            }
            times: dict[str, list[float]] = {name: [] for name in ways}
            for fn in ways.values():
                fn()  # warm-up
            for _ in range(args.repeats):
                for name, fn in ways.items():
                    times[name].append(timed(fn))
            med = {name: statistics.median(ts) for name, ts in times.items()}
            rows.append({"module": ref, **med, "repeats": args.repeats, "cpus": os.cpu_count(), "load": load})
            print(
                f"| {ref} | {med['executor']:.3f} | {med['contained']:.3f} | {med['bare']:.3f} "
                f"| {med['executor'] / med['contained']:.2f}x | {med['executor'] / med['bare']:.2f}x |"
            )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
