"""Populations: how many agents each strategy gets, which rows it gets, what they do, and config errors."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.population import Population, split_counts
from mechanisms import ConfigError
from mechanisms.deals import NEVER

SIZES = {"clients": 5, "nodes": 8, "mediators": 3}


@pytest.mark.parametrize(
    ("n", "shares", "expected"),
    [
        (10, [1, 1, 1], [4, 3, 3]),  # 3.33 each -> 3, 3, 3; one left over goes to the first group
        (10, [0.5, 0.5], [5, 5]),
        (7, [3, 1], [6, 1]),  # 5.25 -> 5, 1.75 -> 1; the left-over one goes to the first group, not the largest rest
        (9, [2, 1], [6, 3]),
        (2, [1, 1, 1], [1, 1, 0]),  # fewer agents than groups
        (0, [1, 2], [0, 0]),
        (5, [1], [5]),
        (100, [0.1, 0.2, 0.7], [10, 20, 70]),
        (11, [1, 1, 1, 1], [3, 3, 3, 2]),
    ],
)
def test_split_counts(n: int, shares: list[float], expected: list[int]) -> None:
    assert split_counts(n, shares) == expected


@given(n=st.integers(0, 10_000), shares=st.lists(st.integers(1, 1000) | st.floats(1e-3, 1e3), min_size=1, max_size=8))
def test_split_counts_sums_to_n_and_follows_shares(n: int, shares: list[float]) -> None:
    counts = split_counts(n, shares)
    assert sum(counts) == n
    assert all(c >= 0 for c in counts)
    total = sum(Fraction(s) for s in shares)
    for c, s in zip(counts, shares, strict=True):
        exact = n * Fraction(s) / total
        assert abs(c - exact) <= 1 + Fraction(1, 10**6), (c, float(exact))


def test_strategy_assignment_in_contiguous_blocks() -> None:
    config = {
        "nodes": [{"strategy": "honest", "share": 3}, {"strategy": "cheater", "share": 1, "rate": 0.25, "bribe": 7}],
        "clients": [{"strategy": "checker", "q": 0.3}, {"strategy": "never_check"}],
        "mediators": [{"strategy": "bribable", "threshold": 12}, {"strategy": "honest"}],
    }
    pop = Population.from_config(config, SIZES)
    # nodes 8 x 3/4 = 6 honest, 2 cheaters; clients 2.5 / 2.5 -> 3, 2; mediators 1.5 / 1.5 -> 2, 1
    assert pop.labels("nodes").tolist() == ["honest"] * 6 + ["cheater"] * 2
    assert pop.labels("clients").tolist() == ["checker"] * 3 + ["never_check"] * 2
    assert pop.labels("mediators").tolist() == ["bribable"] * 2 + ["honest"]
    acts = pop.actions(0)
    assert acts.nodes.cheat_rate.tolist() == [0.0] * 6 + [0.25] * 2
    assert acts.nodes.bribe.tolist() == [0] * 6 + [7] * 2
    assert acts.clients.check_rate.tolist() == [0.3] * 3 + [0.0] * 2
    assert acts.mediators.bribe_threshold.tolist() == [12, 12, NEVER]


def test_defaults_and_fresh_actions_each_round() -> None:
    pop = Population.from_config({}, SIZES)
    assert set(pop.labels("nodes")) == {"honest"} and set(pop.labels("mediators")) == {"honest"}
    assert set(pop.labels("clients")) == {"checker"}
    a0, a1 = pop.actions(0), pop.actions(1)
    assert a0.nodes.cheat_rate.tolist() == [0.0] * 8
    assert a0.clients.check_rate.tolist() == [0.1] * 5  # the checker's default q
    assert (a0.mediators.bribe_threshold == NEVER).all()
    a0.nodes.cheat_rate[:] = 1.0  # a caller changing one round's actions leaves the next round alone
    assert a1.nodes.cheat_rate.tolist() == [0.0] * 8 and pop.actions(2).nodes.cheat_rate.tolist() == [0.0] * 8


def test_a_bribable_mediator_reports_only_when_told() -> None:
    config = {"mediators": [{"strategy": "bribable", "threshold": 30, "report": True}, {"strategy": "bribable"}]}
    acts = Population.from_config(config, SIZES).actions(0)
    assert acts.mediators.report.tolist() == [True, True, False]
    assert acts.mediators.bribe_threshold.tolist() == [30, 30, 1]


def test_every_agent_gets_exactly_one_strategy() -> None:
    config = {
        "nodes": [
            {"strategy": "honest", "share": 0.2},
            {"strategy": "cheater", "share": 0.3},
            {"strategy": "honest", "share": 0.5},
        ]
    }
    pop = Population.from_config(config, {"clients": 1, "nodes": 97, "mediators": 1})
    rows = np.concatenate([r for _, r in pop.assignment["nodes"]])
    assert sorted(rows.tolist()) == list(range(97))
    assert [len(r) for _, r in pop.assignment["nodes"]] == [20, 29, 48]  # 19.4, 29.1, 48.5 -> 19, 29, 48 +1 first


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"nodes": [{"strategy": "honest"}, {"strategy": "saboteur"}]}, r"agents\.nodes\[1\]\.strategy='saboteur'"),
        ({"clients": [{"strategy": "cheater"}]}, r"agents\.clients\[0\]\.strategy='cheater'"),  # another role's
        ({"nodes": [{"share": 1}]}, r"agents\.nodes\[0\]\.strategy=None"),
        ({"nodes": [{"strategy": "honest", "share": 0}]}, r"agents\.nodes\[0\]\.share=0"),
        ({"nodes": [{"strategy": "honest", "share": -1}]}, r"agents\.nodes\[0\]\.share=-1"),
        ({"mediators": [{"strategy": "honest", "share": True}]}, r"agents\.mediators\[0\]\.share=True"),
        ({"nodes": [{"strategy": "honest", "share": "half"}]}, r"agents\.nodes\[0\]\.share='half'"),
        ({"nodes": [{"strategy": "honest", "share": math.nan}]}, r"agents\.nodes\[0\]\.share=nan"),
        ({"nodes": [{"strategy": "honest", "share": math.inf}]}, r"agents\.nodes\[0\]\.share=inf"),
        ({"nodes": []}, r"agents\.nodes=\[\]"),
        ({"node": [{"strategy": "honest"}]}, r"agents: unknown field\(s\) \['node'\]"),
        ({"nodes": [{"strategy": "cheater", "rat": 0.5}]}, r"agents\.nodes\[0\]: unknown field\(s\) \['rat'\]"),
        ({"nodes": [{"strategy": "honest", "rate": 0.5}]}, r"agents\.nodes\[0\]: unknown field\(s\) \['rate'\]"),
        ({"nodes": [{"strategy": "cheater", "rate": 1.5}]}, r"agents\.nodes\[0\]\.rate=1\.5"),
        ({"nodes": [{"strategy": "cheater", "bribe": -1}]}, r"agents\.nodes\[0\]\.bribe=-1"),
        ({"clients": [{"strategy": "checker", "q": 2}]}, r"agents\.clients\[0\]\.q=2"),
        ({"mediators": [{"strategy": "bribable", "threshold": 0}]}, r"agents\.mediators\[0\]\.threshold=0"),
        ({"mediators": [{"strategy": "bribable", "report": "yes"}]}, r"agents\.mediators\[0\]\.report='yes'"),
    ],
)
def test_config_errors_name_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        Population.from_config(config, SIZES)
