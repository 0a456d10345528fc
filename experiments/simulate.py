"""`python -m experiments.simulate`: run the market twin for N rounds with scripted agents and write tidy outputs.

Outputs in the run directory (Hydra's output dir): `deals.parquet` (one row per deal), `agents.parquet` (one row
per agent and round), `summary.json` and `config.yaml` (the resolved config). Columns are documented in
`sim.records`. `run_simulation` is the Hydra-free core, for tests and sweeps.

The whole config is validated before the run directory gets any of these files, and tables are streamed to hidden
temporary files that are renamed into place only when the run succeeds. A run whose total value changed raises
`InvariantViolation` (a bug) and leaves no tables.

With `sweep.dataset` set (`--multirun` sweeps), each run also becomes one row of the results dataset, and runs
already recorded there are skipped (`experiments.results.run_recorded`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from experiments.results import SWEEP_KEY, parse_sweep, run_recorded
from mechanisms.config import ConfigError, require, require_int
from mechanisms.errors import InvariantViolation
from mechanisms.money import Pool
from mechanisms.protocol import DealState
from sim import metrics
from sim.engine import RoundResult
from sim.memory import keep_freed_memory
from sim.records import AGENT_SCHEMA, DEAL_SCHEMA, AgentRecorder, ParquetSink, deal_table
from twin.build import SECTIONS, ParsedConfig, build, check_keys, parse

RUN_KEYS = (*SECTIONS, "rounds", "progress", SWEEP_KEY)  # `sweep` is read by experiments.results
OUTPUTS = ("deals.parquet", "agents.parquet", "summary.json", "config.yaml")
DEFAULT_ROUNDS, MAX_ROUNDS = 100, 10**9
#: Run totals in summary.json: the market's posts, `sim.metrics.COUNTS` (deals, jobs = job offers matched, each
#: counted once however many replicas it was bought as, ...), bribes taken and what clients paid net of refunds.
COUNTS = ("jobs_posted", "offers_posted", *metrics.COUNTS, "bribes_accepted", "client_outlay")


def parse_run(cfg: Mapping[str, Any]) -> tuple[ParsedConfig, int, bool]:
    """Validate the whole simulate config: the builder's sections plus `rounds` and `progress`."""
    require(isinstance(cfg, Mapping), "config", cfg, "a mapping")
    check_keys(cfg, RUN_KEYS)
    rounds = cfg.get("rounds", DEFAULT_ROUNDS)
    require_int(rounds, "rounds", 1, MAX_ROUNDS)
    progress = cfg.get("progress", True)
    require(isinstance(progress, bool), "progress", progress, "true or false")
    parse_sweep(cfg)
    return parse(cfg), rounds, progress


class RunStats:
    """Run totals for `summary.json`, accumulated round by round from the same arrays the tables are built from."""

    def __init__(self, recorder: AgentRecorder, pools: np.ndarray) -> None:
        self.recorder = recorder
        self.pools0 = pools.copy()
        self.rounds = 0
        self.counts = dict.fromkeys(COUNTS, 0)
        self.states = np.zeros(len(DealState), dtype=np.int64)
        self.profit = np.zeros(recorder.n_agents, dtype=np.int64)
        self.agent_deals = np.zeros(recorder.n_agents, dtype=np.int64)

    def update(self, result: RoundResult, profit: np.ndarray, deals_per_agent: np.ndarray) -> None:
        d, c = result.deals, self.counts
        self.rounds += 1
        c["jobs_posted"] += result.posted_jobs
        c["offers_posted"] += result.posted_offers
        for key, n in metrics.round_counts(d, result.transfers).items():
            c[key] += n
        c["client_outlay"] -= int(profit[: self.recorder.n_clients].sum())
        c["bribes_accepted"] += int(d.bribe_accepted.sum())
        self.states += np.bincount(d.state, minlength=len(DealState))
        self.profit += profit
        self.agent_deals += deals_per_agent

    def _profit_by(self, codes: np.ndarray, n_codes: int) -> list[dict[str, Any]]:
        """Exact profit and deal totals per group of agents (`codes`: group per agent); a replica is one deal."""
        agents = np.bincount(codes, minlength=n_codes)
        total, deals = np.zeros(n_codes, dtype=np.int64), np.zeros(n_codes, dtype=np.int64)
        np.add.at(total, codes, self.profit)
        np.add.at(deals, codes, self.agent_deals)
        return [
            {
                "agents": int(agents[k]),
                "total": int(total[k]),
                "deals": int(deals[k]),
                "per_agent_round": metrics.ratio(total[k], agents[k] * self.rounds),
                "per_deal": metrics.ratio(total[k], deals[k]),
            }
            for k in range(n_codes)
        ]

    def summary(self, seed: int, pools: np.ndarray, value_conserved: bool) -> dict[str, Any]:
        c, r = self.counts, self.recorder
        by_role = self._profit_by(r.role_code, len(r.role_names))
        pairs = r.role_code.astype(np.int64) * len(r.strategy_names) + r.strategy_code
        keys, pair_code = np.unique(pairs, return_inverse=True)
        by_pair = self._profit_by(pair_code, len(keys))
        return {
            "seed": seed,
            "rounds": self.rounds,
            **c,
            **metrics.rates(c),  # per deal and per job, as defined in sim.metrics
            "deals_per_state": {s.name: int(self.states[s]) for s in DealState},
            "profit_per_role": dict(zip(r.role_names, by_role, strict=True)),
            "profit_per_strategy": {
                f"{r.role_names[k // len(r.strategy_names)]} {r.strategy_names[k % len(r.strategy_names)]}": v
                for k, v in zip(keys.tolist(), by_pair, strict=True)
            },
            "pool_inflow": {p.name: int(pools[p] - self.pools0[p]) for p in Pool},
            "value_conserved": value_conserved,
        }


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_simulation(
    cfg: Mapping[str, Any], out_dir: str | os.PathLike[str], *, chunk_rows: int = 1 << 16, progress: bool | None = None
) -> dict[str, Any]:
    """Run the config (a plain mapping) and write the outputs into `out_dir`; returns the summary.

    Raises ConfigError before creating any file if the config is invalid. `progress` overrides the config's.
    """
    parsed, rounds, show = parse_run(cfg)
    sim = build(parsed)
    show = show if progress is None else progress
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    engine, ledger = sim.engine, sim.engine.ledger
    pool_slice = slice(sim.market.facts.pool_base, sim.market.facts.n_accounts)
    total0 = ledger.total()
    modules = [m.name for m in parsed.market.modules]
    recorder = AgentRecorder(sim.market, sim.population, ledger)
    stats = RunStats(recorder, ledger.balance[pool_slice])
    deals_sink = ParquetSink(out / "deals.parquet", DEAL_SCHEMA, chunk_rows)
    agents_sink = ParquetSink(out / "agents.parquet", AGENT_SCHEMA, chunk_rows)
    try:
        bar = tqdm(range(rounds), desc="simulate", unit="round", disable=not (show and sys.stderr.isatty()))
        for i in bar:
            actions = sim.population.actions(i)
            result = engine.step(actions)
            engine.events.drain()  # the public log is not written by this entry point; keep memory flat
            deals = deal_table(result, modules)
            agents = recorder.table(result, actions, ledger)
            deals_sink.write(deals)
            agents_sink.write(agents)
            stats.update(result, agents.column("profit").to_numpy(), agents.column("deals").to_numpy())
        summary = stats.summary(parsed.seed, ledger.balance[pool_slice], ledger.total() == total0)
        if not summary["value_conserved"]:  # a bug, not a config (docs/architecture.md, "Exact money")
            raise InvariantViolation(f"value not conserved: {ledger.total():,} after the run, {total0:,} at its start")
        deals_sink.commit()
        agents_sink.commit()
    except BaseException:
        deals_sink.abort()
        agents_sink.abort()
        raise
    _write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    _write_text(out / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(dict(cfg))))
    return summary


def _num(x: float | int | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _pair(s: dict[str, Any], name: str) -> str:
    return f"{_num(s[f'{name}_per_deal'], '.4f')} / {_num(s[f'{name}_per_job'], '.4f')}"


def format_summary(s: dict[str, Any]) -> str:
    """The short table printed at the end of a run."""
    per = "per deal / per job"
    lines = [
        f"rounds {s['rounds']}  seed {s['seed']}  jobs posted {s['jobs_posted']:,}  jobs {s['jobs']:,}  "
        f"deals {s['deals']:,}",
        f"  cheat rate (fake / results)   {_num(s['cheat_rate'], '.4f')}",
        f"  fake results accepted         {s['fake_accepted']:,}  ({_pair(s, 'fake_accepted')} {per})",
        f"  checks                        {s['checks']:,}  ({_pair(s, 'checks')} {per})",
        f"  mediations                    {s['mediations']:,}  ({_pair(s, 'mediations')} {per})",
        f"  bribes accepted               {s['bribes_accepted']:,}",
        f"  client cost per job           {_num(s['client_cost_per_job'], ',.2f')}",
        f"  extra executions per job      {_num(s['extra_executions_per_job'], '.4f')}",
        "",
        f"  {'profit':<36}{'agents':>7}{'total':>14}{'/agent/round':>14}{'/deal':>10}",
    ]
    rows = [(role, v) for role, v in s["profit_per_role"].items()]
    rows += [(f"  {key}", v) for key, v in s["profit_per_strategy"].items()]
    for name, v in rows:
        lines.append(
            f"  {name:<36}{v['agents']:>7}{v['total']:>14,}{_num(v['per_agent_round'], ',.2f'):>14}"
            f"{_num(v['per_deal'], ',.2f'):>10}"
        )
    lines += ["", "  deals per state"]
    lines += [f"    {name:<30}{n:>10,}" for name, n in s["deals_per_state"].items() if n]
    return "\n".join(lines)


@hydra.main(config_path="../configs", config_name="simulate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    keep_freed_memory()  # rounds allocate and free the same arrays: keep them for the next round (sim.memory)
    plain = OmegaConf.to_container(cfg, resolve=True)
    start = time.perf_counter()
    try:
        summary = run_recorded("simulate", plain, lambda run_cfg: run_simulation(run_cfg, out_dir))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        sys.exit(2)
    if summary is None:  # a recorded sweep run that was skipped or failed (reported on stderr)
        return
    print(format_summary(summary))
    print(f"  {time.perf_counter() - start:.1f} s; outputs in {out_dir}")


if __name__ == "__main__":
    main()
