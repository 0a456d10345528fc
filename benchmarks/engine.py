"""Settled deals per second and memory per deal: the batch engine against its bare numpy kernel and the Mesa
reference model, on the same market, draws and actions.

The market is built so nearly every job matches (one module that every node serves, market-price jobs, as many
clients as nodes, everyone active), so a size of N means about N deals a round. A round's time is drawing it plus
stepping it; building the market and agents and numba compilation are not timed. Per size:

* **engine vs kernel**: `BatchEngine.step` and `benchmarks.kernel.kernel_round` (only the arithmetic of a
  `lilypad_v2` round) run interleaved round by round on the same draws, `--repeats` times; the best time of each
  is kept, and both must end every round on the same balances ("agree").
* **memory per deal in flight**: the peak of memory allocated during one round (its draws and its step, the
  second round of a fresh engine) over the memory allocated before it, per deal of the round, measured with
  `tracemalloc` (numpy reports its array buffers to it). This is what a round needs on top of the run's standing
  state (market, ledger, public record), i.e. what grows with the deals settled at once; it does not count what
  the allocator keeps after freeing, which the process's peak RSS (printed at the end) does.
* **reference**: `ReferenceModel.step_round` runs the first `--reference-rounds` rounds and must end with the
  engine's balances; it is skipped at a size where, at the rate it reached on the previous size (or in the
  warm-up), it would need more than `--reference-budget` seconds.

    .venv/bin/python -m benchmarks.engine [--sizes 1000 10000 100000 1000000] [--rounds 3] [--repeats 3]
        [--profile] [--out outputs/bench/engine.json]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.population import Population
from benchmarks.kernel import KernelMarket, kernel_round
from experiments.readme_tables import ENGINE_HEADER, engine_caption, engine_cells
from mechanisms import MechanismStack
from mechanisms.actions import Actions
from sim.draws import DrawSource, RoundDraws
from sim.engine import BatchEngine
from sim.market import MachineSpec, Market, MarketConfig, ModuleSpec, ResponseTimes
from sim.memory import keep_freed_memory
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
class Seconds:
    """Wall-clock and CPU seconds (this process, all threads): on a shared machine the CPU time is what the code
    costs, the wall time also what it waited for the cores."""

    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: Seconds) -> Seconds:
        return Seconds(self.wall + other.wall, self.cpu + other.cpu)


def timed(call: Callable[[], object]) -> tuple[object, Seconds]:
    """`call()`'s result and the seconds it took."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = call()
    return out, Seconds(time.perf_counter() - wall, time.process_time() - cpu)


@dataclass(frozen=True)
class Workload:
    """A market and every round's draws and actions, made before any stepping; `draw_seconds` per round."""

    market: Market
    source: DrawSource
    draws: list[RoundDraws]
    actions: list[Actions]
    draw_seconds: list[Seconds]


def prepare(size: int, rounds: int, seed: int) -> Workload:
    config = market_config(size)
    population = Population.from_config(AGENTS, {"clients": size, "nodes": size, "mediators": config.n_mediators})
    sim = build(ParsedConfig(seed, config, MechanismStack.from_config(STACK), population))  # seed N as in simulate
    draws, seconds = [], []
    for _ in range(rounds):
        d, s = timed(sim.source.next_round)
        draws.append(d)
        seconds.append(s)
    return Workload(sim.market, sim.source, draws, [population.actions(i) for i in range(rounds)], seconds)


def new_engine(w: Workload) -> BatchEngine:
    return BatchEngine(w.market, MechanismStack.from_config(STACK), w.source)


def kernel_market(w: Workload) -> KernelMarket:
    return KernelMarket.of(w.market, MechanismStack.from_config(STACK).mechanisms[0].config)


@dataclass(frozen=True)
class SideBySide:
    """One interleaved pass: deals per round, seconds (draws included) and whether every round's balances agree."""

    deals: list[int]
    engine: Seconds
    kernel: Seconds
    agree: bool
    balances: list[np.ndarray]  # the engine's, after each round


def side_by_side(w: Workload) -> SideBySide:
    """Each round through the engine, then through the kernel, on the same draws and actions."""
    engine, km = new_engine(w), kernel_market(w)
    balance = engine.ledger.balance.copy()
    deals, balances, engine_s, kernel_s, agree = [], [], Seconds(), Seconds(), True

    def engine_round(d: RoundDraws, a: Actions) -> int:
        n = len(engine.step(a, d).deals)
        engine.events.drain()  # as the entry points do: the log goes to a writer, not into memory
        return n

    for d, a, draw_s in zip(w.draws, w.actions, w.draw_seconds, strict=True):
        n, s = timed(lambda: engine_round(d, a))  # noqa: B023 - called at once
        engine_s += s + draw_s
        k, s = timed(lambda: kernel_round(km, balance, d, a))  # noqa: B023
        kernel_s += s + draw_s
        deals.append(n)
        balances.append(engine.ledger.balance.copy())
        agree &= k == n and np.array_equal(balance, engine.ledger.balance)
    return SideBySide(deals, engine_s, kernel_s, agree, balances)


def time_reference(w: Workload, rounds: int) -> tuple[int, Seconds, np.ndarray]:
    """Deals settled and seconds spent (draws included) over the first `rounds` of the reference, and the balances."""
    model = ReferenceModel(w.market, MechanismStack.from_config(STACK))
    deals, seconds = 0, Seconds()
    for d, a, draw_s in zip(w.draws[:rounds], w.actions[:rounds], w.draw_seconds[:rounds], strict=True):
        result, s = timed(lambda: model.step_round(a, d))  # noqa: B023
        seconds += s + draw_s
        deals += len(result.outcomes)
    return deals, seconds, model.balances()


def traced_round(step: Callable[[], int]) -> float:
    """Bytes allocated at the peak of `step()` over what was allocated before it, per deal it returns."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        deals = step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - before) / max(deals, 1)


def memory_per_deal(w: Workload, seed: int) -> tuple[float, float]:
    """Peak bytes per deal in flight of the engine and of the kernel: the second round of each, draws included."""
    stack = MechanismStack.from_config(STACK)
    source = DrawSource(
        w.market.config, w.market.module_cum_weight, stack.draws_per_deal, np.random.default_rng(seed), stack.replicas
    )
    engine = BatchEngine(w.market, stack, source)

    def engine_round(i: int) -> int:
        n = len(engine.step(w.actions[i], source.next_round()).deals)
        engine.events.drain()
        return n

    engine_round(0)
    engine_bytes = traced_round(lambda: engine_round(1))
    km, balance = kernel_market(w), w.market.facts.initial_balances()
    kernel_round(km, balance, source.next_round(), w.actions[0])
    kernel_bytes = traced_round(lambda: kernel_round(km, balance, source.next_round(), w.actions[1]))
    return engine_bytes, kernel_bytes


def profile(w: Workload, top: int) -> str:
    """The engine's top costs over one pass of the workload's rounds (cProfile on CPU time, by own time)."""
    engine = new_engine(w)
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    for d, a in zip(w.draws, w.actions, strict=True):
        engine.step(a, d)
        engine.events.drain()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000], help="clients = nodes"
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per size")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved engine/kernel passes; best time kept")
    parser.add_argument("--reference-rounds", type=int, default=1, help="timed rounds per size (reference)")
    parser.add_argument("--reference-budget", type=float, default=60.0, help="seconds the reference may take a size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="print the engine's top costs (cProfile) per size")
    parser.add_argument("--profile-top", type=int, default=15, help="functions listed by --profile")
    parser.add_argument("--out", help="also write the figures as JSON here (read by experiments.readme_tables)")
    args = parser.parse_args()
    kept = keep_freed_memory()  # as `experiments.simulate` does; engine and kernel alike
    ref_rounds = min(args.reference_rounds, args.rounds)

    warm_up = prepare(50, 2, args.seed)  # numba's compiled solver, imports, caches
    side_by_side(warm_up)
    warm_deals, warm_seconds, _ = time_reference(warm_up, 1)

    run = {
        "rounds": args.rounds,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "load_start": os.getloadavg()[0],
        "freed_memory_kept": kept,
    }
    print(engine_caption(run))
    print("  ".join(ENGINE_HEADER))
    rows, ref_rate = [], warm_deals / warm_seconds.cpu  # the reference's rate so far, to skip sizes over budget
    for size in args.sizes:
        w = prepare(size, args.rounds, args.seed)
        passes = [side_by_side(w) for _ in range(args.repeats)]
        deals = sum(passes[0].deals)
        engine_cpu = min(p.engine.cpu for p in passes)
        kernel_cpu = min(p.kernel.cpu for p in passes)
        engine_bytes, kernel_bytes = memory_per_deal(w, args.seed + 1)
        row = {
            "size": size,
            "deals_per_round": deals / args.rounds,
            "engine_deals_per_s": deals / engine_cpu,
            "kernel_deals_per_s": deals / kernel_cpu,
            "engine_over_kernel": engine_cpu / kernel_cpu,
            "engine_bytes_per_deal": engine_bytes,
            "kernel_bytes_per_deal": kernel_bytes,
            "engine_wall_deals_per_s": deals / min(p.engine.wall for p in passes),
            "reference_deals_per_s": None,
            "engine_over_reference": None,
            "agree": all(p.agree for p in passes),
        }
        if sum(passes[0].deals[:ref_rounds]) / ref_rate <= args.reference_budget:
            ref_deals, ref_s, ref_balances = time_reference(w, ref_rounds)
            ref_rate = ref_deals / ref_s.cpu
            row["agree"] &= ref_deals == sum(passes[0].deals[:ref_rounds]) and np.array_equal(
                ref_balances, passes[0].balances[ref_rounds - 1]
            )
            row.update(reference_deals_per_s=ref_rate, engine_over_reference=row["engine_deals_per_s"] / ref_rate)
        if not row["agree"]:
            raise SystemExit(f"size {size}: the engine, the kernel and the reference do not end on the same balances")
        rows.append(row)
        print("  ".join(engine_cells(row)), flush=True)
        if args.profile:
            print(profile(w, args.profile_top), flush=True)
        del w, passes
    run.update(load_end=os.getloadavg()[0], peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    print(f"load average {run['load_end']:.1f} at end; process peak RSS {run['peak_rss_gib']:.2f} GiB")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"run": run, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
