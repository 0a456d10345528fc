"""The consortium and jackpot modules' calls: a wrong state, party or deadline reverts with a named error and moves
nothing; a panel pays each member its fee, a dissenter only its declared re-run, the rest to the burn address."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from eth_abi import encode
from eth_utils import keccak

from live.chain.params import ChainParams

PANEL = {
    "consortium": True,
    "panel_size": 3,
    "panel_threshold": 2,
    "panel_max_depth": 0,
    "member_fee": 60,
    "slash_dissent": True,
    "dissent_to": "burn",
    "rerun_costs": (6,),
}
BURN = "0x000000000000000000000000000000000000dEaD"


def test_panel_votes_revert_with_named_errors_and_pay_the_panel(build_world: Any, params: ChainParams) -> None:
    w = build_world(params=replace(params, **PANEL))
    d, t = w.dep, w.terms()
    m0, m1, m2 = w.mediators
    assert w.error(d.vote(t, m0, True, True)) == "UnknownDeal"
    w.submitted(t)
    assert w.error(d.vote(t, m0, True, True)) == "NotParty"  # no panel before the check
    # seat words: m2, then m0, then m1 (the rank among the mediators not yet seated)
    keys = [keccak(encode(["bytes32", "uint256"], [w.id(t), s])) for s in range(3)]
    w.send(d.set_draws(keys, [2, 0, 0]), d.check(t))
    assert w.error(d.mediate(t, m2, True)) == "ConsortiumEnabled"
    assert w.error(d.vote(t, w.stranger, True, True)) == "NotParty"
    start = {a: w.wealth(a) for a in (w.client, m0, m1, m2)}
    escrow = d.escrow(w.id(t))
    assert escrow == 40 + 80 + 180  # payment (the job cost), results collateral (2x), the three seats' fees
    w.send(d.vote(t, m0, True, True))
    assert w.error(d.vote(t, m0, False, True)) == "AlreadyVoted"
    w.send(d.vote(t, m2, True, True))
    assert d.escrow(w.id(t)) == escrow  # the verdict waits for the whole panel
    w.send(d.vote(t, m1, False, True))
    assert d.escrow(w.id(t)) == 0
    assert [w.wealth(a) - start[a] for a in (m0, m1, m2)] == [60, 6, 60]  # m1 dissented: keeps its re-run cost
    assert int(d.deals.functions.balanceOf(BURN).call()) == 54
    assert w.error(d.vote(t, m1, True, True)) == "WrongState"
    t2 = w.terms(nonce=2)
    w.submitted(t2)
    w.send(d.check(t2))
    w.mine_past(60)
    before = (w.wealth(w.client), w.wealth(m0), d.escrow(w.id(t2)))
    assert w.error(d.vote(t2, m0, True, True)) == "DeadlinePassed"
    assert (w.wealth(w.client), w.wealth(m0), d.escrow(w.id(t2))) == before


def test_disabled_modules_and_early_payouts_revert_with_named_errors(build_world: Any, params: ChainParams) -> None:
    w = build_world()
    t = w.terms()
    w.submitted(t)
    w.send(w.dep.set_draws([w.id(t)], [0]), w.dep.check(t))
    assert w.error(w.dep.vote(t, w.mediators[0], True, True)) == "ConsortiumDisabled"
    assert w.error(w.dep.pay_jackpot(w.stranger)) == "JackpotDisabled"
    j = build_world(params=replace(params, jackpot=True, tax_bps=500, fraction_bps=1000, round_blocks=50))
    assert j.error(j.dep.pay_jackpot(j.stranger)) == "DeadlineNotReached"
    j.mine_past(50)
    assert j.error(j.dep.pay_jackpot(j.stranger)) is None
