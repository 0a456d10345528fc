"""A real Ray cluster: a head node and a worker node started the way `ray start` starts them on two machines (here
both on this one, each with its own ports), a Hydra sweep through the Ray launcher and a short RLlib training on it,
with the same results as the same commands run locally.

The head offers no CPU, so every sweep run and the training's env runner are placed on the worker node. Ray's state
lives under a fresh directory in /tmp; the cluster is stopped by terminating the two `ray start --block` processes
this test started (each takes its node's processes down with it), never with `ray stop`, which would stop every
Ray session on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from experiments.results import load

pytestmark = pytest.mark.xdist_group("ray")

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
#: `ray start` options that name a port: each node gets its own, so the two nodes (and other Ray sessions on this
#: machine) never collide.
NODE_PORTS = (
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--metrics-export-port",
    "--runtime-env-agent-port",
)
WORKER_PORTS = 20  # worker processes per node, each on a port of its own range
TINY = ("rounds=2", "progress=false", "market.n_clients=20", "market.n_nodes=20", "market.n_stakers=5")
TRAIN = ("+experiment=node_cheat", "env.focal={node: 2, client: 2, mediator: 2}", "env.rounds=5", "train.iterations=2",
         "train.progress=false", "algo.training.train_batch_size_per_learner=25", "algo.training.minibatch_size=25",
         "algo.training.num_epochs=1", "algo.env_runners={num_env_runners: 1}")  # fmt: skip
PROBE = """
import json, sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)
print(json.dumps([n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]]))
"""


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free right now (held open together while the kernel picks them)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True)
class Cluster:
    address: str  # the head's GCS address, as `ray start --address` and `ray.init(address=...)` take it
    env: dict[str, str]  # the environment of a process on this machine that uses the cluster


def node_options(ports: list[int]) -> list[str]:
    opts = [f"{name}={port}" for name, port in zip(NODE_PORTS, ports, strict=False)]
    low = ports[len(NODE_PORTS)]
    return [*opts, f"--min-worker-port={low}", f"--max-worker-port={low + WORKER_PORTS - 1}"]


def worker_port_ranges(n: int) -> list[int]:
    """The first port of `n` ranges of WORKER_PORTS free ports each (checked free when chosen)."""
    starts = []
    while len(starts) < n:
        low = free_ports(1)[0]
        if (
            low + WORKER_PORTS < 65535
            and all(_free(p) for p in range(low, low + WORKER_PORTS))
            and all(abs(low - s) > WORKER_PORTS for s in starts)
        ):
            starts.append(low)
    return starts


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def alive_cpus(cluster: Cluster) -> list[float]:
    out = subprocess.run([sys.executable, "-c", PROBE, cluster.address], env=cluster.env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    return sorted(json.loads(out.stdout.strip().splitlines()[-1])) if out.returncode == 0 else []


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    tmp = tempfile.mkdtemp(prefix="rc-", dir="/tmp")  # short: Ray's unix socket paths are limited to ~100 chars
    env = {**os.environ, "RAY_TMPDIR": tmp, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    gcs, client, *ports = free_ports(2 + 2 * len(NODE_PORTS))
    head_low, worker_low = worker_port_ranges(2)
    head_ports, worker_ports = [*ports[: len(NODE_PORTS)], head_low], [*ports[len(NODE_PORTS) :], worker_low]
    common = ["--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    nodes: list[subprocess.Popen[bytes]] = []

    def start(*args: str, log: str) -> None:
        with open(Path(tmp) / log, "wb") as out:
            nodes.append(subprocess.Popen([RAY, "start", *common, *args], cwd=REPO, env=env, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip

    try:
        start("--head", f"--port={gcs}", f"--ray-client-server-port={client}", "--num-cpus=0",
              "--include-dashboard=false", f"--temp-dir={tmp}", *node_options(head_ports), log="head.log")  # fmt: skip
        start(f"--address=127.0.0.1:{gcs}", "--num-cpus=2", *node_options(worker_ports), log="worker.log")
        c = Cluster(f"127.0.0.1:{gcs}", env)
        deadline = time.monotonic() + 120
        while alive_cpus(c) != [0, 2]:  # the head (no CPU) and the worker (2 CPUs) have joined
            assert time.monotonic() < deadline and all(n.poll() is None for n in nodes), (
                Path(tmp) / "head.log"
            ).read_text()[-2000:] + (Path(tmp) / "worker.log").read_text()[-2000:]
            time.sleep(1)
        yield c
    finally:
        for node in reversed(nodes):  # the worker first, then the head; each takes its node's processes along
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def run(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def sweep(tmp: Path, env: dict[str, str], *launcher: str) -> pd.DataFrame:
    """A 4-run sweep; its recorded results (the bookkeeping of where and when left out)."""
    run(
        [
            sys.executable,
            "-m",
            "experiments.simulate",
            "--multirun",
            *launcher,
            f"hydra.sweep.dir={tmp / 'multirun'}",
            f"sweep.dataset={tmp / 'data'}",
            "sweep.name=cluster",
            *TINY,
            "mechanism=lilypad_v2,none",
            "seed=0,1",
        ],
        env,
    )
    frame = load(tmp / "data")
    keep = [c for c in frame.columns if c in ("run_id", "seed", "status") or c.startswith(("summary.", "choice."))]
    return frame[keep].sort_values("run_id").reset_index(drop=True)


def test_a_sweep_on_the_cluster_gives_the_local_results(cluster: Cluster, tmp_path: Path) -> None:
    local = sweep(tmp_path / "local", cluster.env)  # the default launcher: one run after another, no Ray
    remote = sweep(tmp_path / "cluster", cluster.env, "hydra/launcher=ray_cluster",
                   f"hydra.launcher.ray.init.address={cluster.address}")  # fmt: skip
    assert len(remote) == 4 and (remote.status == "ok").all() and (remote["summary.deals"] > 0).all()
    pd.testing.assert_frame_equal(local, remote)


def test_training_on_the_cluster_gives_the_local_metrics(cluster: Cluster, tmp_path: Path) -> None:
    tables = []
    with tempfile.TemporaryDirectory(prefix="rl-", dir="/tmp") as local_ray:  # a local session of its own
        for where, ray_cfg, env in (("local", "ray.num_cpus=2", {**cluster.env, "RAY_TMPDIR": local_ray}),
                                    ("cluster", f"ray.address={cluster.address}", cluster.env)):  # fmt: skip
            run([sys.executable, "-m", "experiments.train", *TRAIN, f"run_dir={tmp_path / where}", ray_cfg], env)
            tables.append(pd.read_parquet(tmp_path / where / "metrics.parquet").drop(columns="seconds"))
    assert list(tables[1]["iteration"]) == [1, 2] and (tables[1]["env_steps"] > 0).all()
    pd.testing.assert_frame_equal(tables[0], tables[1])
