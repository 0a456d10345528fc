"""RLlib sampling throughput: the market env against a no-op env with identical agents and spaces.

Both envs are sampled by the same RLlib `MultiAgentEnvRunner` (new API stack, PPO modules, exploration on, as in
training with `num_env_runners=0`), so the difference is what the market env adds to sampling: the engine round,
the observations, rewards and infos. Reported per size (focal nodes = nodes = clients): env steps/s and agent
decisions/s for both, the overhead `market sampling time / noop sampling time - 1` (targets:
`experiments.readme_tables.RL_TARGET`), the env alone (no RLlib, fixed actions) and its share of the market env's
sampling time. Times are the best of `--repeats` interleaved runs (the machine is shared).

    .venv/bin/python benchmarks/rl_env.py [--sizes 8 32 128] [--markets 1 16] [--steps 1000] [--repeats 3]

Market rounds count as env steps (RLlib counts each sub-env's step), so with K markets per step the rates are per
market round and decisions/s = rounds/s x agents per market.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from experiments.train import algorithm_config, parse_run
from marl.env import MarketEnv
from marl.rllib import RLlibMarketEnv
from marl.vector import VecMarketEnv, market_env_runner

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class NoopEnv(MultiAgentEnv):
    """The market env's agents (by index, as `RLlibMarketEnv` shows them), spaces and episode length; zero
    observations and rewards, no market behind it."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        probe = MarketEnv(dict(config or {}))
        self.rounds = probe.cfg.rounds
        names = probe.possible_agents
        self.possible_agents = list(range(len(names)))
        self.agents: list[int] = []
        self.observation_spaces = {i: probe.observation_space(a) for i, a in enumerate(names)}
        self.action_spaces = {i: probe.action_space(a) for i, a in enumerate(names)}
        self._zero = {a: np.zeros(s.shape, dtype=s.dtype) for a, s in self.observation_spaces.items()}
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.t, self.agents = 0, list(self.possible_agents)
        return dict(self._zero), {a: {} for a in self.agents}

    def step(self, action_dict: dict) -> tuple[dict, dict, dict, dict, dict]:
        self.t += 1
        done = self.t >= self.rounds
        agents = self.agents
        if done:
            self.agents = []
        term = {**dict.fromkeys(agents, done), "__all__": done}
        trunc = {**dict.fromkeys(agents, False), "__all__": False}
        return dict(self._zero), dict.fromkeys(agents, 0.0), term, trunc, {a: {} for a in agents}


def train_cfg(size: int) -> dict[str, Any]:
    overrides = [
        "+experiment=node_cheat",
        f"market.n_nodes={size}",
        f"market.n_clients={size}",
        f"env.focal.node={size}",
    ]
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("train", overrides=overrides), resolve=True)
    cfg.pop("run_dir")
    cfg.pop("resume")
    return cfg


def best_times(size: int, steps: int, repeats: int, markets: int = 1) -> dict[str, float]:
    """Fastest of `repeats` timings (seconds for `steps` market rounds) of RLlib sampling the market env and the
    no-op env, interleaved so that load from other processes hits both alike, and of the market env alone (no RLlib,
    fixed actions). With `markets` > 1 both are RLlib vector envs of that many sub-envs: the no-op env through RLlib's
    stock vectorisation, the markets in one engine per step (`marl.vector`)."""
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    cfg = train_cfg(size)
    if markets > 1:
        cfg["algo"]["env_runners"] = {"num_envs_per_env_runner": markets}
    run = parse_run(cfg)
    config = algorithm_config(run)  # also sets torch to one thread, as training does
    market_runner = market_env_runner() if markets > 1 else MultiAgentEnvRunner
    runners = {
        "market": market_runner(config=config.copy(copy_frozen=False).environment(RLlibMarketEnv)),
        "noop": MultiAgentEnvRunner(config=config.copy(copy_frozen=False).environment(NoopEnv)),
    }
    if markets > 1:
        env: Any = VecMarketEnv(run.env, markets)
        env.reset(seed=0)
        actions = [{i: space.sample() for i, space in env.single_action_spaces.items()} for _ in range(markets)]

        def alone() -> None:
            for _ in range(steps // markets):
                env.step(actions)
    else:
        env = MarketEnv(run.env)
        env.reset(seed=0)
        actions = {a: env.action_space(a).sample() for a in env.agents}

        def alone() -> None:
            for _ in range(steps):
                if not env.agents:
                    env.reset()
                env.step(actions)

    jobs = {name: (lambda r=r: r.sample(num_timesteps=steps, random_actions=False)) for name, r in runners.items()}
    jobs["alone"] = alone
    for job in jobs.values():  # warm-up
        job()
    best = dict.fromkeys(jobs, float("inf"))
    for _ in range(repeats):
        for name, job in jobs.items():
            t0 = time.perf_counter()
            job()
            best[name] = min(best[name], time.perf_counter() - t0)
    for r in runners.values():
        r.stop()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 128], help="focal nodes (= nodes) per market")
    parser.add_argument("--markets", type=int, nargs="+", default=[1], help="markets per env step (RLlib sub-envs)")
    parser.add_argument("--steps", type=int, default=1000, help="market rounds per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="also write the rows as JSON here (read by experiments.readme_tables)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run = {"steps": args.steps, "repeats": args.repeats, "cpus": os.cpu_count(), "load_start": os.getloadavg()[0]}
    print(f"{load()} at start")
    print(
        f"{'agents':>7}{'markets':>8}{'market env/s':>14}{'noop env/s':>12}{'market dec/s':>14}{'noop dec/s':>12}"
        f"{'overhead':>10}{'env alone/s':>13}{'env share':>11}"
    )
    rows = []
    for size in args.sizes:
        for k in args.markets:
            t = best_times(size, args.steps, args.repeats, k)
            market, noop = args.steps / t["market"], args.steps / t["noop"]
            alone = (args.steps // k * k) / t["alone"]
            print(
                f"{size:>7}{k:>8}{market:>14,.0f}{noop:>12,.0f}{market * size:>14,.0f}{noop * size:>12,.0f}"
                f"{t['market'] / t['noop'] - 1:>10.1%}{alone:>13,.0f}{t['alone'] / t['market']:>11.1%}",
                flush=True,
            )
            rows.append({"agents": size, "markets": k, "market_steps_per_s": market, "noop_steps_per_s": noop,
                         "market_decisions_per_s": market * size, "overhead": t["market"] / t["noop"] - 1,
                         "alone_steps_per_s": alone, "env_share": t["alone"] / t["market"]})  # fmt: skip
    print(f"{load()} at end")
    run["load_end"] = os.getloadavg()[0]
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"run": run, "rows": rows}, indent=2) + "\n")


def load() -> str:
    return f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"


if __name__ == "__main__":
    main()
