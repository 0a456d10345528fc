"""The Solidity state machine is the Python one: same enum names (checked by the build), same transition table
(checked here entry by entry on the deployed contract), and calls outside it revert with named errors."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.build import BuildError, load
from mechanisms.protocol import LEGAL, DealState


def test_transition_table_matches_python(world: Any) -> None:
    fn = world.dep.deals.functions.isLegal
    got = [[bool(fn(a, b).call()) for b in range(len(DealState))] for a in range(len(DealState))]
    assert got == LEGAL.tolist()


def test_artifacts_fit_the_code_size_limit(world: Any) -> None:
    code = world.dep.chain.w3.eth.get_code(world.dep.deals.address)  # EIP-170 counts the deployed (runtime) code
    assert 0 < len(code) <= 24_576 and len(code) < len(load()["Deals"].bytecode) // 2


def test_a_drifted_enum_fails_the_build(mutate: Any) -> None:
    with pytest.raises(BuildError, match="enum State"):
        mutate(
            ("        ResultsAccepted,\n        ResultsChecked,", "        ResultsChecked,\n        ResultsAccepted,"),
            unit="contracts/src/DealProtocol.sol",
        )


def test_wrong_state_party_and_deadline_revert_with_named_errors(world: Any) -> None:
    w, d = world, world.dep
    t = w.terms()
    assert w.error(d.accept(t)) == "UnknownDeal"
    w.agreed(t)
    assert w.error(d.accept(t)) == "WrongState"
    assert w.error({**d.submit(t, b"\x01" * 32), "from": w.client}) == "NotParty"
    assert w.error(d.submit(t, b"\x01" * 32, instructions=5)) == "InstructionCountMismatch"
    assert w.error(d.timeout("submit", t, w.client)) == "DeadlineNotReached"
    before = (w.wealth(w.client), w.wealth(w.node), d.escrow(w.id(t)))
    w.mine_past(60)
    assert w.error(d.submit(t, b"\x01" * 32)) == "DeadlinePassed"
    assert (w.wealth(w.client), w.wealth(w.node), d.escrow(w.id(t))) == before
    assert w.error(d.agree(w.terms(nonce=5, multiplier_bps=12_345), w.client)) == "InvalidTerms"
    assert w.error(d.agree(w.terms(nonce=6, mediators=0), w.client)) == "InvalidTerms"
