"""Chain and twin settle every deal identically: the engine's deals replayed on chain, compared to the base unit
(every on-chain transfer per deal, final states, every account's wealth, the contract's solvency)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from live.chain.differential import Report, differential, run_engine
from live.chain.node import AnvilChain, EmbeddedChain
from live.chain.params import chain_params
from live.chain.scenarios import diff_cfg
from mechanisms.actions import Actions
from mechanisms.base import MechanismStack
from mechanisms.config import ConfigError
from mechanisms.protocol import TERMINAL

ALL_TERMINALS = {s.name for s in TERMINAL}


def assert_equal(rep: Report) -> None:
    assert rep.deals > 0 and rep.transfers > 0
    assert rep.mismatched_deals == [] and rep.mismatched_states == [] and rep.mismatched_accounts == []
    assert rep.insolvent_by == 0
    assert rep.ok


def test_embedded_chain_settles_like_the_twin() -> None:
    with EmbeddedChain(14 + 14 + 4 + 2) as chain:
        rep = differential(diff_cfg(n_clients=14, n_nodes=14), 2, chain)
    assert_equal(rep)
    assert len(rep.states) >= 5  # several terminal paths even in this small run


@pytest.mark.parametrize(
    ("slash_to", "forfeit"), [("burn", True), ("counterparty", False), ("mediator", True), ("protocol", False)]
)
def test_anvil_settles_like_the_twin_for_every_slash_destination(slash_to: str, forfeit: bool) -> None:
    mech = {
        "order": ["lilypad_v2"],
        "lilypad_v2": {
            "slash_to": slash_to,
            "forfeit_payment": forfeit,
            "submit_timeout_collateral": 7,
            "judge_timeout_collateral": 3,
        },
    }
    with AnvilChain(60 + 4 + 2) as chain:
        rep = differential(diff_cfg(mech), 4, chain)
    assert_equal(rep)
    assert set(rep.states) == ALL_TERMINALS


def test_anvil_settles_collateral_terms_like_the_twin() -> None:
    """Per-offer multipliers, a minimum deposit and collateral overrides, with the searched mechanism's protocol-set
    checks (an off-chain mechanism) in the stack."""
    mech = {
        "order": ["lilypad_v2", "collateral", "check_policy"],
        "collateral": {
            "multipliers_bps": [15000, 30000, 20000],
            "min_deposit": 45,
            "submit_timeout_collateral": 9,
            "judge_timeout_collateral": 2,
            "payment_collateral_bps": 12000,
        },
        "check_policy": {"mode": "fixed", "q": 0.6},
    }
    with AnvilChain(60 + 4 + 2) as chain:
        rep = differential(diff_cfg(mech, seed=11), 4, chain)
    assert_equal(rep)
    assert set(rep.states) == ALL_TERMINALS


@pytest.mark.parametrize("stake_slash_to", ["burn", "client", "protocol"])
def test_anvil_settles_staking_like_the_twin(stake_slash_to: str) -> None:
    """Stakes behind nodes: pro-rata fees when paid, a slash of every stake when the node is caught."""
    mech = {
        "order": ["lilypad_v2", "staking"],
        "lilypad_v2": {"slash_to": "counterparty", "forfeit_payment": False},
        "staking": {
            "stakes": [1000, 2500, 0, 700],
            "slash_bps": 3333,
            "slash_to": stake_slash_to,
            "fee_share_bps": 1500,
        },
    }
    with AnvilChain(30 + 30 + 4 + 70 + 2) as chain:
        rep = differential(diff_cfg(mech, n_stakers=70), 4, chain)
    assert_equal(rep)
    assert set(rep.states) == ALL_TERMINALS
    assert rep.reasons["Stake"] > 0 and rep.reasons["Reward"] > 0


@pytest.mark.parametrize(
    ("dissent_to", "fallback", "slash_to"),
    [("burn", "majority", "mediator"), ("protocol", "reject", "burn"), ("payer", "accept", "counterparty")],
)
def test_anvil_settles_consortium_panels_like_the_twin(dissent_to: str, fallback: str, slash_to: str) -> None:
    """Unanimous 2-member panels drawn from six mediators, half of them bribable: split panels escalate to four
    members, dissenters forfeit their fee (keeping the re-run cost when they re-ran), unused seats are refunded."""
    mech = {
        "order": ["lilypad_v2", "consortium"],
        "lilypad_v2": {"slash_to": slash_to},
        "consortium": {
            "size": 2,
            "threshold": 2,
            "member_fee": 70,
            "max_depth": 1,
            "growth": 2,
            "fallback": fallback,
            "dissent_to": dissent_to,
        },
    }
    cfg = diff_cfg(mech, n_mediators=6)
    cfg["market"]["trust_profiles"] = [[], [0, 1, 2, 3], [2, 3, 4, 5]]  # mutual sets of 2 to 6: room to escalate
    _, results = run_engine(cfg, 4)
    sizes = np.concatenate([r.deals.extra["consortium.size"][r.deals.mediated] for r in results])
    assert set(sizes.tolist()) >= {2, 4}  # first panels decided, and escalated ones
    with AnvilChain(60 + 6 + 2) as chain:
        rep = differential(cfg, 4, chain)
    assert_equal(rep)
    assert set(rep.states) == ALL_TERMINALS
    forfeit = "MediationFee/Refunded" if dissent_to == "payer" else "MediationFee/Slashed"
    assert rep.moves[forfeit] > 0 and rep.moves["MediationFee/PaidOut"] > 0


def test_consortium_options_the_chain_cannot_express_are_refused() -> None:
    base = {"order": ["lilypad_v2", "consortium"]}
    for field, value in (("selection", "stake"), ("fee_payer", "loser"), ("anonymous", True)):
        stack = MechanismStack.from_mapping({**base, "consortium": {field: value}}, "mechanism")
        with pytest.raises(ConfigError, match=rf"mechanism\.consortium\.{field}=.* is invalid on chain"):
            chain_params(stack, [6, 60])
    with pytest.raises(ConfigError, match=r"market\.modules is invalid on chain"):
        chain_params(MechanismStack.from_mapping(base, "mechanism"))


@pytest.mark.parametrize(
    ("tax_payer", "mode", "cap", "forfeit"),
    [("node", "fraction", None, False), ("client", "fixed", None, True), ("client", "fraction", 9, False)],
)
def test_anvil_settles_taxes_and_jackpots_like_the_twin(tax_payer: str, mode: str, cap: int | None, forfeit: bool):
    """Taxes on paid deals (by the node, or escrowed by the client and refunded when the node is not paid), and
    each round's payout to the checking clients of rejected results from the pool as the round began."""
    mech = {
        "order": ["lilypad_v2", "tax_jackpot"],
        "lilypad_v2": {"forfeit_payment": forfeit},
        "tax_jackpot": {
            "tax_bps": 777,
            "tax_payer": tax_payer,
            "mode": mode,
            "fraction_bps": 3333,
            "amount": 25,
            "max_payout": cap,
        },
    }
    with AnvilChain(60 + 4 + 2) as chain:
        rep = differential(diff_cfg(mech, seed=7), 5, chain)
    assert_equal(rep)
    assert set(rep.states) == ALL_TERMINALS
    taxes = ("Tax/Spent",) if tax_payer == "node" else ("Tax/PaidIn", "Tax/PaidOut", "Tax/Refunded")
    assert all(rep.moves.get(k, 0) > 0 for k in taxes)
    assert rep.moves["Jackpot/Spent"] > 0


def test_jackpot_options_the_chain_cannot_express_are_refused() -> None:
    base = {"order": ["lilypad_v2", "tax_jackpot"]}
    for field, value in (("forced_error_rate", 0.05), ("reward_mediators", True)):
        stack = MechanismStack.from_mapping({**base, "tax_jackpot": {field: value}}, "mechanism")
        with pytest.raises(ConfigError, match=rf"mechanism\.tax_jackpot\.{field}=.* is invalid on chain"):
            chain_params(stack)


@pytest.mark.parametrize(
    ("replicas", "commit_reveal", "wrong_deposit_to", "slash_to"),
    [
        (3, True, "honest_replica", "protocol"),
        (2, False, "honest_replica", "mediator"),
        (2, False, "client", "burn"),
        (3, True, "burn", "counterparty"),
    ],
)
def test_anvil_settles_replication_like_the_twin(
    replicas: int, commit_reveal: bool, wrong_deposit_to: str, slash_to: str
) -> None:
    """r replicas per job posted through the replication module (committed, then revealed, with commit-reveal;
    replicas that never commit make the others wait out the commit window), disagreeing replicas checked, and a
    rejected replica's results collateral sent where the prisoner's contract says: the job's first replica that
    revealed the result the rejecting mediator declared correct, else the base destination."""
    mech = {
        "order": ["lilypad_v2", "replication"],
        "lilypad_v2": {"slash_to": slash_to, "submit_timeout_collateral": 7, "judge_timeout_collateral": 3},
        "replication": {"replicas": replicas, "commit_reveal": commit_reveal, "wrong_deposit_to": wrong_deposit_to},
    }
    with AnvilChain(60 + 4 + 2) as chain:
        rep = differential(diff_cfg(mech, seed=13), 4, chain)
    assert_equal(rep)
    assert set(rep.states) == ALL_TERMINALS
    assert rep.moves["ResultsCollateral/Slashed"] > 0 and rep.moves["SubmitTimeoutCollateral/Slashed"] > 0
    assert (rep.honest_replica_paid > 0) == (wrong_deposit_to == "honest_replica")


def every_module_with_replication(wrong_deposit_to: str) -> dict[str, Any]:
    """Collateral, staking, taxes and jackpots and 2 replicas with commit-reveal, plus consortium panels where the
    wrong deposit's destination allows them (a panel declares no correct result for the honest replica)."""
    mech: dict[str, Any] = {
        "order": ["lilypad_v2", "collateral", "staking", "tax_jackpot", "replication"],
        "lilypad_v2": {"slash_to": "counterparty"},
        "collateral": {"multipliers_bps": [15000, 30000], "min_deposit": 40, "submit_timeout_collateral": 7},
        "staking": {"stakes": [1000, 300], "slash_bps": 2500, "slash_to": "burn", "fee_share_bps": 800},
        "tax_jackpot": {"tax_bps": 250, "fraction_bps": 2000},
        "replication": {"replicas": 2, "commit_reveal": True, "wrong_deposit_to": wrong_deposit_to},
    }
    if wrong_deposit_to != "honest_replica":
        mech["order"].insert(2, "consortium")
        mech["consortium"] = {"size": 3, "threshold": 2, "member_fee": 70, "max_depth": 1, "growth": 2}
    return mech


def module_market(mech: dict[str, Any], n: int) -> dict[str, Any]:
    cfg = diff_cfg(mech, seed=5, n_clients=n, n_nodes=n, n_mediators=6, n_stakers=n)
    cfg["market"]["trust_profiles"] = [[], [0, 1, 2, 3], [2, 3, 4, 5]]  # room for panels to escalate
    return cfg


@pytest.mark.parametrize("wrong_deposit_to", ["honest_replica", "client"])
def test_anvil_settles_replication_with_the_other_modules_like_the_twin(wrong_deposit_to: str) -> None:
    """Replication composed with every other on-chain mechanism: stakes slashed and paid, taxes, jackpots and (with
    the client as the wrong deposit's destination) consortium panels, on replicas posted through the module."""
    with AnvilChain(60 + 60 + 6 + 60 + 2) as chain:
        rep = differential(module_market(every_module_with_replication(wrong_deposit_to), 60), 4, chain)
    assert_equal(rep)
    assert set(rep.states) == ALL_TERMINALS
    assert rep.reasons["Stake"] > 0 and rep.reasons["Reward"] > 0 and rep.moves["Tax/Spent"] > 0
    assert (rep.honest_replica_paid > 0) == (wrong_deposit_to == "honest_replica")


def test_embedded_chain_settles_replication_like_the_twin() -> None:
    mech = {"order": ["lilypad_v2", "replication"], "replication": {"replicas": 2, "commit_reveal": True}}
    with EmbeddedChain(14 + 14 + 4 + 2) as chain:
        rep = differential(diff_cfg(mech, n_clients=14, n_nodes=14), 2, chain)
    assert_equal(rep)


def test_replication_options_the_chain_cannot_express_are_refused() -> None:
    stack = MechanismStack.from_mapping({"order": ["lilypad_v2", "replication"], "replication": {"settle_once": True}})
    with pytest.raises(ConfigError, match=r"mechanism\.replication\.settle_once=True is invalid on chain"):
        chain_params(stack)
    both = {"order": ["lilypad_v2", "consortium", "replication"]}
    with pytest.raises(ConfigError, match=r"mechanism\.replication\.wrong_deposit_to='honest_replica' is invalid"):
        chain_params(MechanismStack.from_mapping(both, "mechanism"), [6, 60])
    ok = chain_params(MechanismStack.from_mapping({**both, "replication": {"wrong_deposit_to": "burn"}}), [6, 60])
    assert ok.replication and ok.consortium and ok.wrong_deposit_to == "burn"


def every_other_mediator_reports(a: Actions) -> None:
    """Mediators 0 and 2 prove the bribes they take (the scripted population has no reporting strategy); a bribed
    mediator that does not report still sells its verdict."""
    a.mediators.report[::2] = True


def whistleblowing(slash_to: str, forfeit: bool = True, reward_bps: int = 10_000, **extra: Any) -> dict[str, Any]:
    mech: dict[str, Any] = {
        "order": ["lilypad_v2", "whistleblowing"],
        "lilypad_v2": {"slash_to": slash_to, "forfeit_payment": forfeit, "submit_timeout_collateral": 7},
        "whistleblowing": {"nodes": False, "reward_bps": reward_bps},
    }
    for name, config in extra.items():
        mech["order"].insert(1, name)
        mech[name] = config
    return mech


@pytest.mark.parametrize(
    ("slash_to", "forfeit", "reward_bps"),
    [("burn", True, 10_000), ("protocol", False, 2_500), ("counterparty", True, 7_001), ("mediator", False, 5_000)],
)
def test_anvil_settles_proven_bribes_like_the_twin(slash_to: str, forfeit: bool, reward_bps: int) -> None:
    """A bribed mediator that reports presents the node's signed bribe offer: the node's result is rejected, its
    results collateral goes to the mediator, who passes on all but `reward_bps` of it to where it would have gone;
    bribed mediators that do not report, and every other path, as before."""
    mech = whistleblowing(slash_to, forfeit, reward_bps)
    with AnvilChain(60 + 4 + 2) as chain:
        rep = differential(diff_cfg(mech, seed=7), 4, chain, every_other_mediator_reports)
    assert_equal(rep)
    assert (rep.moves.get("Reward/Spent", 0) > 0) == (reward_bps < 10_000)
    assert {"MediationAccepted", "MediationRejected", "TimeoutMediateResults", "TimeoutJudgeResults"} <= set(rep.states)
    assert rep.bribes_proven > 0 and rep.moves["ResultsCollateral/Slashed"] > rep.bribes_proven


def test_anvil_settles_proven_bribes_with_the_other_modules_like_the_twin() -> None:
    """The bribe's proof composed with collateral terms, staking (the proven briber's stakers slashed) and taxes."""
    mech = whistleblowing(
        "mediator",
        reward_bps=3_000,
        collateral={"multipliers_bps": [15000, 30000], "min_deposit": 40},
        staking={"stakes": [1000, 300], "slash_bps": 2500, "slash_to": "client", "fee_share_bps": 800},
        tax_jackpot={"tax_bps": 250, "fraction_bps": 2000},
    )
    with AnvilChain(60 + 4 + 60 + 2) as chain:
        rep = differential(diff_cfg(mech, seed=7, n_stakers=60), 4, chain, every_other_mediator_reports)
    assert_equal(rep)
    assert rep.bribes_proven > 0 and rep.reasons["Stake"] > 0 and rep.moves["Jackpot/Spent"] > 0


def test_embedded_chain_settles_proven_bribes_like_the_twin() -> None:
    with EmbeddedChain(14 + 14 + 4 + 2) as chain:
        cfg = diff_cfg(whistleblowing("burn"), seed=4, n_clients=14, n_nodes=14)
        rep = differential(cfg, 2, chain, every_other_mediator_reports)
    assert_equal(rep)
    assert rep.bribes_proven > 0


@pytest.mark.parametrize(("field", "value"), [("nodes", True), ("mediators", False)])
def test_whistleblowing_options_the_chain_cannot_express_are_refused(field: str, value: object) -> None:
    mech = whistleblowing("burn")
    mech["whistleblowing"][field] = value
    with pytest.raises(ConfigError, match=rf"mechanism\.whistleblowing\.{field}={value!r} is invalid on chain"):
        chain_params(MechanismStack.from_mapping(mech, "mechanism"))


def test_whistleblowing_with_the_consortium_is_refused() -> None:
    mech = whistleblowing("burn", consortium={})
    with pytest.raises(
        ConfigError, match=r"mechanism\.whistleblowing\.enabled=True is invalid on chain with consortium"
    ):
        chain_params(MechanismStack.from_mapping(mech, "mechanism"), [6, 60])


@pytest.mark.parametrize(("wrong_deposit_to", "commit_reveal"), [("honest_replica", True), ("client", False)])
def test_anvil_settles_proven_bribes_with_replication_like_the_twin(wrong_deposit_to: str, commit_reveal: bool) -> None:
    """The replication module carries the bribe proof: a proven briber's deposit rewards the mediator, who passes on
    the rest to where the prisoner's contract (or the client) would have sent it."""
    mech = whistleblowing("burn", reward_bps=4_000)
    mech["order"].insert(1, "replication")
    mech["replication"] = {"replicas": 2, "commit_reveal": commit_reveal, "wrong_deposit_to": wrong_deposit_to}
    with AnvilChain(60 + 4 + 2) as chain:
        rep = differential(diff_cfg(mech, seed=13), 4, chain, every_other_mediator_reports)
    assert_equal(rep)
    assert rep.bribes_proven > 0 and rep.moves["Reward/Spent"] > 0
    assert (rep.honest_replica_paid > 0) == (wrong_deposit_to == "honest_replica")


@pytest.mark.slow
def test_ten_thousand_engine_deals_on_anvil(record_property: pytest.RecordProperty) -> None:
    """Every on-chain mechanism at once: collateral, consortium panels, staking, taxes and jackpots."""
    mech = {
        "order": ["lilypad_v2", "collateral", "consortium", "staking", "tax_jackpot"],
        "lilypad_v2": {"slash_to": "counterparty"},
        "collateral": {"multipliers_bps": [15000, 30000], "min_deposit": 40, "submit_timeout_collateral": 7},
        "consortium": {"size": 3, "threshold": 2, "member_fee": 70, "max_depth": 1, "growth": 2},
        "staking": {"stakes": [1000, 300], "slash_bps": 2500, "slash_to": "burn", "fee_share_bps": 800},
        "tax_jackpot": {"tax_bps": 250, "fraction_bps": 2000},
    }
    n, stakers = 500, 500  # every node backed (the population puts the cheaters in the second half)
    cfg = diff_cfg(mech, seed=5, n_clients=n, n_nodes=n, n_mediators=6, n_stakers=stakers)
    cfg["market"]["trust_profiles"] = [[], [0, 1, 2, 3], [2, 3, 4, 5]]  # room for panels to escalate
    with AnvilChain(2 * n + 6 + stakers + 2) as chain:
        rep = differential(cfg, 28, chain)
    record_property("deals", rep.deals)
    record_property("transfers", rep.transfers)
    assert_equal(rep)
    assert rep.deals >= 10_000
    assert set(rep.states) == ALL_TERMINALS
    assert rep.reasons["Stake"] > 0 and rep.reasons["Reward"] > 0
    assert rep.moves["MediationFee/Slashed"] > 0 and rep.moves["Tax/Spent"] > 0 and rep.moves["Jackpot/Spent"] > 0


@pytest.mark.slow
def test_two_thousand_replicated_deals_on_anvil(record_property: pytest.RecordProperty) -> None:
    """Replication with commit-reveal and the prisoner's contract, with collateral, staking, taxes and jackpots, over
    1,000 jobs of two replicas (the 10,000-deal run above covers the rest at scale)."""
    n = 200
    with AnvilChain(3 * n + 6 + 2) as chain:
        rep = differential(module_market(every_module_with_replication("honest_replica"), n), 10, chain)
    record_property("deals", rep.deals)
    assert_equal(rep)
    assert rep.deals >= 2_000
    assert set(rep.states) == ALL_TERMINALS
    assert rep.honest_replica_paid > 50 and rep.moves["Jackpot/Spent"] > 0


@pytest.mark.slow
def test_two_thousand_deals_with_proven_bribes_on_anvil(record_property: pytest.RecordProperty) -> None:
    """The bribed mediator's proof at scale, with collateral, staking, taxes and jackpots (the consortium and
    replication cannot be combined with it on chain; the 10,000-deal run above covers them)."""
    mech = whistleblowing(
        "counterparty",
        reward_bps=6_000,
        collateral={"multipliers_bps": [15000, 30000], "min_deposit": 40, "submit_timeout_collateral": 7},
        staking={"stakes": [1000, 300], "slash_bps": 2500, "slash_to": "burn", "fee_share_bps": 800},
        tax_jackpot={"tax_bps": 250, "fraction_bps": 2000},
    )
    n = 200
    with AnvilChain(3 * n + 4 + 2) as chain:
        rep = differential(
            diff_cfg(mech, seed=5, n_clients=n, n_nodes=n, n_stakers=n), 16, chain, every_other_mediator_reports
        )
    record_property("deals", rep.deals)
    assert_equal(rep)
    assert rep.deals >= 2_000
    assert set(rep.states) == ALL_TERMINALS
    assert rep.bribes_proven > 20 and rep.moves["Reward/Spent"] > 0 and rep.moves["Jackpot/Spent"] > 0
