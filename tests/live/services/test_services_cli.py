"""Each service as its own process (`python -m live.services.<role>`, Hydra config, loopback by default): a job
posted to the creator's API settles across four processes that share nothing but HTTP, the chain and the
deployment file; a non-loopback address and a missing solver URL are refused before anything starts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from experiments.analysis.configs import compose_plain
from live.chain.node import anvil_available
from live.services.network import Network
from tests.live.services.conftest import SMALL

pytestmark = [pytest.mark.xdist_group("docker")]
ROOT = Path(__file__).resolve().parents[3]
MARKET = ["market.n_clients=1", "market.n_nodes=1", "market.n_mediators=1"]


def service(role: str, log: Path, *args: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Start one service process (port chosen by the OS) and return it with the URL it prints once listening."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"live.services.{role}", *MARKET, *args], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    end = time.monotonic() + 90
    while time.monotonic() < end:
        for line in log.read_text().splitlines():
            if " listening on " in line:
                return proc, line.rsplit(" ", 1)[1]
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"{role} did not start: {log.read_text()[-3000:]}")


def test_services_as_processes_settle_a_job(docker_client, docker_host, images_lock, tmp_path) -> None:
    if not anvil_available():
        pytest.skip("anvil is not installed (npm ci)")
    net = Network(compose_plain("live", [*SMALL, "block_s=0.1"]), tmp_path / "net", docker_client, images_lock)
    net.start_chain()
    procs: list[subprocess.Popen] = []
    try:
        dep = tmp_path / "deployment.json"
        dep.write_text(json.dumps(net.record))
        env = {**os.environ, "DOCKER_HOST": docker_host, "PYTHONPATH": str(ROOT)}
        common = [f"deployment={dep}", f"lock={images_lock}", "keys=dev"]
        state = [f"state_dir={tmp_path}/solver"]
        proc, solver = service("solver", tmp_path / "solver.log", *common, *state, env=env)
        procs.append(proc)
        for role, policy in (
            ("mediator", "{strategy: honest}"),
            ("provider", "{strategy: honest}"),
            ("creator", "{strategy: checker, q: 0.0}"),
        ):
            args = [f"solver_url={solver}", f"state_dir={tmp_path}/{role}", f"policy={policy}"]
            proc, url = service(role, tmp_path / f"{role}.log", *common, *args, env=env)
            procs.append(proc)
        creator = url
        time.sleep(0.5)  # the provider's first offer
        job = requests.post(f"{creator}/jobs", json={"module": "cowsay:v1", "inputs": {"Message": "moo"}}).json()["job"]
        end = time.monotonic() + 90
        while (rec := requests.get(f"{creator}/jobs/{job}").json())["status"] != "done":
            assert time.monotonic() < end, rec
            time.sleep(0.2)
        assert rec["state"] == "ResultsAccepted" and rec["verified"]
        bad = requests.post(f"{creator}/jobs", json={"module": "nope:v1", "inputs": {}})
        assert bad.status_code == 400 and "module" in bad.json()["error"]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        asyncio.run(net.stop())


def test_service_cli_refuses_a_public_address_and_a_missing_solver(tmp_path) -> None:
    dep = tmp_path / "deployment.json"
    dep.write_text(json.dumps({"accounts": [], "mediators": []}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for role, args, message in (
        ("solver", ["host=0.0.0.0"], "loopback"),
        ("creator", [], "solver_url is missing"),
    ):
        cmd = [sys.executable, "-m", f"live.services.{role}", f"deployment={dep}", f"state_dir={tmp_path}", *args]
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode != 0 and message in out.stderr, out.stderr
