"""The metric definitions: a fake result is accepted when the ledger paid its node, whatever the terminal state;
per-deal and per-job rates divide the same counts by deals and by jobs (all replicas of a job offer)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mechanisms.protocol import DealState
from sim import metrics
from twin.build import build

MARKET = {
    "n_clients": 60,
    "n_nodes": 60,
    "n_mediators": 3,
    "modules": [{"name": "job", "instructions": 1, "compute_cost": 6}],
    "machines": [{"name": "box"}],
    "node_price": [10, 10],
    "client_max_price": [10, 10],
    "response": {"client_agree": 0, "node_agree": 0, "node_submit": 0, "client_judge": 0, "mediator": 0},
}
AGENTS = {
    "nodes": [{"strategy": "cheater", "rate": 1.0}],
    "clients": [{"strategy": "checker", "q": 1.0}],
    "mediators": [{"strategy": "honest"}],
}


def rounds(mechanism: dict[str, Any], n: int = 3) -> list[Any]:
    sim = build({"seed": 1, "market": MARKET, "mechanism": mechanism, "agents": AGENTS})
    return [sim.engine.step(sim.population.actions(i)) for i in range(n)]


@pytest.mark.parametrize("forfeit", [True, False])
def test_a_rejected_fake_is_accepted_iff_its_node_is_paid(forfeit: bool) -> None:
    """Every result is a fake and every one is checked and rejected; with `forfeit_payment=false` the node is paid
    anyway, so each of those fakes counts as accepted (a table of 'paid states' would count none)."""
    mech = {"order": ["lilypad_v2"], "lilypad_v2": {"mediation_fee": 6, "forfeit_payment": forfeit}}
    for r in rounds(mech):
        d = r.deals
        assert len(d) > 0 and (d.state == DealState.MediationRejected).all() and d.cheated.all()
        paid = metrics.job_payment_to_node(d, r.transfers)
        assert (paid == (0 if forfeit else d.job_cost)).all()
        np.testing.assert_array_equal(metrics.fake_accepted(d, r.transfers), ~forfeit & d.cheated)
        counts = metrics.round_counts(d, r.transfers)
        assert counts["fake_accepted"] == (0 if forfeit else len(d))
        assert counts["reruns"] == counts["mediations"] == counts["checks"] == len(d)


def test_per_job_counts_every_replica_of_a_job_once() -> None:
    mech = {
        "order": ["lilypad_v2", "replication"],
        "lilypad_v2": {"mediation_fee": 6, "forfeit_payment": False},
        "replication": {"replicas": 2, "commit_reveal": True},
    }
    totals = dict.fromkeys(metrics.COUNTS, 0)
    for r in rounds(mech):
        for key, n in metrics.round_counts(r.deals, r.transfers).items():
            totals[key] += n
    assert totals["deals"] == 2 * totals["jobs"] > 0 and totals["fake_accepted"] == totals["deals"]
    rates = metrics.rates(totals)
    assert rates["fake_accepted_per_deal"] == 1.0 and rates["fake_accepted_per_job"] == 2.0
    assert rates["checks_per_job"] == 2 * rates["checks_per_deal"] > 0
    # every deal checked: one re-run per deal, plus the second replica of every job
    assert rates["extra_executions_per_job"] == (totals["reruns"] + totals["jobs"]) / totals["jobs"] == 3.0


def test_rates_take_what_they_are_given() -> None:
    assert metrics.rates({"fake_accepted": 3, "deals": 6}) == {"fake_accepted_per_deal": 0.5}
    assert metrics.rates({"cheated": 0, "results_submitted": 0})["cheat_rate"] is None
    assert set(metrics.rates(dict.fromkeys((*metrics.COUNTS, "client_outlay"), 1))) == set(metrics.RATES)
    assert metrics.definition("fake_accepted_per_job").startswith("fake_accepted_per_job = fake results")
