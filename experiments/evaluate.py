"""`python -m experiments.evaluate run_dir=outputs/train/NAME` (or `checkpoint=PATH`, or neither for scripted play):
play N episodes with fixed seeds and write tidy tables.

Outputs in `out_dir`: `episodes.parquet` (one row per episode and scope: `focal` = the learning agents, `market` =
everybody), `agents.parquet` (one row per episode and agent), `summary.json` (totals over all episodes, rates as
ratios of sums as in simulate's summary) and `config.yaml`.

With a run directory, the market, mechanism, agents and env sections come from the run's `config.yaml`, so the
policy meets the market it was trained in; the latest checkpoint is used unless `checkpoint` names one. Without a
checkpoint the focal agents play their scripted strategies. Episode i resets the env with seed `seed + i` and
samples the policy's actions with a Generator seeded by `(seed, i)`: the same checkpoint and seed give the same
tables, byte for byte.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from marl.config import ENV_KEYS
from marl.counters import COUNTERS, ROLE_COUNTERS, role_rates
from marl.env import MarketEnv
from marl.heads import ROLE_GROUP, ROLES
from marl.rllib import LearnedPolicy, latest_checkpoint
from mechanisms.config import ConfigError, require, require_int
from twin.build import check_keys

#: evaluate.yaml extends train.yaml: the training-only sections are accepted and ignored (algo.mapping is read)
EVAL_KEYS = (
    *ENV_KEYS,
    "name",
    "run_dir",
    "checkpoint",
    "episodes",
    "eval_seed",
    "explore",
    "out_dir",
    "algo",
    "train",
    "evaluation",
    "scan",
    "ray",
    "resume",
)
SCOPES = ("focal", "market")


@dataclass(frozen=True)
class Evaluation:
    episodes: pd.DataFrame
    agents: pd.DataFrame
    summary: dict[str, Any]


def evaluate(
    env_cfg: Mapping[str, Any], policy: Any | None, episodes: int, seed: int, explore: bool = True
) -> Evaluation:
    """Play `episodes` episodes; `policy` has `act(obs, rng) -> actions` (None: the focal agents' scripts play)."""
    env = MarketEnv(env_cfg)
    episode_rows, agent_rows, totals = [], [], {scope: {} for scope in SCOPES}
    for i in range(episodes):
        rng = np.random.default_rng([seed, i]) if explore else None
        obs, _ = env.reset(seed=seed + i)
        while env.agents:
            actions = policy.act(obs, rng) if policy is not None else {}
            obs, *_ = env.step(actions)
        for scope in SCOPES:
            counts = env.counts(scope == "focal")
            for k, v in counts.items():
                totals[scope][k] = totals[scope].get(k, 0) + v
            episode_rows.append(
                {"episode": i, "episode_seed": env.episode.seed, "scope": scope, **role_rates(counts), **counts}
            )
        agent_rows.append(agent_table(env, i, learned=policy is not None))
    summary = {
        "episodes": episodes,
        "seed": seed,
        "explore": explore,
        "policy": "learned" if policy else "scripted",
        **{scope: {"rates": role_rates(totals[scope]), "counts": totals[scope]} for scope in SCOPES},
    }
    return Evaluation(pd.DataFrame(episode_rows), pd.concat(agent_rows, ignore_index=True), summary)


def agent_table(env: MarketEnv, episode: int, learned: bool) -> pd.DataFrame:
    """One row per agent of the finished episode: role, strategy (`learned` for focal agents a policy played),
    wealth change, reward, penalty and counters."""
    ep, first = env.episode, env.role_slices()
    role = np.empty(len(ep.wealth), dtype=object)
    strategy = np.empty(len(ep.wealth), dtype=object)
    row = np.zeros(len(ep.wealth), dtype=np.int64)
    for r in ROLES:
        sl = first[r]
        role[sl] = r
        row[sl] = np.arange(sl.stop - sl.start)
        strategy[sl] = ep.population.labels(ROLE_GROUP[r])
    focal = env.focal_mask()
    if learned:
        strategy[focal] = "learned"
    cols: dict[str, Any] = {
        "episode": episode,
        "account": np.arange(len(ep.wealth)),
        "role": role,
        "row": row,
        "focal": focal,
        "strategy": strategy,
        "profit": ep.wealth - ep.wealth0,
        "reward": ep.reward,
        "penalty": ep.penalty,
    }
    cols.update({name: ep.cum[i] for i, name in enumerate(COUNTERS)})
    return pd.DataFrame(cols)


def write_tables(result: Evaluation, out_dir: Path, cfg: Mapping[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    result.episodes.to_parquet(out_dir / "episodes.parquet", index=False)
    result.agents.to_parquet(out_dir / "agents.parquet", index=False)
    (out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n")
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(dict(cfg))))


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "-" if x is None else format(x, fmt)


def format_summary(s: Mapping[str, Any]) -> str:
    """The short table printed at the end of an evaluation (one column per scope)."""
    lines = [
        f"{s['episodes']} episodes  seed {s['seed']}  policy {s['policy']}"
        f"{'' if s['policy'] == 'scripted' else ' (sampled)' if s['explore'] else ' (greedy)'}",
        f"  {'':<28}{'focal':>12}{'market':>12}",
    ]
    rates = {scope: s[scope]["rates"] for scope in SCOPES}
    for key in rates["market"]:
        fmt = ",d" if key == "fake_accepted" else ".4f" if not key.startswith("return") else ",.2f"
        lines.append(f"  {key:<28}" + "".join(f"{_num(rates[scope][key], fmt):>12}" for scope in SCOPES))
    lines.append("")
    for role in ROLES:
        c = {scope: s[scope]["counts"] for scope in SCOPES}
        for name in (*ROLE_COUNTERS[role], "agents", "profit", "penalty"):
            key = f"{role}_{name}"
            lines.append(f"  {key:<28}" + "".join(f"{c[scope].get(key, 0):>12,}" for scope in SCOPES))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- entry point
def resolve(cfg: Mapping[str, Any]) -> tuple[dict[str, Any], Path | None, str]:
    """The env config, the checkpoint (or None: scripted) and the policy mapping for an evaluate config."""
    check_keys(cfg, EVAL_KEYS)
    env_cfg = {k: cfg[k] for k in ENV_KEYS if cfg.get(k) is not None}
    mapping = (cfg.get("algo") or {}).get("mapping", "role")
    checkpoint = Path(cfg["checkpoint"]) if cfg.get("checkpoint") else None
    if cfg.get("run_dir"):
        run_dir = Path(cfg["run_dir"])
        require(
            (run_dir / "config.yaml").is_file(),
            "run_dir",
            str(run_dir),
            "a training run directory with a config.yaml (written by experiments.train)",
        )
        run_cfg = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
        env_cfg = {k: run_cfg[k] for k in ENV_KEYS if run_cfg.get(k) is not None}
        mapping = (run_cfg.get("algo") or {}).get("mapping", "role")
        checkpoint = checkpoint or latest_checkpoint(run_dir)
        require(checkpoint is not None, "run_dir", str(run_dir), "a run with at least one checkpoint")
    for key, lo in (("episodes", 1), ("eval_seed", 0)):
        require_int(cfg.get(key), key, lo, 2**62)
    require(isinstance(cfg.get("explore"), bool), "explore", cfg.get("explore"), "true or false")
    return env_cfg, checkpoint, mapping


def run_evaluation(cfg: Mapping[str, Any], out_dir: Path) -> Evaluation:
    """The Hydra-free core: resolve the config, restore the policy, play and write the tables."""
    env_cfg, checkpoint, mapping = resolve(cfg)
    policy = LearnedPolicy.from_checkpoint(checkpoint, mapping, MarketEnv(env_cfg)) if checkpoint else None
    result = evaluate(env_cfg, policy, cfg["episodes"], cfg["eval_seed"], cfg["explore"])
    result.summary["checkpoint"] = str(checkpoint) if checkpoint else None
    write_tables(result, out_dir, {**cfg, **env_cfg})
    return result


@hydra.main(config_path="../configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    plain = OmegaConf.to_container(cfg, resolve=True)
    out_dir = Path(plain.get("out_dir") or HydraConfig.get().runtime.output_dir)
    import torch

    torch.set_num_threads(int((plain.get("algo") or {}).get("torch_threads", 1)))
    try:
        result = run_evaluation(plain, out_dir)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(format_summary(result.summary))
    print(f"  outputs in {os.fspath(out_dir)}")


if __name__ == "__main__":
    main()
