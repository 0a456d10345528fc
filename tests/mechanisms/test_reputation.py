"""Beta reputation: exact integer scores, the effective-price ranking, exclusion, whitewashing in the twin."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agents.population import Population
from mechanisms import ConfigError, MechanismStack
from mechanisms.reputation import beta_score_bps

BASE = {"name": "lilypad_v2"}


@pytest.mark.parametrize(
    ("alpha", "beta", "record", "score"),
    [
        (10_000, 10_000, (0, 0, 0), 5_000),  # a newcomer: the prior's mean 1/2
        (10_000, 10_000, (3, 1, 0), 6_666),  # (3 + 1) / (4 + 2) = 0.6666.. floored
        (10_000, 10_000, (0, 2, 1), 2_000),  # (0 + 1) / (3 + 2)
        (25_000, 5_000, (0, 0, 0), 8_333),  # 2.5 / 3
        (25_000, 5_000, (1, 1, 0), 7_000),  # 3.5 / 5
        (0, 10_000, (0, 4, 0), 0),
    ],
)
def test_score_is_exact_in_basis_points(alpha: int, beta: int, record: tuple[int, int, int], score: int) -> None:
    counters = {name: np.array([v]) for name, v in zip(("passed", "failed", "timeouts"), record, strict=True)}
    assert beta_score_bps(counters, np.array([0]), alpha, beta).tolist() == [score]


def test_rank_is_price_over_score_and_excludes_below_the_minimum(hand) -> None:
    h = hand(n_nodes=4)
    counters = {
        "passed": {"node1": 3, "node3": 9},
        "failed": {"node1": 1, "node2": 2, "node3": 0},
        "timeouts": {"node2": 1},
    }
    nodes = np.arange(1, 5)
    price = np.full(4, 10)
    plain = h.stack(BASE, {"name": "reputation"})
    # scores 5000, 6666, 2000, 9090 (10 / 11) -> 10 x 10_000 // score
    assert plain.rank_offers(nodes, price, h.context(counters)).tolist() == [20, 15, 50, 11]
    strict = h.stack(BASE, {"name": "reputation", "min_score_bps": 2_001})
    assert strict.rank_offers(nodes, price, h.context(counters)).tolist() == [20, 15, -1, 11]


def test_a_zero_score_is_excluded(hand) -> None:
    h = hand(n_nodes=2)
    stack = h.stack(BASE, {"name": "reputation", "alpha_bps": 0})
    ctx = h.context({"passed": {"node1": 1}})
    assert stack.rank_offers(np.array([1, 2]), np.array([10, 10]), ctx).tolist() == [-1, 20]  # 0 and 1/2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"alpha_bps": -1}, "alpha_bps"),
        ({"beta_bps": 1.5}, "beta_bps"),
        ({"alpha_bps": 0, "beta_bps": 0}, "beta_bps"),
        ({"min_score_bps": 10_001}, "min_score_bps"),
    ],
)
def test_config_errors_name_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"stack\[1\]\.{field}="):
        MechanismStack.from_config([BASE, {"name": "reputation", **params}])


def test_whitewasher_takes_a_new_identity_every_period() -> None:
    pop = Population.from_config(
        {"nodes": [{"strategy": "whitewasher", "rate": 0.25, "period": 3}]}, {"clients": 1, "nodes": 2, "mediators": 1}
    )
    flags = [pop.actions(r).nodes.whitewash.tolist() for r in range(7)]
    assert flags == [
        [True, True],
        [False, False],
        [False, False],
        [True, True],
        [False, False],
        [False, False],
        [True, True],
    ]
    assert pop.actions(1).nodes.cheat_rate.tolist() == [0.25, 0.25]
    with pytest.raises(ConfigError, match=r"agents\.nodes\[0\]\.period=0"):
        Population.from_config(
            {"nodes": [{"strategy": "whitewasher", "period": 0}]}, {"clients": 1, "nodes": 1, "mediators": 1}
        )


def test_twin_whitewashing_escapes_reputation(stack_run) -> None:
    """120 nodes for 60 clients (market prices, clients check 30%): 40 honest nodes, 40 that cheat half the time
    and keep their name, 40 that cheat as often and take a new identity every round. Off, the three groups win
    similar numbers of jobs. Under reputation the plain cheaters' failures price them out (263 jobs in rounds
    10-29 against 421 without), while whitewashers keep a newcomer's score and lose nothing (448 against 395)."""
    nodes = [
        {"strategy": "honest", "share": 1},
        {"strategy": "cheater", "rate": 0.5, "share": 1},
        {"strategy": "whitewasher", "rate": 0.5, "period": 1, "share": 1},
    ]
    pop = {"nodes": nodes, "clients": [{"strategy": "checker", "q": 0.3}]}
    jobs, record = {}, {}
    for on in (True, False):
        out = stack_run(
            {"order": ["lilypad_v2", "reputation"], "reputation": {"enabled": on}},
            pop,
            market={"fixed_price_share": 0.0},
            rounds=30,
        )
        first = out.engine.market.facts.first_node
        node = np.concatenate([r.deals.node for r in out.results[10:]]) - first  # after reputations formed
        jobs[on] = np.bincount(node // 40, minlength=3)  # honest, cheater, whitewasher
        record[on] = out.engine.record.counters["failed"][first : first + 120]
    honest, cheater, washer = jobs[True]
    assert cheater < 0.75 * jobs[False][1]
    assert washer > 0.9 * jobs[False][2] and washer > 1.5 * cheater
    assert honest > cheater
    # the public record shows the plain cheaters' failures; the whitewashers' are at most one round old
    assert record[True][40:80].sum() > 5 * record[True][80:120].sum()
