"""Retention: storage cost in the payer's exposure and ledger, checks refused after the window, locked value, order.

Hand-built deals: job cost J = 30, compute cost K = 12; base terms (lilypad_v2 below): payment collateral 45,
results collateral 60, submit-timeout collateral 7, judge-timeout collateral 5, mediation fee 20.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mechanisms import ConfigError, MarketFacts, MechanismStack
from mechanisms.protocol import DealState, Direction, Reason, Step
from mechanisms.retention import LOCKED
from tests.mechanisms.conftest import LILYPAD_BASE as BASE

S = DealState


def retention(**params: Any) -> dict[str, Any]:
    return {"name": "retention", "window": 100, "storage_cost": 2, **params}


@pytest.mark.parametrize(
    ("payer", "client", "node"), [("client", 45 + 5 + 20 + 200, 7 + 60 + 12), ("node", 45 + 5 + 20, 7 + 60 + 12 + 200)]
)
def test_storage_is_in_the_payers_exposure(hand, payer: str, client: int, node: int) -> None:
    h = hand()
    d = h.deals(h.stack(BASE, retention(payer=payer)))
    assert (int(d.client_exposure[0]), int(d.node_exposure[0])) == (client, node)


def test_checks_after_the_window_are_refused(hand) -> None:
    h = hand()
    stack = h.stack(BASE, retention(window=4))
    d = h.deals(stack, job_cost=[30] * 4, phase="judged", check_rate=1.0, u=0.0, judge_time=[0.0, 4.0, 4.0001, 50.0])
    stack.choose_checks(d)  # lilypad_v2 asks for every check (u < 1), retention refuses late ones
    assert d.checked.tolist() == [True, True, False, False]


@pytest.mark.parametrize("payer", ["client", "node"])
def test_storage_and_locked_value_settle_exactly(hand, payer: str) -> None:
    h = hand(n_clients=3, n_nodes=3)
    stack = h.stack(BASE, retention(payer=payer))
    # deal 0 accepted and paid; deal 1 agreed but no result (timeout); deal 2 never agreed by the node
    d = h.deals(
        stack, client=[0, 1, 2], node=[0, 1, 2], phase=["judged", "agreed", "none"], client_agreed=[True, True, True]
    )
    s = h.settle(stack, d)
    assert d.state.tolist() == [S.ResultsAccepted, S.TimeoutSubmitResults, S.TimeoutAgree]
    t = s.transfers
    sel = t.reason == Reason.StorageCost
    assert t.step[sel].tolist() == [Step.Agree] * 2 and t.direction[sel].tolist() == [Direction.Spent] * 2
    assert t.payee[sel].tolist() == [h.account("compute")] * 2 and t.amount[sel].tolist() == [200, 200]
    base = {"client0": -30, "node0": 18, "node1": -7, "burn": 7, "compute": 12 + 400}
    storage = {f"{payer}0": -200, f"{payer}1": -200}
    expected = {k: base.get(k, 0) + storage.get(k, 0) for k in base.keys() | storage.keys()}
    assert s.delta == {k: v for k, v in expected.items() if v}
    assert d.extra[LOCKED].tolist() == [30 * 100, 0, 0]  # payment x window, for the paid deal only


def test_retention_must_follow_every_source_of_checks() -> None:
    facts = MarketFacts(2, 12, 100, n_clients=1, n_nodes=1)
    MechanismStack.from_config([BASE, retention()]).validate(facts)
    with pytest.raises(
        ConfigError,
        match=r"mechanism\.stack=\['lilypad_v2', 'retention', 'whistleblowing'\] is "
        r"invalid: retention reads DealBatch\.checked in choose_checks before whistleblowing updates "
        r"it in choose_checks; allowed: an order with retention after whistleblowing",
    ):
        MechanismStack.from_config([BASE, retention(), {"name": "whistleblowing"}]).validate(facts)
    with pytest.raises(
        ConfigError,
        match=r"retention .* before lilypad_v2 .*; allowed: an order with retention after "
        r"lilypad_v2",
    ):
        MechanismStack.from_config([retention(), BASE]).validate(facts)
    # a disabled check source does not count
    MechanismStack.from_config([BASE, retention(), {"name": "whistleblowing", "enabled": False}]).validate(facts)


@pytest.mark.parametrize(
    ("params", "field", "allowed"),
    [
        ({"payer": "protocol"}, "payer", r"\['client', 'node'\]"),
        ({"window": -1}, "window", "integer"),
        ({"storage_cost": -2}, "storage_cost", "integer"),
        ({"window": 10**9, "storage_cost": 10**7}, "storage_cost", "at most"),
    ],
)
def test_config_errors_name_the_field(params: dict[str, Any], field: str, allowed: str) -> None:
    with pytest.raises(ConfigError, match=rf"stack\[1\]\.{field}=.*{allowed}"):
        MechanismStack.from_config([BASE, {"name": "retention", **params}])


def test_twin_short_window_refuses_late_checks(stack_run) -> None:
    """Clients check 30% of results and judge after an exponential time of mean 5 blocks; half the nodes always
    cheat. A 4-block window refuses every check whose judgement came later (369 checks become 194, about
    1 - e^-0.8 = 55% kept), so more fakes are paid (432 -> 526), and every agreed deal paid 4 x 2 for storage.
    Retention draws no uniforms, so both runs see the same deals and the refusal is checked deal by deal."""
    pop = {
        "nodes": [{"strategy": "honest", "share": 1}, {"strategy": "cheater", "rate": 1.0, "share": 1}],
        "clients": [{"strategy": "checker", "q": 0.3}],
    }
    runs = {}
    for on in (True, False):
        mech = {"order": ["lilypad_v2", "retention"], "retention": {"enabled": on, "window": 4, "storage_cost": 2}}
        runs[on] = stack_run(mech, pop, market={"response": {"client_judge": 5.0}}, rounds=20)
    on, off = runs[True], runs[False]
    for r_on, r_off in zip(on.results, off.results, strict=True):
        assert r_on.deals.deal_id.tolist() == r_off.deals.deal_id.tolist()
        assert r_on.deals.checked.tolist() == (r_off.deals.checked & (r_off.deals.judge_time <= 4)).tolist()
        agreed = r_on.deals.client_agreed & r_on.deals.node_agreed
        storage = r_on.transfers.amount[r_on.transfers.reason == Reason.StorageCost]
        assert storage.tolist() == [8] * int(agreed.sum())
    checks = {k: sum(int(r.deals.checked.sum()) for r in v.results) for k, v in runs.items()}
    assert 0.45 < checks[True] / checks[False] < 0.65
    assert on.fake_accepted > off.fake_accepted
    locked = np.concatenate([r.deals.extra[LOCKED] for r in on.results])
    assert locked.sum() == sum(int((r.deals.job_cost * r.deals.paid).sum()) for r in on.results) * 4
