"""One regression test per bug class found in Lilypad's contracts, each shown to fail on a mutated copy of the deal
contract that has the bug (the mutant is compiled from the real source with a few lines changed).

Each scenario asserts the correct behaviour against a deployment; `test_<bug>` runs it on the real contract and
`test_<bug>_is_caught` runs it on the mutant and requires it to fail (an assertion, a failed transaction or a
contract that no longer compiles all count: each means the bug cannot ship unnoticed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from eth_utils import to_checksum_address

from contracts.build import BuildError, load
from live.chain.node import ChainError

CHAIN = "anvil"  # the conftest's chain for this module (the scenarios mine many blocks)
DEAD = to_checksum_address("0x000000000000000000000000000000000000dEaD")
ESCROW_UNCHECKED = (
    "        d.escrow -= uint128(amount);\n",
    "        d.escrow = amount > d.escrow ? 0 : d.escrow - uint128(amount);\n",
)
NO_SETTLED_CHECK = ("        if (d.escrow != 0) revert EscrowNotSettled(id, d.escrow);\n", "")


# ---------------------------------------------------------------- scenarios (pass on a correct contract)


def interface_matches_implementation(w: Any) -> None:
    """Every IDeals function exists in Deals with the same selector, and both timeouts work through the interface."""
    arts = w.dep.artifacts
    iface = {(f["name"], len(f["inputs"])) for f in arts["IDeals"].abi if f["type"] == "function"}
    impl = {(f["name"], len(f["inputs"])) for f in arts["Deals"].abi if f["type"] == "function"}
    assert iface <= impl, f"interface functions missing from the implementation: {iface - impl}"
    via = w.dep.chain.w3.eth.contract(address=w.dep.deals.address, abi=arts["IDeals"].abi)
    t1, t2 = w.terms(nonce=1), w.terms(nonce=2)
    w.agreed(t1)
    w.submitted(t2)
    w.mine_past(60)
    w.send(
        w.dep.tx(w.client, "timeoutSubmitResults", tuple(t1), contract=via),
        w.dep.tx(w.node, "timeoutJudgeResults", tuple(t2), contract=via),
    )
    assert w.dep.state(w.id(t1)) == 8 and w.dep.state(w.id(t2)) == 9


def right_collateral_on_timeouts(w: Any) -> None:
    """Submit (7) and judge (3) collaterals differ: each timeout returns or slashes exactly the right one."""
    before = {a: w.wealth(a) for a in (w.client, w.node)}
    t1, t2 = w.terms(nonce=1), w.terms(nonce=2)
    w.send(w.dep.agree(t1, w.node))  # only the node agrees
    w.agreed(t2)  # both agree, the node never submits
    w.mine_past(60)
    w.send(w.dep.timeout("agree", t1, w.node), w.dep.timeout("submit", t2, w.client))
    assert w.wealth(w.client) == before[w.client]
    assert w.wealth(w.node) == before[w.node] - 7
    assert w.dep.deals.functions.balanceOf(DEAD).call() == 7


def deals_cannot_drain_each_other(w: Any) -> None:
    """Settling one deal never touches another's escrow; the contract stays solvent for the other."""
    a, b = w.terms(nonce=1), w.terms(nonce=2, price=50)
    w.submitted(a)
    w.submitted(b)
    held_b = w.dep.escrow(w.id(b))
    w.send(w.dep.accept(a))
    assert w.dep.escrow(w.id(b)) == held_b
    owed = sum(int(w.dep.deals.functions.balanceOf(x).call()) for x in (w.client, w.node))
    assert int(w.dep.token.functions.balanceOf(w.dep.deals.address).call()) == owed + held_b
    w.send(w.dep.accept(b))
    assert w.dep.escrow(w.id(b)) == 0


def mediation_deadline_counts_from_the_check(w: Any) -> None:
    """The mediator has the full mediation window after the check, however late in the judge window it came."""
    t = w.terms()
    w.submitted(t)
    w.dep.chain.mine(25)  # the client checks late in its judge window
    w.send(w.dep.set_draws([w.id(t)], [0]), w.dep.check(t))
    w.dep.chain.mine(50)  # 75 blocks after the result, 51 after the check: inside the mediation window
    assert w.error(w.dep.timeout("mediate", t, w.client)) == "DeadlineNotReached"
    w.send(w.dep.mediate(t, w.mediators[0], True))
    assert w.dep.state(w.id(t)) == 5


def judge_timeout_releases_the_payment(w: Any) -> None:
    """After a judge timeout the node is paid, the client gets the rest of its payment escrow back, nothing stays."""
    before = {a: w.wealth(a) for a in (w.client, w.node)}
    t = w.terms(price=10, instructions=4)
    w.submitted(t)
    w.mine_past(30)
    w.send(w.dep.timeout("judge", t, w.node))
    assert w.dep.escrow(w.id(t)) == 0
    assert w.wealth(w.node) == before[w.node] + 40
    assert w.wealth(w.client) == before[w.client] - 40 - 3  # job cost, and the slashed judge collateral
    assert w.dep.params.payment_collateral_bps > 10_000  # so a refund was due


def no_tx_origin(w: Any) -> None:
    """A relay contract cannot act for the user who called it: deposit pulls from msg.sender, roles check it."""
    fwd = w.deploy_extra("Forwarder")
    before = int(w.dep.token.functions.balanceOf(w.client).call())
    deposit = w.dep.deposit(w.client, 100)
    relayed = {
        "from": w.client,
        "to": fwd.address,
        "data": fwd.encode_abi("forward", args=[w.dep.deals.address, deposit["data"]]),
    }
    assert w.error(relayed) is not None  # pulls from the relay, which has no tokens
    agree = w.dep.agree(w.terms(), w.client)
    relayed_agree = {**relayed, "data": fwd.encode_abi("forward", args=[w.dep.deals.address, agree["data"]])}
    assert w.error(relayed_agree) is not None
    with pytest.raises(ChainError):
        w.send(relayed)
    assert int(w.dep.token.functions.balanceOf(w.client).call()) == before


def ids_bound_to_terms(w: Any) -> None:
    """Nobody can squat a deal id: a stranger cannot use the victim's terms, and other terms give another id."""
    victim = w.terms(nonce=9)
    squat = w.terms(nonce=9, client=w.stranger)
    assert w.id(victim) != w.id(squat)
    assert w.error(w.dep.agree(victim, w.stranger)) == "NotParty"
    w.send(w.dep.agree(squat, w.stranger))
    w.agreed(victim)
    assert w.dep.state(w.id(victim)) == 1


def slashes_never_reach_the_deployer(w: Any) -> None:
    """Slashed value goes to the configured destination (here: burned), never to the deployer (the 'owner')."""
    owner = w.dep.deployer
    before = w.wealth(owner)
    t = w.terms()
    w.agreed(t)
    w.mine_past(60)
    w.send(w.dep.timeout("submit", t, w.client))
    assert w.wealth(owner) == before
    assert w.dep.deals.functions.balanceOf(DEAD).call() == 7


def settles_once(w: Any) -> None:
    """Accept twice, time out after accepting, time out twice: every second settlement reverts, nothing moves."""
    a, b = w.terms(nonce=1), w.terms(nonce=2)
    w.submitted(a)
    w.submitted(b)
    w.send(w.dep.accept(a))
    w.mine_past(30)
    w.send(w.dep.timeout("judge", b, w.node))
    wealth = {x: w.wealth(x) for x in (w.client, w.node)}
    assert w.error(w.dep.accept(a)) == "WrongState"
    assert w.error(w.dep.timeout("judge", a, w.node)) == "WrongState"
    assert w.error(w.dep.timeout("judge", b, w.node)) == "WrongState"
    assert w.error(w.dep.accept(b)) == "WrongState"
    for tx in (w.dep.accept(a), w.dep.timeout("judge", b, w.node)):
        with pytest.raises(ChainError):
            w.send(tx)
    assert {x: w.wealth(x) for x in (w.client, w.node)} == wealth


def only_parties_in_their_roles(w: Any) -> None:
    """Every call by anyone but the party of its role reverts with NotParty, and nothing moves."""
    everyone = [w.client, w.node, *w.mediators, w.stranger]
    snapshot = {x: w.wealth(x) for x in everyone}
    d = w.dep

    def only(allowed: list[str], make: Callable[[str], dict[str, Any]]) -> None:
        for x in everyone:
            if x not in allowed:
                assert w.error(make(x)) == "NotParty", f"{x} was not refused"

    t_new = w.terms(nonce=1)
    only([w.client, w.node], lambda x: d.agree(t_new, x))
    t_neg = w.terms(nonce=2)
    w.send(d.agree(t_neg, w.client))
    t_agr, t_sub, t_chk = w.terms(nonce=3), w.terms(nonce=4), w.terms(nonce=5)
    w.agreed(t_agr)
    w.submitted(t_sub)
    w.checked(t_chk, mediator_rank=1)
    snapshot = {x: w.wealth(x) for x in everyone}
    only([w.node], lambda x: {**d.submit(t_agr, b"\x02" * 32), "from": x})
    only([w.client], lambda x: {**d.accept(t_sub), "from": x})
    only([w.client], lambda x: {**d.check(t_sub), "from": x})
    only([w.mediators[1]], lambda x: d.mediate(t_chk, x, True))
    w.mine_past(60)
    only([w.client, w.node], lambda x: d.timeout("agree", t_neg, x))
    only([w.client], lambda x: d.timeout("submit", t_agr, x))
    only([w.node], lambda x: d.timeout("judge", t_sub, x))
    only([w.client, w.node], lambda x: d.timeout("mediate", t_chk, x))
    assert {x: w.wealth(x) for x in everyone} == snapshot


def no_reentrancy(w: Any) -> None:
    """A token that hands control to the receiver mid-transfer cannot make a withdrawal pay twice."""
    attacker = w.deploy_extra("Attacker", w.dep.deals.address, w.dep.token.address)
    w.send(
        w.dep.tx(w.dep.deployer, "setAttacker", attacker.address, contract=w.dep.token),
        w.dep.tx(w.client, "transfer", attacker.address, 500, contract=w.dep.token),
        w.dep.deposit(w.node, 5_000),
    )
    w.send(w.dep.tx(w.client, "depositAll", contract=attacker))
    w.send(w.dep.tx(w.client, "attack", contract=attacker))
    assert not attacker.functions.reentered().call()
    assert int(w.dep.token.functions.balanceOf(attacker.address).call()) == 500
    assert int(w.dep.token.functions.balanceOf(w.dep.deals.address).call()) == 5_000


# ---------------------------------------------------------------- the bug of each class, as a source edit

CASES: dict[str, tuple[Callable[[Any], None], tuple[tuple[str, str], ...], dict[str, Any]]] = {
    "interface_name_drift": (
        interface_matches_implementation,
        (
            (
                "    function timeoutSubmitResults(Terms calldata t) external nonReentrant {",
                "    function timeoutSubmitResult(Terms calldata t) external nonReentrant {",
            ),
        ),
        {},
    ),
    "wrong_collateral_refunded_on_timeout": (
        right_collateral_on_timeouts,
        (
            (
                "        if (d.flags & NODE_AGREED != 0 && s == DealProtocol.State.TimeoutAgree) {\n"
                "            _out(t, d, log, t.node, address(0), a.submit,",
                "        if (d.flags & NODE_AGREED != 0 && s == DealProtocol.State.TimeoutAgree) {\n"
                "            _out(t, d, log, t.node, address(0), a.judge,",
            ),
            ESCROW_UNCHECKED,
            NO_SETTLED_CHECK,
        ),
        {},
    ),
    "one_deal_drains_another": (
        deals_cannot_drain_each_other,
        (("a.payment - (paid ? a.jobCost : 0)", "a.payment"), ESCROW_UNCHECKED, NO_SETTLED_CHECK),
        {},
    ),
    "mediation_timeout_from_wrong_moment": (
        mediation_deadline_counts_from_the_check,
        (
            (
                "        _advance(d, to);\n        d.since = uint40(block.number);",
                "        _advance(d, to);\n"
                "        if (to != DealProtocol.State.ResultsChecked) d.since = uint40(block.number);",
            ),
        ),
        {},
    ),
    "payment_locked_after_judge_timeout": (
        judge_timeout_releases_the_payment,
        (
            ("        if (clientIn) {\n", "        if (clientIn && s != DealProtocol.State.TimeoutJudgeResults) {\n"),
            NO_SETTLED_CHECK,
        ),
        {"payment_collateral_bps": 15_000},
    ),
    "tx_origin": (no_tx_origin, (("msg.sender", "tx.origin"),), {"all": True}),
    "deal_id_squatting": (
        ids_bound_to_terms,
        (
            (
                "        return _hashTypedDataV4(keccak256(abi.encode(TERMS_TYPEHASH, t)));",
                "        return keccak256(abi.encode(t.nonce));",
            ),
        ),
        {},
    ),
    "slashes_to_owner": (
        slashes_never_reach_the_deployer,
        (
            ("        if (slashTo == SLASH_BURN) to = BURN;", "        if (slashTo == SLASH_BURN) to = OWNER;"),
            (
                "    uint256 internal constant BPS = 10_000;",
                "    uint256 internal constant BPS = 10_000;\n"
                "    address internal constant OWNER = 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf;",
            ),
        ),
        {},
    ),
    "double_settlement": (
        settles_once,
        (
            ("        if (d.state != expected) revert WrongState(id, d.state);\n", ""),
            ("        if (!DealProtocol.isLegal(d.state, to)) revert IllegalTransition(d.state, to);\n", ""),
            ESCROW_UNCHECKED,
            NO_SETTLED_CHECK,
        ),
        {},
    ),
    "non_party_calls": (
        only_parties_in_their_roles,
        (
            (
                "_load(t, DealProtocol.State.ResultsSubmitted, t.node, address(0));",
                "_load(t, DealProtocol.State.ResultsSubmitted, msg.sender, address(0));",
            ),
        ),
        {},
    ),
    "reentrancy": (
        no_reentrancy,
        (
            (
                "    function withdraw(uint256 amount) external nonReentrant {\n"
                "        uint256 available = balanceOf[msg.sender];\n"
                "        if (amount > available) revert InsufficientBalance(msg.sender, amount, available);\n"
                "        balanceOf[msg.sender] = available - amount;\n"
                "        token.safeTransfer(msg.sender, amount);\n",
                "    function withdraw(uint256 amount) external {\n"
                "        uint256 available = balanceOf[msg.sender];\n"
                "        if (amount > available) revert InsufficientBalance(msg.sender, amount, available);\n"
                "        token.safeTransfer(msg.sender, amount);\n"
                "        balanceOf[msg.sender] = available - amount;\n",
            ),
        ),
        {"token": "ReentrantToken"},
    ),
}


def run_case(name: str, build_world: Any, artifacts: Any, params: Any) -> None:
    scenario, _, opts = CASES[name]
    if "payment_collateral_bps" in opts:  # a payment escrow above the job cost leaves something to refund
        params = replace(params, payment_collateral_bps=opts["payment_collateral_bps"])
    w = build_world(params=params, artifacts=artifacts, token=opts.get("token", "Token"))
    w.dep.artifacts = artifacts if artifacts is not None else load()
    w.deploy_extra = lambda contract, *args: _deploy_extra(w, contract, *args)
    scenario(w)


def _deploy_extra(w: Any, contract: str, *args: Any) -> Any:
    from live.chain.binding import _creation

    art = w.dep.artifacts[contract]
    (r,) = w.dep.chain.send([{"from": w.dep.deployer, "data": _creation(art, *args)}])
    return w.dep.chain.w3.eth.contract(address=r["contractAddress"], abi=art.abi)


def _mutant_artifacts(name: str, mutate: Any) -> Any:
    _, edits, opts = CASES[name]
    if opts.get("all"):  # replace every occurrence
        from contracts.build import compile_sources, project_sources

        sources = project_sources()
        unit = "contracts/src/Deals.sol"
        text = sources[unit]
        for old, new in edits:
            if old not in text:
                raise LookupError(f"mutation target missing from {unit}: {old!r}")
            text = text.replace(old, new)
        return compile_sources({**sources, unit: text})
    return mutate(*edits)


@pytest.mark.parametrize("name", sorted(CASES))
def test_regression_holds(name: str, build_world: Any, params: Any) -> None:
    run_case(name, build_world, None, params)


@pytest.mark.parametrize("name", sorted(CASES))
def test_regression_catches_the_bug(name: str, build_world: Any, mutate: Any, params: Any) -> None:
    with pytest.raises((AssertionError, ChainError, BuildError)):
        run_case(name, build_world, _mutant_artifacts(name, mutate), params)


def test_mutants_differ_from_the_contract(mutate: Any) -> None:
    """Guard against a mutation that silently changes nothing."""
    real = load()["Deals"].bytecode
    for name in ("one_deal_drains_another", "double_settlement"):
        assert _mutant_artifacts(name, mutate)["Deals"].bytecode != real
