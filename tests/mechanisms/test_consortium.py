"""Consortium mediation: k-of-n verdicts against bribed minorities and majorities, escalation, fees, anonymity."""

from __future__ import annotations

import numpy as np
import pytest

from mechanisms.config import ConfigError
from mechanisms.money import Pool
from mechanisms.protocol import DealState, Direction, Reason, Step

S = DealState
CHEATERS = {
    "nodes": [{"strategy": "cheater", "rate": 1.0, "bribe": 50}],
    "clients": [{"strategy": "checker", "q": 1.0}],
}
FEE = 180  # 3 members x 60, each share covers the largest re-run (60)


def stack(enabled: bool = True, **consortium: object) -> dict:
    return {
        "order": ["lilypad_v2", "consortium"],
        "lilypad_v2": {"mediation_fee": 60},
        "consortium": {"enabled": enabled, "member_fee": FEE // 3, **consortium},
    }


def mediators(bribable: int, honest: int) -> dict:
    groups = [{"strategy": "bribable", "threshold": 10, "share": bribable}, {"strategy": "honest", "share": honest}]
    return {**CHEATERS, "mediators": [g for g in groups if g["share"] > 0]}


def test_unanimous_panel_of_honest_mediators_rejects_every_fake(stack_run):
    out = stack_run(stack(size=3, threshold=3), mediators(0, 5), rounds=2)
    assert out.count(S.MediationRejected) == out.deals > 0
    assert out.fake_accepted == 0


def test_bribed_minority_cannot_pass_a_fake_but_a_bribed_majority_can(stack_run):
    # 2-of-3 panel, 5 mediators. Every panel with 1 bribed member rejects; with all members bribed it accepts.
    minority = stack_run(stack(size=3, threshold=2), mediators(1, 4), rounds=2)
    assert minority.fake_accepted == 0
    majority = stack_run(stack(size=3, threshold=2), mediators(5, 0), rounds=2)
    assert majority.fake_accepted == majority.deals > 0
    # off switch: the single lilypad_v2 mediator is bribed whenever it is the bribable one (1 in 5)
    single = stack_run(stack(enabled=False), mediators(1, 4), rounds=4)
    assert 0 < single.fake_accepted < single.deals


def test_bribed_share_matches_the_hypergeometric_odds(stack_run):
    # 2 bribable of 5; a 2-of-3 panel passes the fake iff >= 2 of its 3 members are bribable: 3/10
    out = stack_run(stack(size=3, threshold=2), mediators(2, 3), rounds=6, market={"n_clients": 200, "n_nodes": 400})
    share = out.fake_accepted / out.deals
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / out.deals)


def test_no_consensus_escalates_to_a_larger_panel(stack_run):
    # unanimity of 2 with 1 bribable of 6: a split panel escalates to 4 members, decides by majority (ties accept)
    out = stack_run(
        stack(size=2, threshold=2, max_depth=1, growth=2, fallback="reject", member_fee=90),
        mediators(1, 5),
        market={"n_mediators": 6},
        rounds=3,
    )
    sizes = np.concatenate([r.deals.extra["consortium.size"] for r in out.results])
    assert set(np.unique(sizes)) == {2, 4}
    assert out.fake_accepted == 0
    # every escalated panel was paid: 4 shares of 90 instead of 2
    fees = np.concatenate([r.deals.extra["consortium.share"].sum(axis=1) for r in out.results])
    assert set(np.unique(fees[sizes == 4])) == {360} and set(np.unique(fees[sizes == 2])) == {180}
    # the client escrowed the largest panel (4 seats) at the check and got the unused seats' fees back
    escrowed = np.concatenate([r.deals.mediation_fee for r in out.results])
    assert set(np.unique(escrowed)) == {360}
    refund = [
        (t.reason == Reason.MediationFee) & (t.step == Step.Mediate) & (t.direction == Direction.Refunded)
        for t in (r.transfers for r in out.results)
    ]
    refunds = sum(int(r.transfers.amount[m].sum()) for r, m in zip(out.results, refund, strict=True))
    mediated = np.concatenate([r.deals.mediated for r in out.results])
    assert refunds == int((360 - fees)[mediated].sum())


def test_dissenting_members_forfeit_their_share_to_the_burn_pool(stack_run):
    out = stack_run(stack(size=3, threshold=2, dissent_to="burn"), mediators(1, 4), rounds=2)
    t = [r.transfers for r in out.results]
    burned = sum(
        int(
            x.amount[
                (x.reason == Reason.MediationFee) & (x.payee == out.engine.market.facts.pool_base + Pool.Burn)
            ].sum()
        )
        for x in t
    )
    dissents = sum(int(np.bitwise_count(r.deals.dissenters.astype(np.uint64)).sum()) for r in out.results)
    assert dissents > 0 and burned == dissents * (FEE // 3)  # bribed dissenters did not re-run: all 60 go


def test_an_honest_dissenter_keeps_its_rerun_cost(stack_run):
    # 4 of 5 bribable: honest members are outvoted; each re-ran (cost 6) and forfeits 60 - 6
    out = stack_run(
        stack(size=3, threshold=2, dissent_to="burn"),
        mediators(4, 1),
        rounds=2,
        market={"modules": [{"name": "cowsay", "compute_cost": 6}], "mediator_balance": 0},
    )
    t = [r.transfers for r in out.results]
    burn = out.engine.market.facts.pool_base + Pool.Burn
    burned = sum(int(x.amount[(x.reason == Reason.MediationFee) & (x.payee == burn)].sum()) for x in t)
    honest = 1 << 4  # the honest mediator is index 4 (groups are assigned in order)
    honest_dissents = sum(int(((r.deals.dissenters & honest) > 0).sum()) for r in out.results)
    assert honest_dissents > 0 and burned == honest_dissents * (60 - 6)


def test_loser_pays_the_fee(stack_run):
    out = stack_run(stack(size=3, threshold=2, fee_payer="loser"), mediators(0, 5), rounds=1)
    d, t = out.results[0].deals, out.results[0].transfers
    node_paid = t.amount[(t.reason == Reason.MediationFee) & np.isin(t.payer, d.node)].sum()
    assert node_paid == FEE * out.count(S.MediationRejected)


def test_anonymous_panels_leave_no_attributable_vote_or_payout(stack_run):
    public = stack_run(stack(size=3, threshold=2), mediators(0, 5), rounds=1)
    assert sum(len(v["deal_id"]) for v in public.engine.events.votes) == 3 * public.deals
    anon = stack_run(stack(size=3, threshold=2, anonymous=True), mediators(0, 5), rounds=1)
    assert anon.engine.events.votes == []
    log = anon.engine.events.transfers[-1]
    meds = anon.engine.market.facts.mediator_accounts()
    fee_rows = log["reason"] == Reason.MediationFee
    assert not np.isin(log["account"][fee_rows], meds).any() and not np.isin(log["counterparty"][fee_rows], meds).any()
    states = anon.engine.events.states[-1]["state"]
    assert (states == S.MediationRejected).sum() == anon.deals  # the verdict itself stays public


@pytest.mark.parametrize("selection", ["uniform", "stake", "reputation", "cheapest"])
def test_every_selection_rule_seats_distinct_trusted_members(stack_run, selection):
    extra = {"bids": [60, 70, 80, 90, 100]} if selection == "cheapest" else {}
    out = stack_run(
        stack(size=3, threshold=2, selection=selection, **extra),
        mediators(0, 5),
        market={"trust_profiles": [[0, 1, 2, 3], [1, 2, 3, 4]]},
        rounds=2,
    )
    for r in out.results:
        order = r.deals.extra["consortium.order"][:, :3]
        assert (order >= 0).all() and all(len(set(row)) == 3 for row in order.tolist())
        trusted = (r.deals.mutual_mediators[:, None] >> order) & 1
        assert trusted.all()
    if selection == "cheapest":  # mutual set {1,2,3}: always the three cheapest of it
        assert out.results[0].deals.extra["consortium.share"].sum(axis=1).max() == 70 + 80 + 90


def test_config_errors_name_the_field(stack_run):
    from mechanisms import MechanismStack

    with pytest.raises(ConfigError, match=r"consortium\.member_fee=59 is invalid: allowed >= the largest re-run"):
        stack_run(stack(member_fee=59), mediators(0, 5), rounds=1)
    with pytest.raises(ConfigError, match=r"consortium\.threshold"):
        MechanismStack.from_mapping(stack(size=3, threshold=1))
    with pytest.raises(ConfigError, match=r"consortium\.selection"):
        MechanismStack.from_mapping(stack(selection="random"))
