"""Whistleblowing: a cartel member or a bribed mediator proves the cheat and is rewarded from the slashed deposit."""

from __future__ import annotations

import numpy as np

from mechanisms.actions import Actions
from mechanisms.money import Pool
from mechanisms.protocol import DealState, Direction, Reason

S = DealState
ONE_MODULE = {"modules": [{"name": "cowsay"}], "node_price": [10, 10]}  # job cost 10, results collateral 20
CARTEL = {"nodes": [{"strategy": "cheater", "rate": 1.0}], "clients": [{"strategy": "never_check"}]}


def stack(enabled: bool = True, reward_bps: int = 5_000) -> dict:
    return {
        "order": ["lilypad_v2", "replication", "whistleblowing"],
        "lilypad_v2": {"slash_to": "burn"},
        "replication": {"commit_reveal": True},
        "whistleblowing": {"enabled": enabled, "reward_bps": reward_bps},
    }


def first_replica_reports(a: Actions) -> None:
    a.nodes.collude[:] = True
    a.nodes.report[:] = True


def test_a_traitor_exposes_the_cartel_and_collects_its_reward(stack_run):
    def tweak(a: Actions) -> None:
        a.nodes.collude[:] = True
        a.nodes.report[::2] = True  # even nodes betray the cartel

    out = stack_run(stack(), CARTEL, market=ONE_MODULE, rounds=1, tweak=tweak)
    d, t = out.results[0].deals, out.results[0].transfers
    betrayed = [g for g in np.unique(d.group) if d.reports[d.group == g].sum() == 1]
    assert betrayed
    burn = out.engine.market.facts.pool_base + Pool.Burn
    for g in betrayed:
        traitor, member = d.reports & (d.group == g), ~d.reports & (d.group == g)
        assert d.state[traitor][0] == S.MediationRejected and d.excused[traitor][0]
        assert d.state[member][0] == S.MediationRejected
        by_deal = t.deal_id == d.deal_id[member][0]
        slashed = by_deal & (t.direction == Direction.Slashed) & (t.reason == Reason.ResultsCollateral)
        assert t.payee[slashed].tolist() == d.node[traitor].tolist() and t.amount[slashed].tolist() == [20]
        passed_on = by_deal & (t.reason == Reason.Reward)
        assert t.payer[passed_on].tolist() == d.node[traitor].tolist() and t.payee[passed_on].tolist() == [burn]
        assert t.amount[passed_on].tolist() == [10]  # 50% reward kept, the rest goes where it would have gone
        own = (t.deal_id == d.deal_id[traitor][0]) & (t.reason == Reason.ResultsCollateral)
        assert (t.direction[own] != Direction.Slashed).all()  # the traitor keeps its deposit
        assert not ((t.deal_id == d.deal_id[traitor][0]) & (t.reason == Reason.JobPayment)).any()  # unpaid
    unbetrayed = [g for g in np.unique(d.group) if d.reports[d.group == g].sum() == 0]
    assert unbetrayed and all((d.state[d.group == g] == S.ResultsAccepted).all() for g in unbetrayed)


def test_off_switch_ignores_the_proof(stack_run):
    out = stack_run(stack(enabled=False), CARTEL, market=ONE_MODULE, rounds=1, tweak=first_replica_reports)
    assert out.fake_accepted == out.deals > 0


def test_a_bribed_mediator_proves_the_bribe(stack_run):
    population = {
        "nodes": [{"strategy": "cheater", "rate": 1.0, "bribe": 30}],
        "clients": [{"strategy": "checker", "q": 1.0}],
        "mediators": [{"strategy": "bribable", "threshold": 10, "report": True}],
    }
    mech = {"order": ["lilypad_v2", "whistleblowing"], "lilypad_v2": {}, "whistleblowing": {"reward_bps": 10_000}}
    # the same reporting mediator only takes the bribe where the mechanism does not pay for the proof
    bought = stack_run({**mech, "whistleblowing": {"enabled": False}}, population, market=ONE_MODULE, rounds=1)
    assert bought.fake_accepted == bought.deals > 0
    out = stack_run(mech, population, market=ONE_MODULE, rounds=1)
    d, t = out.results[0].deals, out.results[0].transfers
    assert out.fake_accepted == 0 and (d.state == S.MediationRejected).all()
    slashed = (t.direction == Direction.Slashed) & (t.reason == Reason.ResultsCollateral)
    assert t.payee[slashed].tolist() == d.mediator_account().tolist()  # the whole deposit: reward 100%
    assert (t.amount[t.reason == Reason.Bribe] == 30).all()  # the traitor keeps the bribe too
