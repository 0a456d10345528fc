"""The replication module's calls: jobs, commit-reveal and verdicts revert with named errors and move nothing when
called by the wrong party, in the wrong state or out of turn; the prisoner's contract pays the honest replica."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from live.chain.params import ChainParams
from mechanisms.protocol import DealState as S

REPLICATION = {"replication": True, "replicas": 2, "commit_reveal": True, "commit_blocks": 30}
CORRECT, FAKE = b"\x01" * 32, b"\x02" * 32
SALT = b"\x07" * 32


def replicated(build_world: Any, params: ChainParams, **kw: Any) -> tuple[Any, Any, Any]:
    """A deployment with replication and a job of two replicas: the world's node and the stranger as nodes."""
    w = build_world(params=replace(params, **{**REPLICATION, **kw}))
    return w, w.terms(nonce=1), w.terms(node=w.stranger, nonce=2)


def test_jobs_and_commit_reveal_revert_with_named_errors(build_world: Any, params: ChainParams) -> None:
    w, t1, t2 = replicated(build_world, params)
    d = w.dep
    assert w.error(d.open_job(w.node, [t1, t2])) == "NotParty"  # only the client opens its job
    assert w.error(d.open_job(w.client, [t1, t1])) == "InvalidJob"  # replicas on distinct nodes
    assert w.error(d.open_job(w.client, [t1, t2, w.terms(nonce=3)])) == "InvalidJob"  # at most `replicas`
    w.send(d.open_job(w.client, [t1, t2]))
    assert w.error(d.open_job(w.client, [t1])) == "InvalidJob"  # a deal belongs to one job
    assert w.error(d.commit(t1, CORRECT, SALT)) == "WrongState"  # not agreed yet
    w.agreed(t1)
    w.agreed(t2)
    assert w.error(d.submit(t1, CORRECT)) == "NotParty"  # results go through the module only
    assert w.error(d.post(t1, CORRECT)) == "CommitRevealEnabled"
    assert w.error(d.tx(w.stranger, "commit", tuple(t1), b"\x09" * 32, contract=d.replication)) == "NotParty"
    assert w.error(d.tx(w.node, "commit", tuple(t1), bytes(32), contract=d.replication)) == "InvalidJob"
    w.send(d.commit(t1, CORRECT, SALT))
    assert w.error(d.commit(t1, CORRECT, SALT)) == "AlreadyCommitted"
    assert w.error(d.reveal(t1, CORRECT, SALT)) == "RevealNotOpen"  # the other replica has not committed
    assert w.error(d.reveal(t2, CORRECT, SALT)) == "NotCommitted"
    w.send(d.commit(t2, FAKE, SALT))
    escrow = d.escrow(w.id(t1))
    assert w.error(d.reveal(t1, FAKE, SALT)) == "BadReveal"  # not what it committed
    assert w.error(d.reveal(t1, CORRECT, b"\x08" * 32)) == "BadReveal"
    assert d.escrow(w.id(t1)) == escrow and d.state(w.id(t1)) == S.DealAgreed  # nothing moved
    w.send(d.reveal(t1, CORRECT, SALT))
    assert d.state(w.id(t1)) == S.ResultsSubmitted
    assert w.error(d.reveal(t1, CORRECT, SALT)) == "WrongState"
    unjoined = w.terms(nonce=9)
    w.agreed(unjoined)
    assert w.error(d.commit(unjoined, CORRECT, SALT)) == "NotReplica"
    assert w.error(d.tx(w.stranger, "post", tuple(unjoined), CORRECT, contract=d.replication)) == "NotParty"
    w.send(d.post(unjoined, CORRECT))  # a deal in no job is posted directly, commit-reveal or not
    assert d.state(w.id(unjoined)) == S.ResultsSubmitted
    assert w.error(d.tx(w.client, "nodeSlashTo", w.id(t1), w.client, 0, w.client, contract=d.replication)) == (
        "OnlyDeals"
    )


def test_a_replica_that_never_commits_waits_out_the_window(build_world: Any, params: ChainParams) -> None:
    """Reveals open `commitBlocks` after the job opened; a commit after that is refused, so the late replica can
    no longer post and ends at the submit timeout, its collateral slashed."""
    w, t1, t2 = replicated(build_world, params)
    d = w.dep
    w.send(d.open_job(w.client, [t1, t2]))
    w.agreed(t1)
    w.agreed(t2)
    w.send(d.commit(t1, CORRECT, SALT))
    assert w.error(d.reveal(t1, CORRECT, SALT)) == "RevealNotOpen"
    w.mine_past(30)
    assert w.error(d.commit(t2, CORRECT, SALT)) == "CommitClosed"
    w.send(d.reveal(t1, CORRECT, SALT))
    w.mine_past(60)
    w.send(d.timeout("submit", t2, w.client))
    assert d.state(w.id(t2)) == S.TimeoutSubmitResults and d.escrow(w.id(t2)) == 0


def test_the_prisoners_contract_pays_the_honest_replica(build_world: Any, params: ChainParams) -> None:
    """Both replicas checked (they disagree); the rejecting mediator declares the correct result: the wrong
    replica's results collateral (2 x the job cost of 40) goes to the replica that revealed it."""
    w, t1, t2 = replicated(build_world, params, commit_reveal=False, slash_to="protocol")
    d = w.dep
    w.send(d.open_job(w.client, [t1, t2]))
    w.agreed(t1)
    w.agreed(t2)
    assert w.error(d.commit(t1, CORRECT, SALT)) == "CommitRevealDisabled"
    w.send(d.post(t1, FAKE), d.post(t2, CORRECT))
    w.send(d.set_draws([w.id(t1), w.id(t2)], [0, 1]), d.check(t1), d.check(t2))
    m0, m1 = w.mediators[:2]
    assert w.error(d.tx(m0, "mediate", tuple(t1), False, contract=d.deals)) == "NotParty"  # only via the module
    assert w.error(d.mediate(t1, m1, False, CORRECT)) == "NotParty"  # not its drawn mediator
    before = {a: w.wealth(a) for a in (w.node, w.stranger, w.protocol)}
    w.send(d.mediate(t2, m1, True), d.mediate(t1, m0, False, CORRECT))
    gained = {a: w.wealth(a) - before[a] for a in before}
    # the honest node: its payment, its own collateral back, and the wrong replica's collateral
    assert gained == {w.node: 0, w.stranger: 40 + 80 + 80, w.protocol: 0}
    assert d.state(w.id(t1)) == S.MediationRejected and d.state(w.id(t2)) == S.MediationAccepted
    assert d.escrow(w.id(t1)) == 0 and d.escrow(w.id(t2)) == 0
