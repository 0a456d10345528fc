"""Dong et al.'s Colluder's and Traitor's contracts between two replicas: the ringleader pays a loyal follower, a
deviator forfeits the collusion deposit, a reporting deviator under the Traitor's contract forfeits nothing; off,
no payment changes hands."""

from __future__ import annotations

import numpy as np

from mechanisms.actions import Actions
from mechanisms.protocol import Reason

MARKET = {"n_clients": 60, "n_nodes": 120, "modules": [{"name": "cowsay"}]}
NEVER_CHECK = [{"strategy": "never_check"}]


def stack(enabled: bool = True, **params: object) -> dict:
    return {
        "order": ["lilypad_v2", "replication", "collusion_contracts"],
        "lilypad_v2": {},
        "replication": {"commit_reveal": True},
        "collusion_contracts": {"enabled": enabled, "side_payment": 3, "collusion_deposit": 11, **params},
    }


def cartel(follow: bool, report: bool = False):
    """Every node signs; even nodes post the cartel's fake, odd ones follow iff `follow` (else post correctly)."""

    def tweak(actions: Actions) -> None:
        actions.nodes.collude[:] = True
        actions.nodes.cheat_rate[:] = 1.0
        actions.nodes.cheat_rate[1::2] = 1.0 if follow else 0.0
        actions.nodes.report[1::2] = report

    return tweak


def contract_payments(out) -> list[tuple[int, int, int]]:
    """(payer, payee, amount) of every collusion-contract payment."""
    rows = []
    for r in out.results:
        t = r.transfers
        m = t.reason == Reason.Bribe
        rows += list(zip(t.payer[m].tolist(), t.payee[m].tolist(), t.amount[m].tolist(), strict=True))
    return rows


def pairs(out, fn) -> None:
    for r in out.results:
        d = r.deals
        for g in np.unique(d.group):
            rows = np.flatnonzero(d.group == g)
            if len(rows) == 2:
                fn(d, rows[np.argsort(d.replica[rows])])


def test_the_ringleader_pays_a_loyal_follower(stack_run):
    out = stack_run(stack(), {"clients": NEVER_CHECK}, market=MARKET, tweak=cartel(follow=True))
    paid = contract_payments(out)
    expected = []
    pairs(out, lambda d, rows: expected.append((int(d.node[rows[0]]), int(d.node[rows[1]]), 3)))
    assert sorted(paid) == sorted(expected) and expected


def test_a_deviator_forfeits_the_collusion_deposit_unless_a_traitor_reports(stack_run):
    deviate = stack_run(stack(), {"clients": NEVER_CHECK}, market=MARKET, tweak=cartel(follow=False))
    expected = []

    def forfeit(d, rows) -> None:
        followers, deviators = rows[d.cheated[rows]], rows[~d.cheated[rows]]
        if len(followers) == 1 and len(deviators) == 1:
            expected.append((int(d.node[deviators[0]]), int(d.node[followers[0]]), 11))
        elif len(followers) == 2:  # both follow: the side payment
            expected.append((int(d.node[rows[0]]), int(d.node[rows[1]]), 3))

    pairs(deviate, forfeit)
    assert expected and sorted(contract_payments(deviate)) == sorted(expected)
    traitor = stack_run(
        stack(traitors=True), {"clients": NEVER_CHECK}, market=MARKET, tweak=cartel(follow=False, report=True)
    )
    assert all(amount == 3 for _, _, amount in contract_payments(traitor))
    reporting_without_traitors = stack_run(
        stack(), {"clients": NEVER_CHECK}, market=MARKET, tweak=cartel(follow=False, report=True)
    )
    assert any(amount == 11 for _, _, amount in contract_payments(reporting_without_traitors))


def test_off_no_payment(stack_run):
    out = stack_run(stack(enabled=False), {"clients": NEVER_CHECK}, market=MARKET, tweak=cartel(follow=False))
    assert contract_payments(out) == []
