"""Tax and jackpot: who pays the tax, fraction and fixed payouts with floors and caps, forced errors, the twin.

Hand-built deals: job cost J = 30, compute cost K = 12 unless stated; base terms (lilypad_v2 below): payment
collateral 45, results collateral 60, submit-timeout collateral 7, judge-timeout collateral 5, mediation fee 20.
A tax of 1000 bps is 3 on J = 30. Claims are paid from the jackpot pool as it stood at the round's start.
"""

from __future__ import annotations

from typing import Any

import pytest

from mechanisms import ConfigError, MechanismStack
from mechanisms.money import Pool
from mechanisms.protocol import DealState, Direction, Reason, Step
from tests.mechanisms.conftest import LILYPAD_BASE as BASE

S = DealState


def jackpot(**params: Any) -> dict[str, Any]:
    return {"name": "tax_jackpot", "tax_bps": 1_000, **params}


def moves(transfers, reason: Reason) -> list[tuple[int, int, int]]:
    """(step, direction, amount) of every transfer with `reason`, in order."""
    sel = transfers.reason == reason
    return list(
        zip(
            transfers.step[sel].tolist(), transfers.direction[sel].tolist(), transfers.amount[sel].tolist(), strict=True
        )
    )


def test_node_pays_the_tax_out_of_its_payment(hand) -> None:
    h = hand()
    stack = h.stack(BASE, jackpot(tax_payer="node"))
    d = h.deals(stack, phase="judged")
    assert int(d.client_exposure[0]) == 45 + 5 + 20  # the node's tax needs no exposure: it comes out of the payment
    s = h.settle(stack, d)
    assert moves(s.transfers, Reason.Tax) == [(Step.Settle, Direction.Spent, 3)]
    assert s.delta == {"client0": -30, "node0": 30 - 12 - 3, "compute": 12, "jackpot": 3}


def test_client_pays_the_tax_on_top_escrowed_at_agreement(hand) -> None:
    h = hand(n_clients=2, n_nodes=2)
    stack = h.stack(BASE, jackpot(tax_payer="client"))
    # deal 0 is accepted and paid; deal 1 times out waiting for the result, so its tax is refunded
    d = h.deals(stack, client=[0, 1], node=[0, 1], phase=["judged", "agreed"])
    assert d.client_exposure.tolist() == [45 + 5 + 20 + 3] * 2
    s = h.settle(stack, d)
    assert d.state.tolist() == [S.ResultsAccepted, S.TimeoutSubmitResults]
    assert moves(s.transfers, Reason.Tax) == [
        (Step.Agree, Direction.PaidIn, 3),
        (Step.Agree, Direction.PaidIn, 3),
        (Step.Settle, Direction.PaidOut, 3),
        (Step.Settle, Direction.Refunded, 3),
    ]
    # node1's submit-timeout collateral (7) is burnt
    assert s.delta == {"client0": -33, "node0": 18, "node1": -7, "compute": 12, "jackpot": 3, "burn": 7}


def test_tax_is_floored_in_base_units(hand) -> None:
    h = hand(n_clients=3, n_nodes=3, balance=10_000)
    stack = h.stack(BASE, jackpot(tax_bps=150))
    d = h.deals(stack, client=[0, 1, 2], node=[0, 1, 2], job_cost=[66, 999, 1000], phase="judged")
    s = h.settle(stack, d)
    # 66 x 1.5% = 0.99 -> 0 (no transfer); 999 x 1.5% = 14.985 -> 14; 1000 x 1.5% = 15
    assert [a for _, _, a in moves(s.transfers, Reason.Tax)] == [14, 15]


def caught(h, stack, n: int, **columns: Any):
    """`n` mediated deals (client i, node i) whose cheating node is rejected."""
    return h.deals(stack, client=list(range(n)), node=list(range(n)), phase="mediated", cheated=True, **columns)


def test_fraction_mode_shares_the_pool_equally_and_floors(hand) -> None:
    h = hand(n_clients=3, n_nodes=3, pools={"jackpot": 1_000})
    stack = h.stack(BASE, jackpot(mode="fraction", fraction_bps=2_500))
    s = h.settle(stack, caught(h, stack, 3))
    # 25% of 1000 = 250 over 3 claims: 83 each, 1 stays; rejected nodes are not paid, so no tax
    assert moves(s.transfers, Reason.Jackpot) == [(Step.Round, Direction.Spent, 83)] * 3
    assert int(h.ledger.balance[h.account("jackpot")]) == 1_000 - 249
    assert s.delta["client0"] == -20 + 83  # the mediation fee, then the jackpot


def test_correct_mediators_claim_too(hand) -> None:
    h = hand(n_clients=3, n_nodes=3, pools={"jackpot": 1_000})
    stack = h.stack(BASE, jackpot(mode="fraction", fraction_bps=2_500, reward_mediators=True))
    s = h.settle(stack, caught(h, stack, 3))
    # 3 clients and mediator1 three times: 6 claims of 250 // 6 = 41
    assert moves(s.transfers, Reason.Jackpot) == [(Step.Round, Direction.Spent, 41)] * 6
    assert s.delta["mediator1"] == 3 * (20 - 12) + 3 * 41
    assert s.delta["jackpot"] == -246


@pytest.mark.parametrize(
    ("pool", "cap", "each"),
    [
        (1_000, None, 100),  # min(100, 1000 // 3 = 333)
        (250, None, 83),  # min(100, 250 // 3 = 83)
        (1_000, 60, 60),  # capped per claim
        (2, None, 0),  # 2 // 3 = 0: nothing moves
    ],
)
def test_fixed_mode_pays_each_claim_at_most_its_share(hand, pool: int, cap: int | None, each: int) -> None:
    h = hand(n_clients=3, n_nodes=3, pools={"jackpot": pool})
    stack = h.stack(BASE, jackpot(mode="fixed", amount=100, max_payout=cap))
    s = h.settle(stack, caught(h, stack, 3))
    assert [a for _, _, a in moves(s.transfers, Reason.Jackpot)] == ([each] * 3 if each else [])
    assert s.delta.get("jackpot", 0) == -3 * each


def test_payouts_use_the_pool_at_the_round_start(hand) -> None:
    """This round's taxes wait: an empty pool pays nothing even though an accepted deal pays tax now."""
    h = hand(n_clients=2, n_nodes=2)
    stack = h.stack(BASE, jackpot(mode="fraction", fraction_bps=10_000))
    d = h.deals(stack, client=[0, 1], node=[0, 1], phase=["judged", "mediated"], cheated=[False, True])
    s = h.settle(stack, d)
    assert moves(s.transfers, Reason.Jackpot) == []
    assert s.delta["jackpot"] == 3


def test_forced_error_is_paid_to_the_node_and_rewards_the_checker(hand) -> None:
    h = hand(n_clients=2, n_nodes=2, pools={"jackpot": 1_000})
    stack = h.stack(BASE, jackpot(forced_error_rate=0.5, mode="fraction", fraction_bps=1_000))
    # the same uniform 0.4 < 0.5 forces both deals; deal 1 is never checked
    d = h.deals(stack, client=[0, 1], node=[0, 1], phase=["mediated", "judged"], u=0.4)
    assert d.forced_error.tolist() == [True, True]
    s = h.settle(stack, d)
    assert d.state.tolist() == [S.MediationRejected, S.ResultsAccepted]
    # honest nodes: paid 30, computed 12, taxed 3, collateral back; the checker: -30 paid -20 fee +100 jackpot
    assert s.delta == {
        "client0": 50,
        "client1": -30,
        "node0": 15,
        "node1": 15,
        "mediator1": 8,
        "compute": 36,
        "jackpot": -100 + 6,
    }
    assert not ((s.transfers.reason == Reason.ResultsCollateral) & (s.transfers.direction == Direction.Slashed)).any()


def test_forced_errors_follow_the_rate(hand) -> None:
    h = hand()
    stack = h.stack(BASE, jackpot(forced_error_rate=0.25))
    assert stack.get("tax_jackpot").draw_offset == 2  # after lilypad_v2's two uniforms
    d = h.deals(stack, u=[0.0, 0.2499, 0.25, 0.9])
    assert d.forced_error.tolist() == [True, True, False, False]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tax_bps", 10_001),
        ("tax_payer", "mediator"),
        ("mode", "share"),
        ("fraction_bps", -1),
        ("amount", -5),
        ("max_payout", -1),
        ("reward_mediators", "yes"),
        ("forced_error_rate", 1.5),
    ],
)
def test_config_errors_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"stack\[1\]\.{field}="):
        MechanismStack.from_config([BASE, {"name": "tax_jackpot", field: value}])


def test_twin_jackpot_pays_checkers_when_nobody_cheats(stack_run) -> None:
    """Honest nodes only; half the clients check half their results, half never check. Off: checking finds nothing
    and only costs fees. On (3% tax, 10% forced errors, the whole pool paid each round): checkers catch forced
    errors, collect every payout and end ahead of clients who never check; honest nodes are never slashed."""
    market = {"modules": [{"name": "cowsay", "cpu": 500, "ram": 256, "instructions": 10, "compute_cost": 6}]}
    pop = {
        "nodes": [{"strategy": "honest"}],
        "clients": [{"strategy": "checker", "q": 0.5, "share": 1}, {"strategy": "never_check", "share": 1}],
    }
    runs = {}
    for on in (True, False):
        mech = {
            "order": ["lilypad_v2", "tax_jackpot"],
            "lilypad_v2": {"mediation_fee": 6},
            "tax_jackpot": {"enabled": on, "tax_bps": 300, "forced_error_rate": 0.1, "fraction_bps": 10_000},
        }
        runs[on] = stack_run(mech, pop, market=market, rounds=30)

    def profit(out, clients: slice) -> int:
        led = out.engine.ledger
        return int((led.balance[clients] + led.escrow[clients]).sum()) - 100_000 * 30

    checkers, never = slice(0, 30), slice(30, 60)
    on, off = runs[True], runs[False]
    assert off.count(S.MediationRejected) == 0 and profit(off, checkers) < profit(off, never)
    assert on.count(S.MediationRejected) > 20 and profit(on, checkers) > profit(on, never)
    taxes = payouts = 0
    for r in on.results:
        t, d = r.transfers, r.deals
        rejected = d.state == S.MediationRejected
        assert d.forced_error[rejected].all()
        assert not ((t.reason == Reason.ResultsCollateral) & (t.direction == Direction.Slashed)).any()
        paid = t.reason == Reason.Jackpot
        assert (t.payee[paid] < 30).all()  # only checkers claim
        taxes += int(t.amount[t.reason == Reason.Tax].sum())
        payouts += int(t.amount[paid].sum())
    assert payouts > 0
    assert int(on.engine.ledger.balance[on.engine.market.facts.pool_base + Pool.Jackpot]) == taxes - payouts


@pytest.mark.parametrize("pay_for", ["rejected", "forced_errors"])
def test_only_forced_errors_claim_when_configured(stack_run, pay_for: str) -> None:
    """Cheaters caught by checking clients, no forced errors for the first rounds: with `pay_for: rejected` their
    rejections claim (a node and a client could farm the jackpot with a deliberate fake); with `forced_errors` only
    the forced errors do."""
    pop = {
        "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 1.0}],
        "clients": [{"strategy": "checker", "q": 0.5}],
    }
    mech = {
        "order": ["lilypad_v2", "tax_jackpot"],
        "lilypad_v2": {},
        "tax_jackpot": {"tax_bps": 1_000, "fraction_bps": 10_000, "forced_error_rate": 0.05, "pay_for": pay_for},
    }
    out = stack_run(mech, pop, rounds=4)
    claims = {"forced": 0, "real": 0}
    for r in out.results[1:]:  # round 0 pays from an empty pool
        d, t = r.deals, r.transfers
        paid = t.reason == Reason.Jackpot
        assert paid.any()
        rejected = d.state == S.MediationRejected
        claims["forced"] += int((rejected & d.forced_error).sum())
        claims["real"] += int((rejected & ~d.forced_error).sum())
        expected = int((rejected & (d.forced_error | (pay_for == "rejected"))).sum())
        assert int(paid.sum()) == expected
    assert claims["forced"] > 0 and claims["real"] > 0


def test_per_claim_payouts_do_not_depend_on_how_claims_fall_into_rounds(hand) -> None:
    """Three claims settled in one round, or one round of one claim then a round of two (no taxes between: rejected
    nodes are not paid), pay the same amounts: each claim gets 10% of the pool as it stands at its turn."""
    one = hand(n_clients=3, n_nodes=3, pools={"jackpot": 1_000})
    stack = one.stack(BASE, jackpot(mode="per_claim", fraction_bps=1_000))
    together = moves(one.settle(stack, caught(one, stack, 3)).transfers, Reason.Jackpot)
    assert [amount for *_, amount in together] == [100, 90, 81]
    two = hand(n_clients=3, n_nodes=3, pools={"jackpot": 1_000})
    stack = two.stack(BASE, jackpot(mode="per_claim", fraction_bps=1_000))
    first = moves(two.settle(stack, caught(two, stack, 1)).transfers, Reason.Jackpot)
    rest = moves(two.settle(stack, caught(two, stack, 2)).transfers, Reason.Jackpot)
    assert first + rest == together
    capped = hand(n_clients=3, n_nodes=3, pools={"jackpot": 1_000})
    stack = capped.stack(BASE, jackpot(mode="per_claim", fraction_bps=1_000, max_payout=95))
    assert [a for *_, a in moves(capped.settle(stack, caught(capped, stack, 3)).transfers, Reason.Jackpot)] == [
        95,
        90,
        81,
    ]
