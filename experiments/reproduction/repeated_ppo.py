"""The repeated Prisoner's contract on a fixed pair, learned: PPO discovers collusion against a grim-trigger partner
from a uniform start above the grim-trigger discount and not below it.

The training config is the Hydra experiment `collusion_discount` (composed here exactly as
`python -m experiments.train +experiment=collusion_discount` composes it), one training per discount; the learned
policy is then played on longer episodes and its collusion rate (rounds in which it posted the cartel's result) is
measured per episode.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.analysis.analytic import Dong, grim_trigger_discount
from experiments.reproduction.common import CONFIGS, Result, load, sim_config
from experiments.reproduction.estimate import Estimate, mean
from experiments.reproduction.terms import terms
from experiments.train import parse_run, train
from marl.env import MarketEnv
from marl.rllib import LearnedPolicy

GAME = "repeated_ppo"
AGENT = "node_0"  # the learner (collusion_discount: env.focal.node = [0], one head: cheat)
PARTNER = 1  # its grim-trigger partner's node row


def train_config(
    experiment: str, discount: float, iterations: int, seed: int, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """`+experiment=<experiment>` composed on train.yaml, at one discount, without its scan; `extra`: further
    Hydra overrides (the two-learner variant, experiments.reproduction.repeated_learners)."""
    overrides = [
        f"+experiment={experiment}",
        f"env.discount={discount}",
        f"train.iterations={iterations}",
        f"train.checkpoint_every={iterations}",
        "train.progress=false",
        f"seed={seed}",
        "scan=null",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("run_dir")
    plain.pop("resume")
    return plain


def play_learned(
    cfg: Mapping[str, Any],
    episodes: int,
    eval_rounds: int,
    score: Callable[[MarketEnv, LearnedPolicy, int, int], Any],
) -> np.ndarray:
    """Train `cfg`, then play the learned policy for `episodes` episodes of `eval_rounds` rounds; one row of
    `score(env, policy, seed, episode)` per episode."""
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(cfg, Path(run_dir), keep_algo=True, log=lambda _: None)
        try:
            run = parse_run(cfg)
            env = MarketEnv({**run.env, "env": {**run.env["env"], "rounds": eval_rounds}})
            policy = LearnedPolicy.from_algorithm(result.algo, run.algo.mapping, env)
            return np.array([score(env, policy, run.evaluation.seed, i) for i in range(episodes)])
        finally:
            result.algo.stop()


def learned_collusion(cfg: Mapping[str, Any], episodes: int, eval_rounds: int) -> np.ndarray:
    """Per episode of the learned node (sampling its actions), the share of its decisions while its partner still
    colluded in which it posted the cartel's result. Once it deviates, grim trigger punishes it forever, and what it
    does then is not the collusion decision."""
    return play_learned(cfg, episodes, eval_rounds, cooperative_rate)


def cooperative_rate(env: MarketEnv, policy: LearnedPolicy, seed: int, episode: int) -> float:
    """Episode `episode` (env seed seed + episode, actions sampled from a Generator seeded by (seed, episode), as
    `experiments.evaluate` plays them): the learner's collusion share over the rounds in which its grim-trigger
    partner still colludes (it has not been betrayed yet; the learner tells this from its partner's and its own
    last actions)."""
    rng = np.random.default_rng([seed, episode])
    obs, _ = env.reset(seed=seed + episode)
    decisions = []
    while env.agents:
        actions = policy.act(obs, rng)
        if not env.episode.history.betrayed[PARTNER]:
            decisions.append(int(np.asarray(actions[AGENT]).ravel()[0]))
        obs, *_ = env.step(actions)
    return float(np.mean(decisions))


def rate(samples: np.ndarray) -> Estimate:
    """The mean of per-episode rates with its t interval, cut to [0, 1] (a rate cannot leave it)."""
    m = mean(samples)
    return Estimate(m.value, max(m.lo, 0.0), min(m.hi, 1.0))


def reproduce(small: bool = False) -> list[Result]:
    preset = load(GAME, small)
    meas = preset["measure"]
    threshold = None
    rows = []
    for discount in meas["discounts"]:
        cfg = train_config(preset["experiment"], discount, meas["iterations"], meas["seed"])
        if threshold is None:
            t = terms(sim_config(cfg, 0))
            threshold = grim_trigger_discount(Dong(t.price, t.compute_cost, t.deposit, t.fee))
        above = discount > threshold
        rates = learned_collusion(cfg, meas["episodes"], meas["eval_rounds"])
        side = "above" if above else "below"
        rows.append(
            Result(
                GAME,
                preset["paper"],
                f"PPO on a fixed pair against grim trigger, uniform start: collusion rate learned at discount "
                f"{discount} ({side} delta* = {threshold:.4g}; best response {'collude' if above else 'honest'}: "
                f"the interval {'above' if above else 'below'} {meas['side']})",
                1.0 if above else 0.0,
                rate(rates),
                side=float(meas["side"]),
            )
        )
    return rows
