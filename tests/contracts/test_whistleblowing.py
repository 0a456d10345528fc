"""The whistleblowing module: a bribed mediator's report, whose proof is the node's EIP-712 signature over its bribe
offer, rejects the result and rewards the mediator with the node's slashed deposit; a forged or mismatched
signature, one by anyone but the deal's node, a report by anyone but the drawn mediator, in the wrong state or
twice reverts with a named error and moves nothing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from live.chain.binding import Terms
from live.chain.params import ChainParams
from mechanisms.protocol import DealState as S

RESULT = b"\x01" * 32


BRIBE_SOL = "contracts/src/BribeProof.sol"


def whistle_world(build_world: Any, params: ChainParams, artifacts: Any = None, **kw: Any) -> tuple[Any, Terms]:
    """A deployment with the whistleblowing module and a deal checked, mediator 0 drawn."""
    w = build_world(params=replace(params, whistleblowing=True, **kw), artifacts=artifacts)
    t = w.terms()
    w.agreed(t)
    w.send(w.dep.post(t, RESULT))
    w.send(w.dep.set_draws([w.id(t)], [0]), w.dep.check(t))
    return w, t


def offer(w: Any, signer: str, deal: bytes) -> bytes:
    """`signer`'s signature over a bribe offer for `deal`."""
    return w.dep.chain.sign_typed(signer, w.dep.bribe_typed(deal))


def test_a_proven_bribe_rejects_the_result_and_rewards_the_mediator(build_world: Any, params: ChainParams) -> None:
    w, t = whistle_world(build_world, params)
    d, m0 = w.dep, w.mediators[0]
    before = {a: w.wealth(a) for a in (w.client, w.node, m0)}
    w.send(d.report_bribe(t, m0, offer(w, w.node, w.id(t))))
    gained = {a: w.wealth(a) - before[a] for a in before}
    # job cost 40: the client gets its payment escrow back (payment forfeit), the mediator its fee (60) and the
    # node's results collateral (2 x 40) instead of the burn
    assert gained == {w.client: 40, w.node: 0, m0: 60 + 80}
    assert d.state(w.id(t)) == S.MediationRejected and d.escrow(w.id(t)) == 0
    assert d.whistle.functions.reporter(w.id(t)).call() == m0
    assert w.error(d.report_bribe(t, m0, offer(w, w.node, w.id(t)))) == "WrongState"  # twice


def test_the_mediator_passes_on_all_but_its_reward(build_world: Any, params: ChainParams) -> None:
    """reward_bps 3001 of the results collateral of 80: the mediator keeps floor(80 x 0.3001) = 24 and passes on 56
    to the protocol, where the slash would have gone."""
    w, t = whistle_world(build_world, params, slash_to="protocol", reward_bps=3_001)
    d, m0 = w.dep, w.mediators[0]
    before = {a: w.wealth(a) for a in (w.node, m0, w.protocol)}
    w.send(d.report_bribe(t, m0, offer(w, w.node, w.id(t))))
    assert {a: w.wealth(a) - before[a] for a in before} == {w.node: 0, m0: 60 + 24, w.protocol: 56}
    assert w.error(d.tx(m0, "moduleMove", m0, w.stranger, 1)) == "NotParty"  # only the module moves balances


def test_bad_proofs_and_wrong_callers_revert_and_move_nothing(build_world: Any, params: ChainParams) -> None:
    w, t = whistle_world(build_world, params)
    d, (m0, m1, _) = w.dep, w.mediators
    deal = w.id(t)
    good = offer(w, w.node, deal)
    accounts = (w.client, w.node, m0, m1, w.stranger)
    before = ({a: w.wealth(a) for a in accounts}, d.escrow(deal))
    assert w.error(d.report_bribe(t, m0, offer(w, w.stranger, deal))) == "BadSignature"  # not the deal's node
    assert w.error(d.report_bribe(t, m0, offer(w, w.client, deal))) == "BadSignature"  # a party, not the node
    other = w.id(w.terms(nonce=2))
    assert w.error(d.report_bribe(t, m0, offer(w, w.node, other))) == "BadSignature"  # another deal's offer
    forged = bytearray(good)
    forged[10] ^= 0xFF
    assert w.error(d.report_bribe(t, m0, bytes(forged))) in ("BadSignature", "ECDSAInvalidSignature")
    assert w.error(d.report_bribe(t, m0, good[:64])) == "ECDSAInvalidSignatureLength"
    assert w.error(d.report_bribe(t, m1, good)) == "NotParty"  # not the drawn mediator
    assert w.error(d.report_bribe(t, w.stranger, good)) == "NotParty"
    assert w.error(d.report_bribe(t, w.node, good)) == "NotParty"
    assert w.error(d.tx(m0, "mediate", tuple(t), False)) == "NotParty"  # verdicts only through the module
    assert w.error(d.submit(t, RESULT)) == "NotParty"  # results only through the module too
    assert w.error(d.tx(w.client, "nodeSlashTo", deal, w.client, 0, w.client, contract=d.whistle)) == "OnlyDeals"
    assert ({a: w.wealth(a) for a in accounts}, d.escrow(deal)) == before
    assert d.state(deal) == S.ResultsChecked


def test_a_report_outside_mediation_reverts(build_world: Any, params: ChainParams) -> None:
    """Before the check no mediator is drawn (NotParty); after the mediation timeout the deal is settled
    (WrongState); an ordinary verdict through the module settles as lilypad_v2 (the slash goes to the burn)."""
    w = build_world(params=replace(params, whistleblowing=True))
    d, m0 = w.dep, w.mediators[0]
    t = w.terms()
    w.agreed(t)
    w.send(d.post(t, RESULT))
    assert w.error(d.report_bribe(t, m0, offer(w, w.node, w.id(t)))) == "NotParty"
    w.send(d.set_draws([w.id(t)], [0]), d.check(t))
    w.mine_past(60)
    w.send(d.timeout("mediate", t, w.client))
    assert w.error(d.report_bribe(t, m0, offer(w, w.node, w.id(t)))) == "WrongState"
    t2 = w.terms(nonce=2)
    w.agreed(t2)
    w.send(d.post(t2, RESULT))
    w.send(d.set_draws([w.id(t2)], [0]), d.check(t2))
    burned = w.wealth("0x000000000000000000000000000000000000dEaD")
    w.send(d.mediate(t2, m0, False))
    assert w.wealth("0x000000000000000000000000000000000000dEaD") - burned == 80
    assert d.whistle.functions.reporter(w.id(t2)).call() == "0x" + "0" * 40


def test_a_module_that_trusts_any_signer_fails_the_checks(build_world: Any, params: ChainParams, mutate: Any) -> None:
    """The signer check is what makes the proof: a module without it lets a mediator claim an honest node's deposit
    with its own signature, which the named-error test above refuses."""
    check = "        if (ECDSA.recover(bribeDigest(id), signature) != t.node) revert BadSignature(id, t.node);\n"
    lax = mutate((check, "        ECDSA.recover(bribeDigest(id), signature);\n"), unit=BRIBE_SOL)
    w, t = whistle_world(build_world, params, artifacts=lax)
    m0 = w.mediators[0]
    assert w.error(w.dep.report_bribe(t, m0, offer(w, m0, w.id(t)))) is None  # the bug: a self-made "proof"
    w2, t2 = whistle_world(build_world, params)
    assert w2.error(w2.dep.report_bribe(t2, m0, offer(w2, m0, w2.id(t2)))) == "BadSignature"


def test_the_replication_module_carries_the_proof(build_world: Any, params: ChainParams) -> None:
    """With replication the proof goes through ReplicationModule: the briber's deposit (80) rewards the mediator,
    who keeps 25% (20) and passes on 60 to the honest replica the prisoner's contract names; a replication deployment
    without whistleblowing refuses the report."""
    repl = {"replication": True, "replicas": 2, "commit_reveal": False, "commit_blocks": 30}
    off = build_world(params=replace(params, **repl))
    t = off.terms()
    off.send(off.dep.open_job(off.client, [t]))
    off.agreed(t)
    off.send(off.dep.post(t, RESULT), off.dep.set_draws([off.id(t)], [0]), off.dep.check(t))
    sig = off.dep.chain.sign_typed(off.node, _as_whistle(off.dep).bribe_typed(off.id(t)))
    report = off.dep.tx(off.mediators[0], "reportBribe", tuple(t), bytes(32), sig, contract=off.dep.replication)
    assert off.error(report) == "BribeProofsDisabled"

    w = build_world(params=replace(params, whistleblowing=True, reward_bps=2_500, **repl))
    d, m0 = w.dep, w.mediators[0]
    t1, t2 = w.terms(nonce=1), w.terms(node=w.stranger, nonce=2)
    w.send(d.open_job(w.client, [t1, t2]))
    w.agreed(t1)
    w.agreed(t2)
    w.send(d.post(t1, b"\x02" * 32), d.post(t2, RESULT))
    w.send(d.set_draws([w.id(t1)], [0]), d.check(t1), d.accept(t2))
    before = {a: w.wealth(a) for a in (w.node, m0, w.stranger)}
    w.send(d.report_bribe(t1, m0, offer(w, w.node, w.id(t1)), RESULT))
    assert {a: w.wealth(a) - before[a] for a in before} == {w.node: 0, m0: 60 + 20, w.stranger: 60}
    assert d.state(w.id(t1)) == S.MediationRejected and d.escrow(w.id(t1)) == 0


def _as_whistle(dep: Any) -> Any:
    """The deployment as if whistleblowing were on, to build the bribe message for a deployment without it."""
    return replace(dep, params=replace(dep.params, whistleblowing=True))
