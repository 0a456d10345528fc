"""The live main job (`make live`): a small real network through `jobs` Docker jobs on anvil, then the summary
(deals by terminal state, cheats caught and missed, each party's balance change, gas per deal, job latency
against a bare `docker run`) and the trace as twin tables (deals.parquet, agents.parquet, phases.parquet).

    python -m live.main [mechanism=<preset|searched> hydra.searchpath=[file://<dir>]] [deployment=<file>]
                        [jobs=30] [key=value ...]
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import time
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from live import docker_engine
from live.chain import events
from live.modules import load_module
from live.modules.build import build
from live.modules.registry import DEFAULT_LOCK
from live.services import trace
from live.services.network import Network, dump, workload
from live.services.policy import client_actions, mediator_threshold, node_actions
from sim.records import strategy_label

TREASURY, BURN = "treasury", "burn"


def bare_docker_seconds(host: str, ref: str, inputs: Mapping[str, str], lock: Path, runs: int) -> list[float]:
    """Wall time of `docker run --rm` of the module's image and entrypoint (no containment flags): the floor."""
    spec = load_module(ref, inputs, lock=lock)
    docker = shutil.which("docker") or "docker"
    cmd = [docker, "-H", host, "run", "--rm", "--entrypoint", spec.entrypoint[0], spec.digest, *spec.entrypoint[1:]]
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out


def phases(dep: Any) -> pa.Table:
    """Block of every state each deal entered (deal_id = the terms' nonce): what calibration fits times from."""
    h = events.fetch(dep, dep.block)
    rows = [(h.terms[d].nonce, s, b) for b, d, s in h.states]
    ids, states, blocks = zip(*rows, strict=True) if rows else ((), (), ())
    from mechanisms.protocol import DealState

    return pa.table(
        {
            "deal_id": pa.array(ids, pa.int64()),
            "state": pa.array([DealState(s).name for s in states]),
            "block": pa.array(blocks, pa.int64()),
        }
    )


async def run_live(cfg: Mapping[str, Any], out: Path, host: str, client: Any, lock: Path) -> dict[str, Any]:
    """Run the network through the workload; write the trace under `out`; the summary."""
    net = Network(cfg, out / "state", client, lock)
    net.start_chain()
    try:
        await net.start_services()
        before = net.balances()
        v0 = net.total_value()
        t0 = time.perf_counter()
        jobs = await net.run_jobs(workload(cfg), float(cfg["timeout_s"]))
        wall = time.perf_counter() - t0
        after = net.balances()
        assert net.total_value() == v0, "value was created or lost"
        dep = net.clients[0].dep
        truth = {k: d for p in net.providers for k, s, d in p.store.all_deals()}
        deals = trace.deal_table(dep, net.who, net.market, truth)
        labels, actions = agent_labels(net)
        agents = trace.agent_table(net.who, net.market, deals, before, after, labels, actions)
        trace.write(out, deals, agents)
        pq.write_table(phases(dep), out / "phases.parquet")
        dump(out / "config.json", {k: cfg[k] for k in ("market", "mechanism", "network", "block_s", "workload")})
        gas = net.gas()
    finally:
        await net.stop()
    w = cfg["workload"][0]
    bare = bare_docker_seconds(
        host, w["module"], {k: str(v) for k, v in (w.get("inputs") or {}).items()}, lock, int(cfg["bare_runs"])
    )
    return summarize(cfg, deals, jobs, before, after, gas, wall, bare, net)


def agent_labels(net: Network) -> tuple[list[str], dict[str, list[Any]]]:
    """Strategy label and action columns per agent (clients, nodes, mediators)."""
    nan = float("nan")
    labels, cols = [], {"cheat_rate": [], "bribe": [], "check_rate": [], "bribe_threshold": []}
    for role, services in (("client", net.creators), ("node", net.providers), ("mediator", net.mediators)):
        for s in sorted(services, key=lambda s: s.name):
            p = s.policy
            labels.append(strategy_label(p) if hasattr(p, "__dataclass_fields__") else type(p).__name__)
            rate, bribe = node_actions(p, 0) if role == "node" else (nan, -1)
            cols["cheat_rate"].append(rate)
            cols["bribe"].append(bribe)
            cols["check_rate"].append(client_actions(p, 0) if role == "client" else nan)
            cols["bribe_threshold"].append(mediator_threshold(p, 0) if role == "mediator" else -1)
    return labels, cols


def summarize(
    cfg: Mapping[str, Any],
    deals: pa.Table,
    jobs: list[dict[str, Any]],
    before: Mapping[str, int],
    after: Mapping[str, int],
    gas: Mapping[str, list[int]],
    wall: float,
    bare: list[float],
    net: Network,
) -> dict[str, Any]:
    d = deals.to_pydict()
    cheated = np.array(d["cheated"], dtype=bool)
    state = np.array([str(s) for s in d["state"]])
    paid = np.isin(state, trace.PAID)
    names = {a: f"client{i}" for i, a in enumerate(net.who.clients)}
    names |= {a: f"provider{i}" for i, a in enumerate(net.who.nodes)}
    names |= {a: f"mediator{i}" for i, a in enumerate(net.who.mediators)}
    names |= {net.who.treasury: TREASURY, "0x000000000000000000000000000000000000dEaD": BURN}
    lat = [j["finished_at"] - j["posted_at"] for j in jobs if j["state"] == "ResultsAccepted"]
    deal_gas = sum(sum(v) for k, v in gas.items() if k != "approve")
    return {
        "mechanism": list(net.stack.mechanisms[i].name for i, on in enumerate(net.stack.enabled) if on),
        "jobs": len(jobs),
        "deals": deals.num_rows,
        "wall_s": wall,
        "states": trace.terminal_counts(deals),
        "cheats": int(cheated.sum()),
        "cheats_caught": int((cheated & (state == "MediationRejected")).sum()),
        "cheats_missed": int((cheated & paid).sum()),
        "balance_change": {names[a]: after[a] - before[a] for a in before if a in names},
        "gas_per_deal": deal_gas / max(deals.num_rows, 1),
        "gas_per_step": {k: int(statistics.mean(v)) for k, v in sorted(gas.items())},
        "latency_s": statistics.median(lat) if lat else None,
        "bare_docker_s": statistics.median(bare) if bare else None,
        "block_s": float(cfg["block_s"]),
        "providers": len(cfg["network"]["providers"]),
    }


def format_summary(s: Mapping[str, Any]) -> str:
    lines = [
        f"live run: {s['jobs']} jobs, {s['deals']} deals in {s['wall_s']:.1f} s, mechanism {s['mechanism']}",
        "deals by terminal state:",
    ]
    lines += [f"  {k:<24} {v}" for k, v in sorted(s["states"].items())]
    lines.append(f"cheats: {s['cheats']} (caught {s['cheats_caught']}, missed {s['cheats_missed']})")
    lines.append("balance change per party:")
    lines += [f"  {k:<12} {v:+d}" for k, v in sorted(s["balance_change"].items())]
    lines.append(
        f"gas per deal: {s['gas_per_deal']:.0f} (per step: "
        + ", ".join(f"{k} {v}" for k, v in s["gas_per_step"].items())
        + ")"
    )
    if s["latency_s"] is not None and s["bare_docker_s"]:
        lines.append(
            f"job latency (posted to settled, median of accepted deals): {s['latency_s']:.2f} s vs bare docker run "
            f"{s['bare_docker_s']:.2f} s ({s['latency_s'] / s['bare_docker_s']:.2f}x; block time {s['block_s']} s)"
        )
        lines.append(
            f"  (all {s['jobs']} jobs are posted at once, so this includes queueing for {s['providers']} "
            "providers; one job on an idle network: benchmarks/live_stack.py)"
        )
    return "\n".join(lines)


def main_plain(cfg: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """Engine, images, network; the summary (also written to `out/summary.json`, and as printed to
    `out/summary.txt`)."""
    with docker_engine.engine() as host, closing(docker_engine.client(host)) as client:
        build(client, lock=DEFAULT_LOCK)
        summary = asyncio.run(run_live(cfg, out, host, client, DEFAULT_LOCK))
    dump(out / "summary.json", summary)
    (out / "summary.txt").write_text(format_summary(summary) + "\n")  # as printed; the README shows it
    return summary


@hydra.main(config_path="../configs", config_name="live", version_base="1.3")
def main(cfg: DictConfig) -> None:
    plain = OmegaConf.to_container(cfg, resolve=True)
    out = Path(plain.get("out") or HydraConfig.get().runtime.output_dir)
    if (out / "state").exists():
        shutil.rmtree(out / "state")
    summary = main_plain(plain, out)
    print(format_summary(summary))
    print(f"trace: {out}/deals.parquet, {out}/agents.parquet")


if __name__ == "__main__":
    main()
