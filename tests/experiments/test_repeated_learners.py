"""The two-learner probe of the repeated Prisoner's contract (experiments.reproduction.repeated_learners): the pair
it trains (both nodes learning, no scripted partner), how a learned pair's play is scored, and a small run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from experiments.reproduction import repeated_learners as rl
from experiments.reproduction.common import load
from experiments.reproduction.repeated_ppo import train_config
from experiments.train import parse_run
from marl.env import MarketEnv
from marl.observations import COMMON_FEATURES, PARTNER_FEATURE, role_features
from mechanisms.config import ConfigError

HONEST, CARTEL = 0, 1


def composed(variant: str) -> dict[str, Any]:
    preset = load(rl.GAME)
    extra = [*preset["learners"], *preset["variants"][variant]]
    return train_config(preset["experiment"], 0.9, 2, 0, extra)


@pytest.mark.parametrize(("variant", "mapping"), [("shared", "role"), ("independent", "agent")])
def test_both_nodes_learn_and_nothing_is_scripted(variant: str, mapping: str) -> None:
    cfg = composed(variant)
    assert cfg["env"]["focal"]["node"] == [0, 1]
    assert cfg["env"]["repeated"] == ["collude", "collude"]  # a learner's fakes are the cartel's; no grim partner
    assert cfg["env"]["partner_action"] is True
    assert cfg["env"]["discount"] == 0.9
    assert cfg["algo"]["mapping"] == mapping
    env = MarketEnv(parse_run(cfg).env)
    assert set(env.possible_agents) >= set(rl.PAIR)


def partner_seen(env: MarketEnv, obs: dict[str, Any]) -> tuple[float, float]:
    """Each node's `last_partner_cartel` entry."""
    i = (*COMMON_FEATURES, *role_features("node", env.cfg)).index(PARTNER_FEATURE)
    return float(obs[rl.PAIR[0]][i]), float(obs[rl.PAIR[1]][i])


@pytest.mark.parametrize("variant", ["shared", "independent"])
def test_each_learner_sees_what_the_other_posted_and_nothing_overrides_it(variant: str) -> None:
    # Both nodes' posts follow their own actions (no grim partner, no fixed cartel) and each sees the other's.
    env = MarketEnv(parse_run(composed(variant)).env)
    obs, _ = env.reset(seed=0)
    for choices in [(CARTEL, HONEST), (HONEST, CARTEL), (HONEST, HONEST), (CARTEL, CARTEL)]:
        obs, *_ = env.step({a: np.array(c) for a, c in zip(rl.PAIR, choices, strict=True)})
        assert partner_seen(env, obs) == (float(choices[1]), float(choices[0]))


class Fixed:
    """A policy that posts fixed choices per node, whatever it observes."""

    def __init__(self, choices: dict[str, int]) -> None:
        self.choices = choices

    def act(self, obs: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        return {a: np.array([c]) for a, c in self.choices.items() if a in obs}


@pytest.mark.parametrize(
    ("choices", "expected"),
    [((CARTEL, CARTEL), (1.0, 1.0)), ((CARTEL, HONEST), (0.0, 0.5)), ((HONEST, HONEST), (0.0, 0.0))],
)
def test_pair_rates_score_mutual_collusion(choices: tuple[int, int], expected: tuple[float, float]) -> None:
    env = MarketEnv(parse_run(composed("shared")).env)
    policy = Fixed(dict(zip(rl.PAIR, choices, strict=True)))
    assert rl.pair_rates(env, policy, 0, 0) == expected  # type: ignore[arg-type]


def test_unknown_variant_names_the_field() -> None:
    with pytest.raises(ConfigError, match="variant"):
        rl.run_probes(["grim"], small=True)


def test_nonpositive_iterations_name_the_field() -> None:
    with pytest.raises(ConfigError, match="iterations=0"):
        rl.run_probes(["shared"], small=True, iterations=0)


def test_small_probe_reports_rates_within_their_intervals() -> None:
    lines: list[str] = []
    (p,) = rl.run_probes(["shared"], [0.9], [0], small=True, report=lines.append)
    for est in (p.mutual, p.cartel):
        assert 0.0 <= est.lo <= est.value <= est.hi <= 1.0
    assert p.mutual.value <= p.cartel.value  # both colluding is one of the rounds some node colluded in
    assert lines == [rl.line(p)]
