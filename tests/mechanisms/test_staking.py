"""Staking: stakes at setup, pro-rata fee shares and slashes with floors, stake-weighted ranking, the twin.

Hand layout: 2 nodes and 3 stakers; staker i backs node i mod 2, with stakes [300, 200, 100], so node0 is backed
by staker0 (300) and staker2 (100), node1 by staker1 (200). Jobs cost J = 100 (compute K = 12); base terms
(lilypad_v2 below): payment collateral 150, results collateral 200, mediation fee 20.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mechanisms import ConfigError, MarketFacts, MechanismStack
from mechanisms.protocol import DealState, Direction, Reason
from tests.mechanisms.conftest import LILYPAD_BASE as BASE

S = DealState


def staking(**params: Any) -> dict[str, Any]:
    return {"name": "staking", "stakes": [300, 200, 100], "fee_share_bps": 1_000, "slash_bps": 5_000, **params}


def rows(transfers, reason: Reason, direction: Direction) -> list[tuple[int, int, int]]:
    """(payer, payee, amount) of the transfers with `reason` and `direction`, in order."""
    sel = (transfers.reason == reason) & (transfers.direction == direction)
    return list(
        zip(transfers.payer[sel].tolist(), transfers.payee[sel].tolist(), transfers.amount[sel].tolist(), strict=True)
    )


def test_setup_escrows_each_stake(hand) -> None:
    h = hand(n_nodes=2, n_stakers=3)
    h.stack(BASE, staking())
    stakers = [h.account(f"staker{i}") for i in range(3)]
    assert h.ledger.escrow[stakers].tolist() == [300, 200, 100]
    assert h.ledger.balance[stakers].tolist() == [700, 800, 900]


def test_fee_share_is_pro_rata_and_floored(hand) -> None:
    h = hand(n_clients=2, n_nodes=2, n_stakers=3)
    stack = h.stack(BASE, staking())
    s = h.settle(stack, h.deals(stack, client=[0, 1], node=[0, 1], job_cost=100, phase="judged"))
    # fee 10% of 100 = 10. node0: 10 x 300/400 = 7.5 -> 7 and 10 x 100/400 = 2.5 -> 2 (1 stays); node1: all 10
    node0, node1 = h.account("node0"), h.account("node1")
    assert rows(s.transfers, Reason.Reward, Direction.Spent) == [
        (node0, h.account("staker0"), 7),
        (node1, h.account("staker1"), 10),
        (node0, h.account("staker2"), 2),
    ]
    assert s.delta == {
        "client0": -100,
        "client1": -100,
        "node0": 100 - 12 - 9,
        "node1": 100 - 12 - 10,
        "staker0": 7,
        "staker1": 10,
        "staker2": 2,
        "compute": 24,
    }


@pytest.mark.parametrize(("slash_to", "dest"), [("burn", "burn"), ("jackpot", "jackpot"), ("client", "client0")])
def test_proven_cheat_slashes_every_stake_behind_the_node(hand, slash_to: str, dest: str) -> None:
    h = hand(n_nodes=2, n_stakers=3)
    stack = h.stack(BASE, staking(slash_bps=3_333, slash_to=slash_to))
    s = h.settle(stack, h.deals(stack, node=0, job_cost=100, phase="mediated", cheated=True))
    assert int(h.ledger.escrow[h.account("staker1")]) == 200  # node1's staker untouched
    # 300 x 33.33% = 99.99 -> 99 ; 100 x 33.33% = 33.33 -> 33 ; no fee from an unpaid cheater
    slashed = rows(s.transfers, Reason.Stake, Direction.Slashed)
    assert slashed == [(h.account("staker0"), h.account(dest), 99), (h.account("staker2"), h.account(dest), 33)]
    assert rows(s.transfers, Reason.Reward, Direction.Spent) == []
    assert h.ledger.escrow[[h.account("staker0"), h.account("staker2")]].tolist() == [201, 67]


def test_forced_error_is_not_a_cheat(hand) -> None:
    h = hand(n_nodes=2, n_stakers=3)
    stack = h.stack(BASE, staking(), {"name": "tax_jackpot", "tax_bps": 0, "forced_error_rate": 1.0})
    d = h.deals(stack, node=1, job_cost=100, phase="mediated")
    s = h.settle(stack, d)
    assert d.state.tolist() == [S.MediationRejected] and d.forced_error.all()
    assert rows(s.transfers, Reason.Stake, Direction.Slashed) == []
    assert rows(s.transfers, Reason.Reward, Direction.Spent) == [(h.account("node1"), h.account("staker1"), 10)]


def test_slashed_stake_earns_a_smaller_share_next_round(hand) -> None:
    """Stakes are read from the escrow at the round's start: after a 50% slash of node0's stakers (150 and 50),
    node0's next fee of 40 splits 40 x 150/200 = 30 and 40 x 50/200 = 10."""
    h = hand(n_clients=2, n_nodes=2, n_stakers=3, balance=2_000)
    stack = h.stack(BASE, staking(fee_share_bps=1_000))
    h.settle(stack, h.deals(stack, node=0, job_cost=100, phase="mediated", cheated=True))
    s = h.settle(stack, h.deals(stack, node=0, job_cost=400, phase="judged"))
    assert [a for _, _, a in rows(s.transfers, Reason.Reward, Direction.Spent)] == [30, 10]


def ranked(h, stack: MechanismStack, price: int = 10) -> list[int]:
    nodes = h.sizes["client"] + np.arange(h.sizes["node"])
    return stack.rank_offers(nodes, np.full(len(nodes), price), h.context()).tolist()


def test_prefer_stake_ranks_by_weighted_price(hand) -> None:
    h = hand(n_nodes=3, n_stakers=2)  # node0 400, node1 100, node2 nothing
    stack = h.stack(BASE, staking(stakes=[400, 100], prefer_stake=True, full_weight_stake=400, max_bonus_bps=10_000))
    # weights 10_000 + min(stake, 400) x 10_000 // 400: 20_000, 12_500, 10_000 -> 10 x 10_000 // weight
    assert ranked(h, stack) == [5, 8, 10]
    h2 = hand(n_nodes=3, n_stakers=2)
    strict = h2.stack(BASE, staking(stakes=[400, 100], prefer_stake=True, full_weight_stake=200, min_stake=100))
    assert ranked(h2, strict) == [5, 6, -1]  # 400 is capped at 200 (weight 20_000); 100 -> 15_000; 0 excluded


def test_stake_preference_compounds_with_an_earlier_ranking(hand) -> None:
    h = hand(n_nodes=3, n_stakers=2)
    rep = {"name": "reputation", "alpha_bps": 10_000, "beta_bps": 10_000}
    assert ranked(h, h.stack(BASE, rep, staking(stakes=[400, 100]))) == [20, 20, 20]  # prior 0.5 doubles
    h2 = hand(n_nodes=3, n_stakers=2)
    # reputation doubles 10 to 20, then stake 400 halves it (weight 20_000) and 100 takes 20 to 16 (12_500)
    assert ranked(h2, h2.stack(BASE, rep, staking(stakes=[400, 100], prefer_stake=True, full_weight_stake=400))) == [
        10,
        16,
        20,
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stakes", []),
        ("stakes", [10, -1]),
        ("slash_bps", 10_001),
        ("slash_to", "mediator"),
        ("fee_share_bps", -1),
        ("prefer_stake", 1),
        ("full_weight_stake", 0),
        ("max_bonus_bps", -5),
        ("min_stake", -1),
    ],
)
def test_config_errors_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"stack\[1\]\.{field}"):
        MechanismStack.from_config([BASE, {"name": "staking", field: value}])


def test_market_must_have_stakers_who_can_afford_their_stakes() -> None:
    stack = MechanismStack.from_config([BASE, {"name": "staking", "stakes": [500]}])
    with pytest.raises(ConfigError, match=r"stack\[1\]\.stakes=.*n_stakers >= 1"):
        stack.validate(MarketFacts(2, 12, 100, n_clients=1, n_nodes=1, n_stakers=0))
    with pytest.raises(ConfigError, match=r"stack\[1\]\.stakes=.*staker_balance \(499\)"):
        stack.validate(MarketFacts(2, 12, 100, n_clients=1, n_nodes=1, n_stakers=1, staker_balance=499))
    stack.validate(MarketFacts(2, 12, 100, n_clients=1, n_nodes=1, n_stakers=1, staker_balance=500))


# nodes 0-29 honest, 30-59 cheaters (both staked: stakers 0-59 back nodes 0-59), 60-89 honest, 90-119 cheaters
NODES = [{"strategy": s, "share": 1} for s in ("honest", "cheater", "honest", "cheater")]
POP = {"nodes": NODES, "clients": [{"strategy": "checker", "q": 0.3}]}
MARKET = {"n_stakers": 60, "staker_balance": 1_000, "fixed_price_share": 0.0}


def test_twin_stake_attracts_jobs_and_cheating_costs_stakers(stack_run) -> None:
    """60 clients, 120 nodes, half of them backed by one staker of 1000 (a fully staked node ranks at 2/3 of its
    price). With the stake preference staked nodes win most jobs (73% against 47% without staking); stakers behind
    honest nodes earn 20% fee shares, stakers behind cheaters are slashed."""
    runs = {}
    for on in (True, False):
        mech = {
            "order": ["lilypad_v2", "staking"],
            "staking": {
                "enabled": on,
                "stakes": [1_000],
                "prefer_stake": True,
                "full_weight_stake": 1_000,
                "max_bonus_bps": 5_000,
                "slash_bps": 2_000,
                "fee_share_bps": 2_000,
            },
        }
        runs[on] = stack_run(mech, POP, market=MARKET, rounds=10)

    def staked_share(out) -> float:
        nodes = np.concatenate([r.deals.node for r in out.results]) - out.engine.market.facts.first_node
        return float((nodes < 60).mean())

    def staker_value(out) -> np.ndarray:
        m, led = out.engine.market, out.engine.ledger
        stakers = slice(m.facts.first_staker, m.facts.pool_base)
        return led.balance[stakers] + led.escrow[stakers]

    on, off = runs[True], runs[False]
    assert staked_share(off) < 0.55 < 0.65 < staked_share(on)  # measured: 0.47 and 0.73
    assert staker_value(off).tolist() == [1_000] * 60  # no staking: the stakers' money sits idle
    value = staker_value(on)
    assert (value[:30] >= 1_000).all() and value[:30].mean() > 1_040  # behind honest nodes: fee shares (1053)
    assert value[30:60].mean() < 750  # behind cheaters: slashed 20% of the stake per caught cheat (697)
