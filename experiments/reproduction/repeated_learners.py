"""The repeated Prisoner's contract on a fixed pair with two PPO learners: does collusion emerge from a uniform start
above the grim-trigger discount and not below it? A probe that prints per-seed rates (configs/reproduce
/repeated_learners.yaml), not a README row: the row's claim is measured against grim trigger (`repeated_ppo`).

    python -m experiments.reproduction.repeated_learners [--variant V ...] [--discount D ...] [--seed S ...] [--small]
        [--iterations N]
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments.reproduction.common import load
from experiments.reproduction.estimate import Estimate
from experiments.reproduction.repeated_ppo import play_learned, rate, train_config
from marl.env import MarketEnv
from marl.rllib import LearnedPolicy
from mechanisms.config import require

GAME = "repeated_learners"
PAIR = ("node_0", "node_1")


@dataclass(frozen=True)
class Probe:
    """One training's outcome: mutual collusion (both posted the cartel's result) and the cartel share of all
    decisions, each the mean over evaluation episodes with its interval."""

    variant: str
    discount: float
    seed: int
    mutual: Estimate
    cartel: Estimate


def pair_rates(env: MarketEnv, policy: LearnedPolicy, seed: int, episode: int) -> tuple[float, float]:
    """Episode `episode` (env seed seed + episode, actions sampled from a Generator seeded by (seed, episode)): the
    share of rounds in which both nodes posted the cartel's result, and the share of their decisions that did."""
    rng = np.random.default_rng([seed, episode])
    obs, _ = env.reset(seed=seed + episode)
    rounds = []
    while env.agents:
        actions = policy.act(obs, rng)
        rounds.append([int(np.asarray(actions[a]).ravel()[0]) for a in PAIR])
        obs, *_ = env.step(actions)
    both = np.array(rounds)
    return float(np.mean(both.all(axis=1))), float(np.mean(both))


def probe(cfg: Mapping[str, Any], episodes: int, eval_rounds: int) -> tuple[Estimate, Estimate]:
    """Train `cfg` (both nodes focal), then play the learned pair: (mutual collusion, cartel share)."""
    samples = play_learned(cfg, episodes, eval_rounds, pair_rates)
    return rate(samples[:, 0]), rate(samples[:, 1])


def run_probes(
    variants: Sequence[str] = (),
    discounts: Sequence[float] = (),
    seeds: Sequence[int] = (),
    small: bool = False,
    report: Any = print,
    iterations: int | None = None,
) -> list[Probe]:
    """Every (variant, discount, seed) of the preset (or the given subsets), one training each; `iterations`
    overrides the preset's training length (a variant's own `train.iterations` still wins)."""
    preset = load(GAME, small)
    meas = preset["measure"]
    known = preset["variants"]
    for v in variants:
        require(v in known, "variant", v, f"one of {sorted(known)}")
    if iterations is not None:
        require(iterations >= 1, "iterations", iterations, "an integer >= 1")
    its = meas["iterations"] if iterations is None else iterations
    out = []
    for variant in variants or list(known):
        for discount in discounts or meas["discounts"]:
            for seed in seeds or meas["seeds"]:
                extra = [*preset["learners"], *known[variant]]
                cfg = train_config(preset["experiment"], discount, its, seed, extra)
                mutual, cartel = probe(cfg, meas["episodes"], meas["eval_rounds"])
                out.append(Probe(variant, discount, seed, mutual, cartel))
                report(line(out[-1]))
    return out


def line(p: Probe) -> str:
    m, c = p.mutual, p.cartel
    return (
        f"{p.variant:<20} discount {p.discount:<4} seed {p.seed}   mutual collusion {m.value:.3f} "
        f"[{m.lo:.3f}, {m.hi:.3f}]   cartel share {c.value:.3f} [{c.lo:.3f}, {c.hi:.3f}]"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", nargs="*", default=[], help="variants of the preset (default: all)")
    parser.add_argument("--discount", nargs="*", type=float, default=[], help="default: the preset's")
    parser.add_argument("--seed", nargs="*", type=int, default=[], help="training seeds (default: the preset's)")
    parser.add_argument("--small", action="store_true", help="the sizes the tests run")
    parser.add_argument("--iterations", type=int, default=None, help="training iterations (default: the preset's)")
    args = parser.parse_args(argv)
    report = lambda s: print(s, flush=True)  # noqa: E731
    run_probes(args.variant, args.discount, args.seed, args.small, report, args.iterations)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
