"""Dispute costs: fees that scale with the job, the client's verification cost, the cost of a fake, the loser pays
the dispute and the client's share of the slashed deposit; each against the mechanism switched off."""

from __future__ import annotations

import numpy as np

from mechanisms.deals import DealBatch
from mechanisms.money import Pool
from mechanisms.protocol import DealState, Direction, Reason
from mechanisms.transfers import Transfers

S = DealState
POPULATION = {
    "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 1.0}],
    "clients": [{"strategy": "checker", "q": 0.5}],
    "mediators": [{"strategy": "honest"}],
}


def stack(enabled: bool = True, **params: object) -> dict:
    return {
        "order": ["lilypad_v2", "dispute_costs"],
        "lilypad_v2": {"mediation_fee": 100, "slash_to": "burn"},
        "dispute_costs": {"enabled": enabled, **params},
    }


def rows(out) -> list[tuple[DealBatch, Transfers]]:
    return [(r.deals, r.transfers) for r in out.results]


def per_deal(d: DealBatch, t: Transfers, mask: np.ndarray) -> np.ndarray:
    out = np.zeros(len(d), dtype=np.int64)
    np.add.at(out, np.searchsorted(d.deal_id, t.deal_id[mask]), t.amount[mask])
    return out


def test_the_fee_scales_with_the_job(stack_run):
    on = stack_run(stack(fee_per_instruction=3), POPULATION, rounds=2)
    off = stack_run(stack(enabled=False, fee_per_instruction=3), POPULATION, rounds=2)
    for d, _ in rows(on):
        assert (d.mediation_fee == 100 + 3 * d.instructions).all() and len(np.unique(d.mediation_fee)) > 1
    for d, _ in rows(off):
        assert (d.mediation_fee == 100).all()


def test_the_client_pays_its_verification_cost_and_the_cheater_its_fake(stack_run):
    on = stack_run(stack(verification_cost=7, fake_cost=2), POPULATION, rounds=2)
    off = stack_run(stack(enabled=False, verification_cost=7, fake_cost=2), POPULATION, rounds=2)
    for out, vc, fc in ((on, 7, 2), (off, 0, 0)):
        for d, t in rows(out):
            compute = (t.reason == Reason.ComputeCost) & (t.payee == d.pool_base + Pool.Compute)
            by_client = per_deal(d, t, compute & (t.payer == d.client[np.searchsorted(d.deal_id, t.deal_id)]))
            checked = np.isin(d.state, [S.MediationAccepted, S.MediationRejected, S.TimeoutMediateResults])
            assert checked.any()
            assert (by_client == np.where(checked, vc, 0)).all()
            by_node = per_deal(d, t, compute & (t.payer == d.node[np.searchsorted(d.deal_id, t.deal_id)]))
            assert (by_node == np.where(d.cheated, fc, np.where(d.submitted, d.compute_cost, 0))).all()


def test_the_loser_pays_the_dispute_and_the_client_gets_its_share(stack_run):
    on = stack_run(stack(loser_pays=True, client_share_bps=5_000), POPULATION, rounds=2)
    off = stack_run(stack(enabled=False, loser_pays=True, client_share_bps=5_000), POPULATION, rounds=2)
    for out, on_ in ((on, True), (off, False)):
        for d, t in rows(out):
            rejected = d.state == S.MediationRejected
            assert rejected.any()
            to_client = (t.direction == Direction.Spent) & (t.payer == d.pool_base + Pool.Burn)
            fee = per_deal(d, t, to_client & (t.reason == Reason.MediationFee))
            share = per_deal(d, t, to_client & (t.reason == Reason.ResultsCollateral))
            want_fee = np.minimum(d.mediation_fee, d.results_collateral)
            assert (fee == np.where(rejected & on_, want_fee, 0)).all()
            assert (share == np.where(rejected & on_, (d.results_collateral - want_fee) // 2, 0)).all()
            assert (t.payee[to_client] == d.client[np.searchsorted(d.deal_id, t.deal_id[to_client])]).all()
