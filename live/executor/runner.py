"""Run a job spec in a contained Docker container and return its result and result id.

Containment, every option of it from the spec: no network, a read-only root, a size-limited tmpfs at /tmp, all
capabilities dropped, no-new-privileges, a non-root user, memory (no swap), CPU and pids limits, the module's
timeout (the container is killed at expiry and the result is an error), and GPUs passed as a device request only
when the module asks for them and the node has them. The job writes to /outputs, a fresh per-job host directory
owned by the job user; the result directory (outputs, stdout, stderr, exitCode) is hashed into the result id.

The engine must run on this host: the outputs directory is a bind mount.

A job a node cannot serve (its machine request exceeds the node's capabilities, or its pinned image is absent) is
refused before anything runs: it must never have been matched to this node.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import requests
from docker.types import DeviceRequest, LogConfig

from live.executor.capabilities import Capabilities, fits, shortfall
from live.executor.results import ResultError, result_id
from live.modules.images import JOB_USER
from live.modules.spec import OUTPUTS, JobSpec

LOG_LIMIT = "16m"  # per stream kept by the engine; a job's stdout/stderr beyond it is dropped
MAX_OUTPUT_BYTES = 256 << 20
KILL_GRACE = 30.0  # seconds to wait for a killed container to be reported exited


class ExecutorError(RuntimeError):
    """The job cannot run on this node at all (not an error result: the job never started)."""


@dataclass(frozen=True)
class ExecResult:
    """A finished job. `status` is "ok" or "error"; `error` says why ("exit 3", "memory", "timeout", "outputs");
    `result_id` hashes the result directory, errors included, so a re-run can be compared either way."""

    job_id: str
    status: str
    error: str | None
    exit_code: int | None
    result_id: str
    result_dir: Path
    seconds: float  # from container start to exit (or kill)
    container: dict[str, Any] = field(default_factory=dict, repr=False)  # the engine's inspect data at exit
    #: wall seconds of each stage (PHASES): where a job's time goes, for the benchmarks
    timings: dict[str, float] = field(default_factory=dict, repr=False)


PHASES = ("prepare", "create", "start", "wait", "collect", "remove", "hash")


def device_requests(spec: JobSpec, caps: Capabilities) -> list[DeviceRequest]:
    """GPUs for the container: `spec.limits.gpu` of them when the module asks and the node has that many."""
    if spec.limits.gpu == 0:
        return []
    if caps.gpu < spec.limits.gpu:
        raise ExecutorError(f"module {spec.module} asks for {spec.limits.gpu} GPU(s); this node has {caps.gpu}")
    return [DeviceRequest(count=spec.limits.gpu, capabilities=[["gpu"]])]  # what `docker run --gpus N` sends


def container_options(spec: JobSpec, outputs: Path, caps: Capabilities, job_id: str) -> dict[str, Any]:
    """The `containers.create` keyword arguments that run `spec` contained, writing to host dir `outputs`."""
    memory = f"{spec.limits.memory}m"
    return {
        "image": spec.digest,
        "entrypoint": list(spec.entrypoint) or None,
        "command": [] if spec.entrypoint else None,
        "environment": list(spec.env),
        "user": f"{JOB_USER[0]}:{JOB_USER[1]}",
        "network_mode": "none",
        "network_disabled": True,  # no network sandbox at all: as safe, and quicker to start
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={memory},mode=1777"},
        "volumes": {str(outputs): {"bind": OUTPUTS, "mode": "rw"}},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": memory,
        "memswap_limit": memory,
        "nano_cpus": spec.limits.cpu * 1_000_000,
        "pids_limit": spec.limits.pids,
        "device_requests": device_requests(spec, caps),
        "ipc_mode": "private",
        "log_config": LogConfig(type="json-file", config={"max-size": LOG_LIMIT, "max-file": "1"}),
        "labels": {"twin.job": job_id, "twin.module": spec.module},
        "detach": True,
    }


def _error(timed_out: bool, oom_killed: bool, exit_code: int) -> str | None:
    """Why a finished container is an error result (the first cause that applies), or None."""
    if timed_out:
        return "timeout"
    if oom_killed:
        return "memory"
    return f"exit {exit_code}" if exit_code != 0 else None


class Executor:
    """Runs jobs on one Docker engine for a node with capabilities `caps`; results go under `work_dir/<job id>`."""

    def __init__(
        self, client: docker.DockerClient, work_dir: Path, caps: Capabilities, max_output_bytes: int = MAX_OUTPUT_BYTES
    ) -> None:
        self.client, self.caps, self.max_output_bytes = client, caps, max_output_bytes
        self.work_dir = Path(work_dir).resolve()  # bind mounts need absolute paths (a relative one names a volume)
        self._images: set[str] = set()  # digests seen in the engine (a digest names immutable content)

    def check(self, spec: JobSpec) -> None:
        """Refuse a job this node cannot serve: resources short, or the pinned image not in the engine."""
        if not fits(spec.machine, self.caps):
            lacks = ", ".join(shortfall(spec.machine, self.caps))
            raise ExecutorError(f"module {spec.module} does not fit this node: {lacks}")
        if spec.digest in self._images:
            return
        try:
            self.client.images.get(spec.digest)
        except docker.errors.ImageNotFound:
            raise self._absent(spec) from None
        self._images.add(spec.digest)

    def _absent(self, spec: JobSpec) -> ExecutorError:
        self._images.discard(spec.digest)
        return ExecutorError(
            f"module {spec.module}: image {spec.image} is not in this engine; build it with "
            "`python -m live.modules build`"
        )

    def _fresh_dir(self, job_id: str) -> Path:
        job_dir = self.work_dir / job_id
        shutil.rmtree(job_dir, ignore_errors=True)
        (job_dir / "outputs").mkdir(parents=True)
        if os.geteuid() == 0:
            os.chown(job_dir / "outputs", *JOB_USER)
        else:  # the job user cannot be given the directory: let it write anyway
            os.chmod(job_dir / "outputs", 0o777)
        return job_dir

    def run(self, spec: JobSpec, job_id: str | None = None) -> ExecResult:
        """Run `spec` to completion, to its timeout, or to its death; collect and hash its result. `job_id` (default:
        the spec's id) names the result directory: concurrent runs in one work dir need distinct ids (deal ids)."""
        job_id = job_id or spec.spec_id
        if not job_id.replace("-", "").isalnum():
            raise ExecutorError(f"job_id={job_id!r} is invalid: allowed letters, digits and -")
        marks = [time.monotonic()]
        self.check(spec)
        job_dir = self._fresh_dir(job_id)
        marks.append(time.monotonic())
        try:
            container = self.client.containers.create(**container_options(spec, job_dir / "outputs", self.caps, job_id))
        except docker.errors.ImageNotFound:  # removed since it was seen: still refused before anything ran
            raise self._absent(spec) from None
        try:
            marks.append(start := time.monotonic())
            container.start()
            marks.append(time.monotonic())
            timed_out = False
            try:
                container.wait(timeout=spec.timeout)
            except requests.exceptions.RequestException:  # the wait's read timeout: the job ran out of time
                timed_out = True
                with contextlib.suppress(docker.errors.APIError):  # it may have exited right at the deadline
                    container.kill()
                container.wait(timeout=KILL_GRACE)
            marks.append(time.monotonic())
            seconds = marks[-1] - start
            container.reload()
            state = container.attrs["State"]
            (job_dir / "stdout").write_bytes(container.logs(stdout=True, stderr=False))
            (job_dir / "stderr").write_bytes(container.logs(stdout=False, stderr=True))
            marks.append(time.monotonic())
        finally:
            container.remove(force=True)
        marks.append(time.monotonic())
        exit_code = int(state["ExitCode"])
        (job_dir / "exitCode").write_text(f"{exit_code}\n")
        error = _error(timed_out, bool(state.get("OOMKilled")), exit_code)
        try:
            rid = result_id(job_dir, self.max_output_bytes)
        except ResultError as exc:  # keep what can be kept: the streams, the status and why outputs were dropped
            error = f"outputs: {exc}"
            shutil.rmtree(job_dir / "outputs")
            (job_dir / "error").write_text(error + "\n")
            rid = result_id(job_dir, self.max_output_bytes)
        marks.append(time.monotonic())
        timings = {name: b - a for name, a, b in zip(PHASES, marks[:-1], marks[1:], strict=True)}
        return ExecResult(
            job_id,
            "ok" if error is None else "error",
            error,
            exit_code,
            rid,
            job_dir,
            seconds,
            container.attrs,
            timings,
        )
