"""Learned deviations (experiments/analysis/learned.py): an RLlib best response and a trained coalition, measured by
`assess` exactly like the scripted library entries.

The inspection game (price 10, cost 6, results multiplier 2, clients check with committed q): always cheating
gains 6 - 30 q per job over honesty, +3 at q = 0.1 and -6 at q = 0.4, so a best response cheats at q = 0.1 and
stays honest at q = 0.4 (gain 0). On a 40-node market each node serves one job per round, so the gain per round is
the gain per job. The trained policies are measured by their chosen (most likely) action, and the analytic gain of
the best response (`experiments.analysis.analytic`) must lie inside the Student-t interval over seeds, which must be
narrower than the gap between cheating and honesty (so it cannot hold both).

The RLlib tests share one Ray session (`ray_session`) and run on one xdist worker (group `rllib`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from experiments.analysis import configs
from experiments.analysis.analytic import inspection_game
from experiments.analysis.assess import assess, parse_study
from experiments.analysis.learned import LearnedBehaviour
from experiments.analysis.runner import Assignment, Scenario, run
from marl.env import MarketEnv
from mechanisms.config import ConfigError

pytestmark = pytest.mark.xdist_group("rllib")

MARKET = {**configs.group("market", "threshold"), "n_clients": 40, "n_nodes": 40}
BASE = {"order": ["lilypad_v2"], "lilypad_v2": {"mediation_fee": 6}}
SEEDS = list(range(10))


def honest(q: float) -> dict[str, Any]:
    return {
        "nodes": [{"strategy": "honest"}],
        "clients": [{"strategy": "checker", "q": q}],
        "mediators": [{"strategy": "honest"}],
    }


def study(seeds: list[int] = SEEDS, **learned: Any) -> Any:
    return parse_study(
        {
            "rounds": 20,
            "seeds": seeds,
            "deviator_share": 0.25,
            "library": {"node": [{"strategy": "cheater", "rate": 1.0}]},
            "learned": {"enabled": True, "iterations": 10, "explore": False, **learned},
        }
    )


def assert_matches_theory(estimate: Any, q: float) -> None:
    """The best response's analytic gain per job (cheat iff it pays) lies in the measured interval, and the interval
    is narrower than the distance between always cheating and never cheating, so it tells the two apart."""
    game = inspection_game({"market": MARKET, "mechanism": BASE, "agents": honest(q)})
    assert game is not None and game.q == q
    cheat = game.gain(q)  # +3 at q = 0.1, -6 at q = 0.4
    best = max(0.0, cheat)
    assert estimate.lo <= best <= estimate.hi, (q, best, estimate)
    assert estimate.hi - estimate.lo < abs(cheat), (q, estimate)


class Probe:
    """A stand-in RL module: logits from the observations (so actions depend on them); records what it saw."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def forward_inference(self, batch: dict[str, Any]) -> dict[str, Any]:
        obs = batch["obs"].numpy()
        self.seen.append(obs.copy())
        cheat = np.sin(7 * obs.sum(axis=1))  # head cheat: 2 logits; head bribe: 4 logits
        logits = np.column_stack(
            [np.zeros(len(obs)), cheat, np.zeros((len(obs), 2)), np.cos(obs.sum(axis=1)), np.zeros(len(obs))]
        )
        return {"action_dist_inputs": torch.from_numpy(logits)}


def test_learned_behaviour_sees_what_the_env_shows() -> None:
    """Replayed outside MarketEnv (in the analysis runner), a policy gets the env's observations, round by round."""
    rows = (3, 7, 21)
    cfg = {
        "seed": 5,
        "market": MARKET,
        "mechanism": BASE,
        "agents": honest(0.1),
        "env": {"rounds": 6, "focal": {"node": list(rows)}},
    }
    env = MarketEnv(cfg)
    obs, info = env.reset(seed=5)
    env_obs = []
    while env.agents:  # the env's own loop, with the probe's choices (argmax per head)
        mat = np.stack([obs[f"node_{r}"] for r in rows])
        env_obs.append(mat)
        logits = Probe().forward_inference({"obs": torch.from_numpy(mat)})["action_dist_inputs"].numpy()
        obs, *_ = env.step(
            {f"node_{r}": np.array([logits[i, :2].argmax(), logits[i, 2:].argmax()]) for i, r in enumerate(rows)}
        )
    probe = Probe()
    behaviour = LearnedBehaviour("node", "probe", probe, env, explore=False)
    run(
        Scenario(MARKET, BASE, honest(0.1), rounds=6),
        info["node_3"]["episode_seed"],
        [Assignment(np.array(rows), behaviour)],
    )
    assert len(probe.seen) == len(env_obs) == 6
    for seen, shown in zip(probe.seen, env_obs, strict=True):
        np.testing.assert_array_equal(seen, shown)
    assert any(s[:, 7].any() for s in probe.seen)  # last_cheated: some focal node cheated, so actions mattered


def test_shared_reward_gives_every_member_the_coalitions_mean() -> None:
    cfg = {
        "seed": 1,
        "market": MARKET,
        "mechanism": BASE,
        "agents": honest(0.3),
        "env": {"rounds": 3, "focal": {"node": 3}},
    }
    alone, shared = MarketEnv(cfg), MarketEnv({**cfg, "env": {**cfg["env"], "shared_reward": True}})
    for env in (alone, shared):
        env.reset(seed=1)
    acts = {"node_0": [1, 0], "node_1": [0, 0], "node_2": [1, 0]}
    _, own, *_ = alone.step(acts)
    _, team, *_ = shared.step(acts)
    assert len(set(own.values())) > 1 and len(set(team.values())) == 1  # cheaters and honest earn differently
    assert team["node_0"] == pytest.approx(np.mean(list(own.values())))
    with pytest.raises(ConfigError, match="shared_reward"):
        MarketEnv({**cfg, "env": {"shared_reward": 1}})


def test_learned_study_config_is_validated() -> None:
    assert parse_study({}).learned.enabled is False  # off unless asked for
    with pytest.raises(ConfigError, match=r"study\.learned\.roles"):
        parse_study({"learned": {"roles": ["staker"]}})
    with pytest.raises(ConfigError, match=r"study\.learned\.coalitions\[0\]"):
        parse_study({"learned": {"coalitions": [{"node": 2}]}})


def learned_gain(a: Any, kind: str) -> Any:
    return next(g for g in a.gains if g.kind == kind and g.name.startswith("learned"))


@pytest.mark.slow
@pytest.mark.parametrize("q", [0.1, 0.4])
def test_learned_node_best_response_in_the_inspection_game(ray_session: Any, q: float, record_property: Any) -> None:
    a = assess(Scenario(MARKET, BASE, honest(q), rounds=20, name=f"q={q}"), study())
    learned = learned_gain(a, "deviation").estimate
    record_property("learned_gain", [float(learned.mean), float(learned.lo), float(learned.hi)])
    assert learned.per_seed and len(learned.per_seed) == len(SEEDS)
    assert_matches_theory(learned, q)  # q = 0.1: cheats, gain 3 (not 0); q = 0.4: honest, gain 0 (not -6)
    assert a.row()["learned_node_gain"] == learned.mean


@pytest.mark.slow
def test_trained_two_node_coalition_reports_a_gain_per_member(ray_session: Any, record_property: Any) -> None:
    """Two members give few samples per seed, so the coalition is measured over more seeds (training is unchanged)."""
    a = assess(
        Scenario(MARKET, BASE, honest(0.1), rounds=20, name="coalition"),
        study(list(range(16)), roles=[], coalitions=[{"name": "2-node coalition", "node": 2}]),
    )
    gain = learned_gain(a, "coalition")
    record_property("coalition_gain", [float(x) for x in (gain.estimate.mean, gain.estimate.lo, gain.estimate.hi)])
    assert gain.members == 2 and gain.role == "node" and "2-node coalition" in gain.name
    assert_matches_theory(gain.estimate, 0.1)  # per member: cheating pays 3 a job, independently of the partner
    assert a.row()["learned_coalition_gain"] == gain.estimate.mean
    assert not any(g.name.startswith("learned") for g in a.gains if g.kind == "deviation")
