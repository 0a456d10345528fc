"""Protocol-set check rates: fixed, by reputation, within a budget; the twin with clients who never check.

Hand-built deals: job cost J = 30 unless stated, mediation fee 20 (lilypad_v2 below).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mechanisms import ConfigError, MechanismStack
from mechanisms.protocol import DealState

BASE = {"name": "lilypad_v2", "mediation_fee": 20}


def policy(**params: Any) -> dict[str, Any]:
    return {"name": "check_policy", **params}


def test_fixed_rate_replaces_the_clients_own(hand) -> None:
    h = hand()
    stack = h.stack(BASE, policy(mode="fixed", q=0.3))
    d = h.deals(stack, job_cost=[30, 30, 30], u=[0.0, 0.2999, 0.3], phase="judged")
    assert d.check_rate.tolist() == [0.3, 0.3, 0.3]
    stack.choose_checks(d)  # lilypad_v2 checks where its uniform < the rate
    assert d.checked.tolist() == [True, True, False]


def test_reputation_rate_falls_with_the_score(hand) -> None:
    h = hand(n_nodes=3)
    stack = h.stack(BASE, policy(mode="reputation", q_min=0.1, q_max=0.5))
    counters = {"passed": {"node1": 3, "node2": 9}, "failed": {"node1": 1}}
    d = h.deals(stack, node=[0, 1, 2], counters=counters)
    # scores 5000, 6666, 9090: q = 0.1 + 0.4 x (1 - score)
    assert d.check_rate.tolist() == pytest.approx([0.3, 0.1 + 0.4 * 0.3334, 0.1 + 0.4 * 0.0910], rel=1e-12)


def test_budget_rate_spends_at_most_the_budget(hand) -> None:
    h = hand(balance=10_000)
    stack = h.stack(BASE, policy(mode="budget", budget_bps=1_000, q_max=0.4))
    d = h.deals(stack, job_cost=[30, 60, 100, 1_000])
    # 10% of the job cost over a fee of 20: 0.15, 0.3, then capped at 0.4
    assert d.check_rate.tolist() == pytest.approx([0.15, 0.3, 0.4, 0.4], rel=1e-12)
    assert (d.check_rate * d.mediation_fee <= 0.1 * d.job_cost + 1e-9).all()
    d.mediation_fee[:] = 0  # a free check: as many as the cap allows
    assert stack.get("check_policy").rate(d).tolist() == [0.4] * 4


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"mode": "random"}, "mode"),
        ({"q": 1.5}, "q"),
        ({"q_min": 0.6, "q_max": 0.5}, "q_min"),
        ({"budget_bps": -1}, "budget_bps"),
        ({"alpha_bps": -1}, "alpha_bps"),
    ],
)
def test_config_errors_name_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"stack\[1\]\.{field}="):
        MechanismStack.from_config([BASE, policy(**params)])


def test_twin_reputation_checks_find_cheaters_clients_would_not(stack_run) -> None:
    """Half the nodes always cheat and no client checks on its own. Off: no check, every cheat is paid (925 fakes
    accepted in 30 rounds). With reputation-driven checks (2% to 50%) the protocol checks newcomers at 26%, caught
    cheaters at up to 50% and proven honest nodes ever less: after 10 rounds cheaters' deals are checked at 0.43,
    honest nodes' at 0.12, and fakes accepted drop to 543."""
    pop = {
        "nodes": [{"strategy": "honest", "share": 1}, {"strategy": "cheater", "rate": 1.0, "share": 1}],
        "clients": [{"strategy": "never_check"}],
    }
    runs = {}
    for on in (True, False):
        mech = {
            "order": ["lilypad_v2", "check_policy"],
            "check_policy": {"enabled": on, "mode": "reputation", "q_min": 0.02, "q_max": 0.5},
        }
        runs[on] = stack_run(mech, pop, rounds=30)
    on, off = runs[True], runs[False]
    assert sum(int(r.deals.checked.sum()) for r in off.results) == 0 == off.count(DealState.MediationRejected)
    assert on.fake_accepted < 0.7 * off.fake_accepted
    late = on.results[10:]
    cheater = np.concatenate([r.deals.node for r in late]) - on.engine.market.facts.first_node >= 60
    rate = np.concatenate([r.deals.check_rate for r in late])
    assert rate[cheater].mean() > 0.4 > 0.15 > rate[~cheater].mean()
