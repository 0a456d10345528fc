"""Settled deals per second: the batch engine against the Mesa reference model, on the same market and draws.

The market is built so nearly every job matches (one module that every node serves, market-price jobs, as many
clients as nodes, everyone active), so a size of N means about N deals a round. Both engines step through the same
pre-drawn rounds with the same actions; only stepping is timed (drawing, building agents and numba compilation are
not). The reference runs the first `--reference-rounds` of them and must end with the batch engine's balances
("agree"); it is skipped at a size where, at the rate it reached on the previous size, it would need more than
`--reference-budget` seconds.

    .venv/bin/python benchmarks/engine.py [--sizes 1000 10000 100000] [--rounds 3] [--reference-rounds 1]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.population import Population
from mechanisms import MechanismStack
from mechanisms.actions import Actions
from sim.draws import DrawSource, RoundDraws
from sim.engine import BatchEngine
from sim.market import MachineSpec, Market, MarketConfig, ModuleSpec, ResponseTimes
from sim.reference import ReferenceModel
from twin.build import ParsedConfig, build

STACK = [{"name": "lilypad_v2"}]
AGENTS = {
    "nodes": [{"strategy": "honest", "share": 0.8}, {"strategy": "cheater", "rate": 1.0, "bribe": 20, "share": 0.2}],
    "clients": [{"strategy": "checker", "q": 0.2}],
    "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 10}],
}


def market_config(size: int) -> MarketConfig:
    """N clients and N nodes, one module every node serves, market prices, a few late parties."""
    return MarketConfig(
        n_clients=size,
        n_nodes=size,
        n_mediators=5,
        modules=(ModuleSpec("cowsay", cpu=500, ram=256, instructions=1, compute_cost=6),),
        machines=(MachineSpec("cpu-box", cpu=8000, ram=16384),),
        fixed_price_share=0.0,
        response=ResponseTimes(client_agree=2, node_agree=2, node_submit=10, client_judge=5, mediator=10),
    )


@dataclass(frozen=True)
class Workload:
    """A market and every round's draws and actions, made before any timing starts."""

    market: Market
    source: DrawSource
    draws: list[RoundDraws]
    actions: list[Actions]


def prepare(size: int, rounds: int, seed: int) -> Workload:
    config = market_config(size)
    population = Population.from_config(AGENTS, {"clients": size, "nodes": size, "mediators": config.n_mediators})
    sim = build(ParsedConfig(seed, config, MechanismStack.from_config(STACK), population))  # seed N as in simulate
    return Workload(
        sim.market,
        sim.source,
        [sim.source.next_round() for _ in range(rounds)],
        [population.actions(i) for i in range(rounds)],
    )


def time_batch(w: Workload) -> tuple[list[int], float, list[np.ndarray]]:
    """Deals settled per round, seconds spent in `BatchEngine.step`, and the balances after each round."""
    engine = BatchEngine(w.market, MechanismStack.from_config(STACK), w.source)
    deals, seconds, balances = [], 0.0, []
    for d, a in zip(w.draws, w.actions, strict=True):
        start = time.perf_counter()
        result = engine.step(a, d)
        seconds += time.perf_counter() - start
        deals.append(len(result.deals))
        balances.append(engine.ledger.balance.copy())
    return deals, seconds, balances


def time_reference(w: Workload, rounds: int) -> tuple[int, float, np.ndarray]:
    """Deals settled and seconds spent in `ReferenceModel.step_round` over the first `rounds`, and the balances."""
    model = ReferenceModel(w.market, MechanismStack.from_config(STACK))
    deals, seconds = 0, 0.0
    for d, a in zip(w.draws[:rounds], w.actions[:rounds], strict=True):
        start = time.perf_counter()
        result = model.step_round(a, d)
        seconds += time.perf_counter() - start
        deals += len(result.outcomes)
    return deals, seconds, model.balances()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000], help="clients = nodes")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per size (batch engine)")
    parser.add_argument("--reference-rounds", type=int, default=1, help="timed rounds per size (reference)")
    parser.add_argument("--reference-budget", type=float, default=60.0, help="seconds the reference may take a size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the rows as JSON here (read by experiments.readme_tables)")
    args = parser.parse_args()
    ref_rounds = min(args.reference_rounds, args.rounds)

    warm_up = prepare(50, 1, args.seed)  # numba's compiled solver, imports, caches
    time_batch(warm_up)
    time_reference(warm_up, 1)

    print(f"{'size':>8} {'deals/round':>12} {'batch deals/s':>14} {'reference deals/s':>18} {'ratio':>8}  agree")
    ref_rate, rows = None, []
    for size in args.sizes:
        workload = prepare(size, args.rounds, args.seed)
        deals, seconds, balances = time_batch(workload)
        batch_rate = sum(deals) / seconds
        row = {
            "size": size,
            "deals_per_round": sum(deals) / args.rounds,
            "batch_deals_per_s": batch_rate,
            "reference_deals_per_s": None,
            "ratio": None,
            "agree": None,
        }
        rows.append(row)
        line = f"{size:>8} {sum(deals) / args.rounds:>12,.0f} {batch_rate:>14,.0f}"
        if ref_rate is not None and sum(deals[:ref_rounds]) / ref_rate > args.reference_budget:
            print(f"{line} {'skipped (too slow)':>18} {'-':>8}  -", flush=True)
            continue
        ref_deals, ref_seconds, ref_balances = time_reference(workload, ref_rounds)
        ref_rate = ref_deals / ref_seconds
        agree = ref_deals == sum(deals[:ref_rounds]) and np.array_equal(ref_balances, balances[ref_rounds - 1])
        row.update(reference_deals_per_s=ref_rate, ratio=batch_rate / ref_rate, agree=bool(agree))
        print(f"{line} {ref_rate:>18,.0f} {batch_rate / ref_rate:>7,.0f}x  {'yes' if agree else 'NO'}", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
