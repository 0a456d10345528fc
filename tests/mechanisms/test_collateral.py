"""Collateral chosen per node: multipliers, the minimum deposit, timeout and payment overrides, exposures.

Hand-built deals: job cost J = 30, compute cost K = 12 unless stated. Base terms (lilypad_v2 below): payment
collateral 150% (45), results multiplier 2x (60), submit-timeout collateral 7, judge-timeout collateral 5, fee 20.
Accounts: client0 = 0, nodes from 1, so node account a posts multipliers_bps[a % len].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mechanisms import ConfigError, MechanismStack
from mechanisms.protocol import DealState, Direction, Reason
from tests.mechanisms.conftest import LILYPAD_BASE as BASE


def collateral(**params: Any) -> dict[str, Any]:
    return {"name": "collateral", **params}


def test_multiplier_per_node_account(hand) -> None:
    h = hand(n_nodes=3)
    stack = h.stack(BASE, collateral(multipliers_bps=[20_000, 35_000, 50_000]))
    d = h.deals(stack, client=0, node=[0, 1, 2])  # accounts 1, 2, 3 -> multipliers 3.5x, 5x, 2x
    assert d.results_collateral.tolist() == [105, 150, 60]
    assert d.node_exposure.tolist() == [7 + 105 + 12, 7 + 150 + 12, 7 + 60 + 12]
    assert d.client_exposure.tolist() == [45 + 5 + 20] * 3  # untouched


def test_minimum_deposit_binds_on_small_jobs(hand) -> None:
    h = hand()
    stack = h.stack(BASE, collateral(multipliers_bps=[20_000], min_deposit=50))
    d = h.deals(stack, job_cost=[7, 25, 30, 100])
    # max(50, 2 x J): 14 -> 50, 50 -> 50, 60, 200
    assert d.results_collateral.tolist() == [50, 50, 60, 200]
    assert (d.node_exposure - d.results_collateral).tolist() == [7 + 12] * 4


def test_timeout_and_payment_overrides_move_exposures(hand) -> None:
    h = hand()
    stack = h.stack(
        BASE, collateral(submit_timeout_collateral=11, judge_timeout_collateral=3, payment_collateral_bps=12_345)
    )
    d = h.deals(stack)
    assert (int(d.submit_collateral[0]), int(d.judge_collateral[0])) == (11, 3)
    assert int(d.payment_collateral[0]) == 37  # 30 x 1.2345 = 37.035, floored
    assert int(d.client_exposure[0]) == 37 + 3 + 20
    assert int(d.node_exposure[0]) == 11 + 60 + 12  # default multiplier list (2x) on node account 1


def test_later_exposure_additions_survive(hand) -> None:
    """A tax listed before collateral keeps its share of the client's exposure."""
    h = hand()
    stack = h.stack(
        BASE,
        {"name": "tax_jackpot", "tax_bps": 1_000, "tax_payer": "client"},
        collateral(payment_collateral_bps=20_000),
    )
    d = h.deals(stack)
    assert int(d.client_exposure[0]) == 60 + 5 + 20 + 3  # 2 x 30, judge, fee, tax 10% of 30


def test_rejected_cheater_loses_its_own_multiple(hand) -> None:
    h = hand(n_nodes=2)
    stack = h.stack(BASE, collateral(multipliers_bps=[50_000, 30_000]))  # node accounts 1 -> 3x, 2 -> 5x
    d = h.deals(stack, node=[0, 1], phase="mediated", cheated=True)
    s = h.settle(stack, d)
    assert d.state.tolist() == [DealState.MediationRejected] * 2
    t = s.transfers
    slashed = t.amount[(t.reason == Reason.ResultsCollateral) & (t.direction == Direction.Slashed)]
    assert slashed.tolist() == [90, 150]
    # clients pay two fees (20 each); mediator1 earns 2 x (20 - 12); every slash is burnt
    assert s.delta == {"client0": -40, "node0": -90, "node1": -150, "mediator1": 16, "burn": 240, "compute": 24}


def test_honest_node_gets_its_larger_collateral_back(hand) -> None:
    h = hand()
    stack = h.stack(BASE, collateral(multipliers_bps=[20_000, 50_000], min_deposit=400))
    d = h.deals(stack, phase="judged")
    s = h.settle(stack, d)
    t = s.transfers
    moved = t.amount[t.reason == Reason.ResultsCollateral]
    assert moved.tolist() == [400, 400]  # paid in at submission, refunded at settlement
    assert s.delta == {"client0": -30, "node0": 30 - 12, "compute": 12}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("multipliers_bps", []),
        ("multipliers_bps", [20_000, -1]),
        ("min_deposit", -1),
        ("submit_timeout_collateral", -2),
        ("judge_timeout_collateral", 1.5),
        ("payment_collateral_bps", 9_999),
    ],
)
def test_config_errors_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"stack\[1\]\.{field}"):
        MechanismStack.from_config([BASE, collateral(**{field: value})])


CHEATERS = {
    "nodes": [{"strategy": "honest", "share": 1}, {"strategy": "cheater", "rate": 1.0, "share": 1}],
    "clients": [{"strategy": "checker", "q": 0.1}],
}


def node_profit(out) -> np.ndarray:
    """Each node's balance plus escrow minus its starting balance."""
    m, led = out.engine.market, out.engine.ledger
    nodes = slice(m.facts.first_node, m.facts.first_mediator)
    return led.balance[nodes] + led.escrow[nodes] - m.config.node_balance


def test_twin_minimum_deposit_makes_cheating_unprofitable(stack_run) -> None:
    """Half the nodes always cheat, clients check 10%: with 2x collateral cheating pays; a 1000 minimum deposit
    (jobs cost 8 to 120 here) turns the cheaters' profit negative (+22 846 -> -33 918 over 64 caught cheats in
    1184 deals) and leaves honest nodes exactly as they were (+10 199 both ways)."""
    runs = {}
    for on in (True, False):
        mech = {
            "order": ["lilypad_v2", "collateral"],
            "collateral": {"enabled": on, "multipliers_bps": [20_000, 50_000], "min_deposit": 1_000},
        }
        runs[on] = stack_run(mech, CHEATERS, rounds=20)
    on, off = runs[True], runs[False]
    assert on.deals == off.deals and on.count(DealState.MediationRejected) == off.count(DealState.MediationRejected)
    honest, cheat = slice(0, 60), slice(60, 120)
    assert node_profit(off)[cheat].sum() > 0 > node_profit(on)[cheat].sum()
    assert node_profit(on)[honest].tolist() == node_profit(off)[honest].tolist()
    # every slash is max(1000, multiplier x job cost) of the node's own multiplier
    for r in on.results:
        t, d = r.transfers, r.deals
        sel = (t.reason == Reason.ResultsCollateral) & (t.direction == Direction.Slashed)
        row = np.searchsorted(d.deal_id, t.deal_id[sel])
        mult = np.where(d.node[row] % 2 == 0, 20_000, 50_000)
        assert t.amount[sel].tolist() == np.maximum(1_000, d.job_cost[row] * mult // 10_000).tolist()
