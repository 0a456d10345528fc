"""Replication at deal time: disagreement triggers mediation, commit-reveal stops copying, prisoner's contract."""

from __future__ import annotations

import numpy as np
import pytest

from mechanisms.actions import Actions
from mechanisms.config import ConfigError
from mechanisms.money import Pool
from mechanisms.protocol import DealState, Direction, Reason

S = DealState
NEVER_CHECK = [{"strategy": "never_check"}]
HALF_CHEAT = {"nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 1.0}], "clients": NEVER_CHECK}
ONE_MODULE = {"modules": [{"name": "cowsay"}]}  # every node serves every job: every job gets all its replicas
SLOW = {**ONE_MODULE, "response": {"node_submit": 5.0}}  # replicas post at different times: copying is possible


def stack(enabled: bool = True, **replication: object) -> dict:
    return {
        "order": ["lilypad_v2", "replication"],
        "lilypad_v2": {},
        "replication": {"enabled": enabled, **replication},
    }


def groups(out) -> list[tuple[np.ndarray, ...]]:
    return [r.deals for r in out.results]


def test_each_job_is_bought_from_distinct_nodes(stack_run):
    out = stack_run(stack(replicas=3), HALF_CHEAT, rounds=2)
    for d in groups(out):
        for g in np.unique(d.group):
            nodes = d.node[d.group == g]
            assert len(nodes) == len(set(nodes.tolist())) <= 3


def test_disagreeing_replicas_go_to_mediation_and_the_cheater_pays_the_honest_replica(stack_run):
    out = stack_run(stack(commit_reveal=True), HALF_CHEAT, market=ONE_MODULE, rounds=3)
    assert out.fake_accepted == 0 and out.count(S.MediationRejected) > 0
    for r in out.results:
        d, t = r.deals, r.transfers
        mixed = [g for g in np.unique(d.group) if d.cheated[d.group == g].sum() == 1 and (d.group == g).sum() == 2]
        assert mixed
        for g in mixed:
            cheat, honest = d.cheated & (d.group == g), ~d.cheated & (d.group == g)
            slash = (
                (t.deal_id == d.deal_id[cheat][0])
                & (t.direction == Direction.Slashed)
                & (t.reason == Reason.ResultsCollateral)
            )
            assert t.payee[slash].tolist() == d.node[honest].tolist()
            assert t.amount[slash].tolist() == d.results_collateral[cheat].tolist()


def test_without_replication_nobody_checks_and_every_fake_passes(stack_run):
    out = stack_run(stack(enabled=False), HALF_CHEAT, rounds=2)
    assert out.fake_accepted == sum(int(d.cheated.sum()) for d in groups(out)) > 0


def test_without_commit_reveal_a_late_lazy_node_copies_the_first_result(stack_run):
    lazy = stack_run(stack(commit_reveal=False), HALF_CHEAT, market=SLOW, rounds=3)
    sealed = stack_run(stack(commit_reveal=True), HALF_CHEAT, market=SLOW, rounds=3)
    copied = sum(int((d.cheated & ~d.wrong()).sum()) for d in groups(lazy))
    assert copied > 0  # skipped the work, posted a correct result
    assert sum(int((d.cheated & ~d.wrong()).sum()) for d in groups(sealed)) == 0
    assert lazy.count(S.MediationRejected) < sealed.count(S.MediationRejected)


def test_a_cartel_agrees_on_its_shared_fake_and_passes_unchecked(stack_run):
    def collude(a: Actions) -> None:
        a.nodes.collude[:] = True

    cheaters = {"nodes": [{"strategy": "cheater", "rate": 1.0}], "clients": NEVER_CHECK}
    cartel = stack_run(stack(commit_reveal=True), cheaters, market=ONE_MODULE, rounds=2, tweak=collude)
    alone = stack_run(stack(commit_reveal=True), cheaters, market=ONE_MODULE, rounds=2)
    assert cartel.fake_accepted == cartel.deals > 0 and cartel.count(S.MediationRejected) == 0
    assert alone.fake_accepted == 0 and alone.count(S.MediationRejected) == alone.deals


@pytest.mark.parametrize("to, pool", [("burn", Pool.Burn), ("client", None)])
def test_wrong_deposit_destinations(stack_run, to, pool):
    out = stack_run(stack(commit_reveal=True, wrong_deposit_to=to), HALF_CHEAT, market=ONE_MODULE, rounds=1)
    d, t = out.results[0].deals, out.results[0].transfers
    slash = (t.direction == Direction.Slashed) & (t.reason == Reason.ResultsCollateral)
    assert slash.any()
    rows = np.searchsorted(d.deal_id, t.deal_id[slash])
    expected = d.client[rows] if pool is None else np.full(len(rows), out.engine.market.facts.pool_base + pool)
    assert t.payee[slash].tolist() == expected.tolist()


def test_a_client_agrees_to_all_its_replicas_or_none(stack_run):
    # one replica's exposure is payment 10 + judge collateral 5 + fee 60 = 75: 149 covers one, not two
    market = {**ONE_MODULE, "node_price": [10, 10]}
    short = stack_run(stack(), HALF_CHEAT, market={**market, "client_balance": 149}, rounds=1).results[0].deals
    assert len(short) > 0 and (short.state == S.TimeoutAgree).all() and not short.client_agreed.any()
    enough = stack_run(stack(), HALF_CHEAT, market={**market, "client_balance": 150}, rounds=1).results[0].deals
    assert enough.client_agreed.all()


def test_the_timing_attack_copies_whenever_an_honest_replica_posts(stack_run):
    """Without commit-reveal a lazy node that waits for its partner always copies an honest partner's result; not
    waiting, it copies only when it happens to post later; under commit-reveal waiting gains nothing."""

    def lazy(wait: bool) -> dict:
        return {
            "nodes": [{"strategy": "honest"}, {"strategy": "copier" if wait else "cheater", "rate": 1.0}],
            "clients": NEVER_CHECK,
        }

    def fakes_beside_honest(out) -> tuple[int, int]:
        """(fakes posted, lazy deals) over groups with one honest and one lazy replica."""
        fakes = lazy_deals = 0
        for d in groups(out):
            for g in np.unique(d.group):
                rows = d.group == g
                if rows.sum() == 2 and d.cheated[rows].sum() == 1:
                    lazy_deals += 1
                    fakes += int((d.cheated & d.wrong() & rows).sum())
        return fakes, lazy_deals

    waiting = fakes_beside_honest(stack_run(stack(commit_reveal=False), lazy(True), market=SLOW, rounds=3))
    racing = fakes_beside_honest(stack_run(stack(commit_reveal=False), lazy(False), market=SLOW, rounds=3))
    sealed = fakes_beside_honest(stack_run(stack(commit_reveal=True), lazy(True), market=SLOW, rounds=3))
    assert waiting[1] > 20 and waiting[0] == 0
    assert 0 < racing[0] < racing[1]
    assert sealed[0] == sealed[1] > 0


def test_one_mediation_settles_the_disagreeing_replicas(stack_run):
    """Three replicas, cheaters among them: with settle_once each disagreeing job pays one fee and one re-run and
    every replica gets the outcome an honest mediation gives it; without, every replica pays its own."""
    pop = {"nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 1.0}], "clients": NEVER_CHECK}
    runs = {
        once: stack_run(stack(replicas=3, commit_reveal=True, settle_once=once), pop, market=ONE_MODULE)
        for once in (True, False)
    }
    for once, out in runs.items():
        for r in out.results:
            d, t = r.deals, r.transfers
            mediated = np.isin(d.state, [S.MediationAccepted, S.MediationRejected])
            jobs = np.unique(d.group[mediated])
            assert len(jobs) > 0
            fees = (t.reason == Reason.MediationFee) & (t.direction == Direction.PaidOut)
            reruns = (t.reason == Reason.ComputeCost) & np.isin(t.payer, d.mediator_accounts)
            assert fees.sum() == reruns.sum() == (len(jobs) if once else mediated.sum())
            assert (d.state[mediated] == np.where(d.wrong()[mediated], S.MediationRejected, S.MediationAccepted)).all()
            assert (d.shared_rerun.sum() == mediated.sum() - len(jobs)) if once else not d.shared_rerun.any()


def test_settle_once_is_refused_with_consortium_panels(stack_run):
    mech = {
        "order": ["lilypad_v2", "consortium", "replication"],
        "lilypad_v2": {"mediation_fee": 100},
        "consortium": {"member_fee": 100},
        "replication": {"settle_once": True},
    }
    with pytest.raises(ConfigError, match=r"mechanism\.replication\.settle_once=True is invalid"):
        stack_run(mech, HALF_CHEAT)
