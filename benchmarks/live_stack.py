"""The live stack end to end on anvil and a real Docker engine, side by side with bare `docker run`:

- latency: one job at a time through solver, agreement, the node's contained run, result fetch and verification
  and acceptance on chain (1 creator, 1 provider; anvil automine: a transaction is mined as it arrives, the block
  clock still ticks), median wall time from posting to the accepted deal, against the median of bare
  `docker run --rm` of the same image and entrypoint, interleaved (target at most 1.5x);
- throughput: settled deals per second with 8 providers (each running up to `--slots` jobs at once) and 2 creators
  posting `--jobs` jobs at once (target at least 20 deals/s), on interval mining (automine makes every transaction
  a block, so deadlines, counted in blocks, pass sooner under load), against the ceiling the machine puts on it:
  the same jobs through the executor alone (no chain, no services), as many at once as the network runs.

It prints both, saves them to outputs/bench/live.json and renders the README's `table:live` block from them
(`experiments.readme_tables`).

    .venv/bin/python benchmarks/live_stack.py [--repeats 10] [--jobs 40] [--slots 2] [--block-s 0.1] [--no-readme]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

from experiments import readme_tables
from experiments.analysis.configs import compose_plain
from live import docker_engine
from live.executor import Capabilities, Executor
from live.executor.runner import PHASES
from live.main import bare_docker_seconds
from live.modules import load_module
from live.modules.build import build
from live.services.network import Network

OUT = readme_tables.OUTPUTS / "bench" / "live.json"
MODULE, INPUTS = "cowsay:v1", {"Message": "moo"}
HONEST = "{strategy: honest}"


async def latency(cfg: dict, state: Path, client, lock: Path, host: str, repeats: int) -> tuple[list, list]:
    net = Network(cfg, state, client, lock)
    net.start_chain()
    stack_s, bare_s = [], []
    try:
        await net.start_services()
        await net.run_jobs([(MODULE, INPUTS)], 60)  # warm-up
        bare_docker_seconds(host, MODULE, INPUTS, lock, 1)
        for _ in range(repeats):
            (job,) = await net.run_jobs([(MODULE, INPUTS)], 60)
            assert job["state"] == "ResultsAccepted", job
            stack_s.append(job["finished_at"] - job["posted_at"])
            bare_s += bare_docker_seconds(host, MODULE, INPUTS, lock, 1)
    finally:
        await net.stop()
    return stack_s, bare_s


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, every process: ours and the other users')."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


async def throughput(cfg: dict, state: Path, client, lock: Path, jobs: int) -> tuple[int, float, dict]:
    """Settled deals and wall time of `jobs` jobs posted at once, and where the CPU went meanwhile."""
    net = Network(cfg, state, client, lock)
    net.start_chain()
    try:
        await net.start_services()
        assert net.node is not None and net.node.proc is not None
        anvil = net.node.proc.pid
        busy, ours, node = busy_seconds(), os.times(), process_seconds(anvil)
        t = time.perf_counter()
        done = await net.run_jobs([(MODULE, INPUTS)] * jobs, 300)
        wall = time.perf_counter() - t
        after = os.times()
        cpu = {
            "services_s": (after.user - ours.user) + (after.system - ours.system),  # the services and executors
            "anvil_s": process_seconds(anvil) - node,
            "busy_s": busy_seconds() - busy,
        }
    finally:
        await net.stop()
    return sum(j["state"] == "ResultsAccepted" for j in done), wall, cpu


def executor_rate(client, lock: Path, work: Path, jobs: int, parallel: int) -> tuple[float, float, dict]:
    """Jobs per second of the executor alone running `jobs` containers, `parallel` at once (what one machine's
    engine allows whatever the services do), the machine's busy CPU seconds per job meanwhile, and the median
    seconds of each executor phase over `jobs` runs one at a time."""
    ex = Executor(client, work, Capabilities.detect(work / "caps"))
    spec = load_module(MODULE, INPUTS, lock=lock)
    ex.run(spec, "warm-up")
    serial = [ex.run(spec, f"serial-{i}").timings for i in range(jobs)]
    phases = {name: statistics.median(t[name] for t in serial) for name in PHASES}
    busy, t = busy_seconds(), time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(lambda i: ex.run(spec, f"ceiling-{i}"), range(jobs)))
    wall, busy = time.perf_counter() - t, busy_seconds() - busy
    assert all(r.status == "ok" for r in results), [r.error for r in results]
    return jobs / wall, busy / jobs, phases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=40)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--block-s", type=float, default=0.1)
    ap.add_argument("--no-readme", action="store_true", help="only print and save outputs/bench/live.json")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    one = [
        f"block_s={args.block_s}",
        "mining=auto",
        "market.n_clients=1",
        "market.n_nodes=1",
        "market.n_mediators=1",
        f"network.providers=[{HONEST}]",
        "network.creators=[{strategy: checker, q: 0.0}]",
        f"network.mediators=[{HONEST}]",
    ]
    eight = [
        f"block_s={args.block_s}",
        "market.n_clients=2",
        "market.n_nodes=8",
        "market.n_mediators=1",
        "network.providers=[" + ",".join([HONEST] * 8) + "]",
        "network.creators=[{strategy: checker, q: 0.0},{strategy: checker, q: 0.0}]",
        f"network.mediators=[{HONEST}]",
        f"network.slots={args.slots}",
    ]
    with (
        docker_engine.engine() as host,
        closing(docker_engine.client(host)) as client,
        tempfile.TemporaryDirectory() as tmp,
    ):
        lock = Path(tmp) / "images.json"
        build(client, lock=lock)
        stack_s, bare_s = asyncio.run(
            latency(compose_plain("live", one), Path(tmp) / "a", client, lock, host, args.repeats)
        )
        settled, wall, cpu = asyncio.run(
            throughput(compose_plain("live", eight), Path(tmp) / "b", client, lock, args.jobs)
        )
        ceiling, engine_busy, phases = executor_rate(client, lock, Path(tmp) / "c", args.jobs, 8 * args.slots)
    r = {
        "module": MODULE,
        "providers": 8,
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "stack": statistics.median(stack_s),
        "bare": statistics.median(bare_s),
        "jobs": args.jobs,
        "settled": settled,
        "wall": wall,
        "block_s": args.block_s,
        "slots": args.slots,
        "ceiling": ceiling,
        "load": load,
        "cpu": {**cpu, "executor_busy_per_job_s": engine_busy},
        "phases": phases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(r, indent=2) + "\n")
    print(readme_tables.live_markdown(r))
    if not args.no_readme:
        readme_tables.main(["--write", "live"])


if __name__ == "__main__":
    main()
