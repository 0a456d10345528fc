"""Declared hook data: each mechanism's declarations are true, and the stack refuses an order that reads a column
before it is written, naming the order field, the column and both mechanisms."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mechanisms import MarketFacts, Mechanism, MechanismStack, registered
from mechanisms.config import ConfigError
from mechanisms.deals import DealBatch
from mechanisms.hooks import HOOK_DATA, HOOKS, Columns, check_declarations, hook_columns
from mechanisms.lilypad_v2 import LilypadV2, LilypadV2Config
from mechanisms.tax_jackpot import TaxJackpot

FACTS = MarketFacts(5, 12, 100, n_clients=1, n_nodes=1, n_stakers=1, staker_balance=10_000)
MARKET = {
    "n_clients": 30,
    "n_nodes": 40,
    "n_mediators": 5,
    "n_stakers": 20,
    "staker_balance": 5_000,
    "mediator_balance": 100_000,
    "response": {"client_agree": 3, "node_agree": 3, "node_submit": 20, "client_judge": 12, "mediator": 25},
}
POPULATION = {
    "nodes": [
        {"strategy": "honest"},
        {"strategy": "cheater", "rate": 0.8, "bribe": 30},
        {"strategy": "whitewasher", "rate": 1.0, "period": 2},
    ],
    "clients": [{"strategy": "checker", "q": 0.6}, {"strategy": "never_check"}],
    "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 10}],
}
#: Stacks that between them run every mechanism's every hook and the branches of their configs.
STACKS: dict[str, dict[str, Any]] = {
    "single_mediator_everything": {
        "order": [
            "reputation",
            "lilypad_v2",
            "collateral",
            "replication",
            "whistleblowing",
            "check_policy",
            "tax_jackpot",
            "staking",
            "retention",
        ],
        "lilypad_v2": {"slash_to": "mediator", "forfeit_payment": False},
        "collateral": {
            "multipliers_bps": [15_000, 30_000],
            "min_deposit": 5,
            "submit_timeout_collateral": 7,
            "judge_timeout_collateral": 3,
            "payment_collateral_bps": 12_000,
        },
        "replication": {"replicas": 2},
        "whistleblowing": {"reward_bps": 5_000},
        "check_policy": {"mode": "reputation"},
        "tax_jackpot": {"tax_payer": "client", "mode": "fixed", "reward_mediators": True, "forced_error_rate": 0.1},
        "staking": {"prefer_stake": True, "slash_to": "client"},
        "retention": {"window": 20, "payer": "node"},
    },
    "consortium_cheapest_loser_pays": {
        "order": ["lilypad_v2", "consortium", "whistleblowing", "check_policy", "tax_jackpot", "retention"],
        "lilypad_v2": {"slash_to": "counterparty"},
        "consortium": {
            "selection": "cheapest",
            "bids": [60, 70, 80, 65, 90],
            "fee_payer": "loser",
            "dissent_to": "payer",
            "max_depth": 1,
        },
        "check_policy": {"mode": "budget", "budget_bps": 3_000},
        "tax_jackpot": {"reward_mediators": True, "forced_error_rate": 0.05},
    },
    "consortium_stake_anonymous_replicas": {
        "order": ["lilypad_v2", "consortium", "replication", "check_policy", "staking"],
        "lilypad_v2": {"slash_to": "protocol"},
        "consortium": {
            "selection": "stake",
            "anonymous": True,
            "fee_payer": "split",
            "fallback": "reject",
            "size": 4,
            "threshold": 3,
        },
        "replication": {"replicas": 3, "commit_reveal": True, "wrong_deposit_to": "client"},
        "check_policy": {"q": 0.5},
        "staking": {"slash_to": "jackpot"},
    },
    "literature_costs_contracts": {
        "order": [
            "lilypad_v2",
            "replication",
            "dispute_costs",
            "imperfect_verification",
            "whistleblowing",
            "collusion_contracts",
            "tax_jackpot",
        ],
        "replication": {"commit_reveal": True, "replicas": 3, "settle_once": True},
        "dispute_costs": {
            "fee_per_instruction": 1,
            "verification_cost": 2,
            "fake_cost": 1,
            "loser_pays": True,
            "client_share_bps": 3_000,
        },
        "imperfect_verification": {"client_detection": 0.7, "detection": 0.8, "false_reject": 0.1},
        "collusion_contracts": {"side_payment": 2, "collusion_deposit": 5, "traitors": True},
        "tax_jackpot": {"pay_for": "forced_errors", "forced_error_rate": 0.1},
    },
    "client_pays_disputes_nondeterministic": {
        "order": ["lilypad_v2", "dispute_costs", "replication", "imperfect_verification"],
        "lilypad_v2": {"slash_to": "counterparty", "fee_covers_rerun": False, "mediation_fee": 3},
        "dispute_costs": {"verification_cost": 1, "loser_pays": False, "client_share_bps": 0},
        "imperfect_verification": {"nondeterministic_modules": [0], "nd_false_reject": 0.3},
        "replication": {"replicas": 2, "commit_reveal": False},
    },
    "verifiers_jackpot": {
        "order": ["lilypad_v2", "verifiers", "tax_jackpot"],
        "verifiers": {"verifiers": 2, "participation": 0.5, "verification_cost": 1},
        "tax_jackpot": {"forced_error_rate": 0.2, "pay_for": "forced_errors", "claimants": "verifiers"},
    },
    "consortium_reputation_burn": {
        "order": ["lilypad_v2", "consortium", "replication", "tax_jackpot"],
        "consortium": {"selection": "reputation", "max_depth": 2, "size": 1, "threshold": 1},
        "replication": {"wrong_deposit_to": "burn"},
    },
}


def traced_run(make_engine: Any, hook_data_trace: Any, mechanism: dict[str, Any], rounds: int = 4) -> Any:
    """Run `rounds` rounds under the hook-data trace, with random collusion, reports and accusations."""
    engine, population = make_engine(MARKET, None, POPULATION, 3, mechanism=mechanism)
    rng = np.random.default_rng(3)
    with hook_data_trace() as trace:
        for i in range(rounds):
            actions = population.actions(i)
            for flags in (
                actions.nodes.collude,
                actions.nodes.report,
                actions.clients.accuse,
                actions.mediators.collude,
                actions.mediators.report,
            ):
                flags[:] = rng.random(len(flags)) < 0.3
            engine.step(actions)
    return engine, trace


@pytest.mark.parametrize("name", list(STACKS))
def test_declared_columns_are_true(make_engine: Any, hook_data_trace: Any, name: str) -> None:
    """Every hook touches only what it declares (the trace raises otherwise), and every declared hook ran."""
    engine, trace = traced_run(make_engine, hook_data_trace, STACKS[name])
    declared = {(m.name, hook) for m in engine.stack.active for hook in m.columns if m in engine.stack.runners(hook)}
    assert declared <= trace.ran, f"declared hooks that never ran: {declared - trace.ran}"
    assert trace.engine_filled == {c for h in HOOKS for c in h.engine_fills}


def test_the_stacks_cover_every_declaration() -> None:
    """The stacks above run every registered mechanism's every declared hook."""
    covered = {
        (name, hook) for mech in STACKS.values() for name in mech["order"] for hook in registered()[name].columns
    }
    every = {(name, hook) for name, cls in registered().items() for hook in cls.columns}
    assert covered == every


@pytest.mark.parametrize(
    ("columns", "error"),
    [
        (
            hook_columns(
                set_terms=Columns(updates=("forced_error", "client_exposure")),
                settle=Columns(reads=("client_agreed",)),
                settle_round=Columns(reads=("state", "panel", "dissenters")),
            ),
            r"tax_jackpot\.settle reads undeclared DealBatch column 'paid'",
        ),
        (
            hook_columns(
                set_terms=Columns(updates=("forced_error",), sets=("client_exposure",)),
                settle=Columns(reads=("client_agreed", "paid")),
                settle_round=Columns(reads=("state", "panel", "dissenters")),
            ),
            r"tax_jackpot\.set_terms reads the old value of DealBatch column 'client_exposure'",
        ),
        (
            hook_columns(
                set_terms=Columns(reads=("forced_error",), updates=("client_exposure",)),
                settle=Columns(reads=("client_agreed", "paid")),
                settle_round=Columns(reads=("state", "panel", "dissenters")),
            ),
            r"tax_jackpot\.set_terms writes undeclared DealBatch column 'forced_error'",
        ),
    ],
)
def test_a_false_declaration_fails_the_run(
    make_engine: Any, hook_data_trace: Any, monkeypatch: pytest.MonkeyPatch, columns: Any, error: str
) -> None:
    monkeypatch.setattr(TaxJackpot, "columns", columns)
    mechanism = {"order": ["lilypad_v2", "tax_jackpot"], "tax_jackpot": {"tax_payer": "client"}}
    with pytest.raises(AssertionError, match=error):
        traced_run(make_engine, hook_data_trace, mechanism, rounds=1)


def test_an_in_place_write_to_a_read_column_fails(
    make_engine: Any, hook_data_trace: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Columns a hook only reads reach it read-only, so writing into them fails too."""
    settle = TaxJackpot.settle

    def sneaky(self: TaxJackpot, deals: DealBatch, out: Any) -> None:
        deals.paid[:] = False
        settle(self, deals, out)

    monkeypatch.setattr(TaxJackpot, "settle", sneaky)
    with pytest.raises(ValueError, match="read-only"):
        traced_run(make_engine, hook_data_trace, {"order": ["lilypad_v2", "tax_jackpot"]}, rounds=1)


def stack(*order: str | dict[str, Any]) -> MechanismStack:
    entries = [{"name": e} if isinstance(e, str) else e for e in order]
    return MechanismStack.from_mapping(
        {
            "order": [e["name"] for e in entries],
            **{e["name"]: {k: v for k, v in e.items() if k != "name"} for e in entries},
        }
    )


def test_a_column_read_before_it_is_written_is_refused() -> None:
    """The issue's case: a jackpot listed before the base mechanism would collect no tax (it reads `paid`)."""
    with pytest.raises(
        ConfigError,
        match=r"mechanism\.order=\['staking', 'lilypad_v2'\] is invalid: staking reads "
        r"DealBatch\.paid in settle before lilypad_v2 sets it in settle; allowed: an order with "
        r"staking after lilypad_v2",
    ):
        stack("staking", "lilypad_v2").validate(FACTS)
    with pytest.raises(
        ConfigError,
        match=r"mechanism\.order=\['tax_jackpot', 'lilypad_v2'\] is invalid: tax_jackpot "
        r"\w+ DealBatch\.\w+ in \w+ before lilypad_v2 .*; allowed: an order with tax_jackpot after "
        r"lilypad_v2",
    ):
        stack("tax_jackpot", "lilypad_v2").validate(FACTS)
    stack("lilypad_v2", "tax_jackpot").validate(FACTS)
    stack("lilypad_v2", "staking").validate(FACTS)


def test_an_update_must_follow_a_set_but_updates_commute() -> None:
    """Adding to an exposure before the base sets it would be lost; additions compose in any order."""
    with pytest.raises(
        ConfigError,
        match=r"retention updates DealBatch\.client_exposure in set_terms before "
        r"lilypad_v2 sets it",
    ):
        stack("retention", "lilypad_v2").validate(FACTS)
    for order in (
        ("lilypad_v2", "tax_jackpot", "collateral", "retention"),
        ("lilypad_v2", "retention", "collateral", "tax_jackpot"),
    ):
        stack(*order).validate(FACTS)


def test_a_later_hook_may_change_what_an_earlier_one_read() -> None:
    """check_policy budgets with the fee agreed at set_terms, which consortium's judge later lowers: no order can
    change that, so it is no conflict; within set_terms, check_policy must still see consortium's fee."""
    stack("lilypad_v2", "consortium", "check_policy").validate(FACTS)
    with pytest.raises(
        ConfigError,
        match=r"check_policy reads DealBatch\.mediation_fee in set_terms before "
        r"consortium sets it in set_terms; allowed: an order with check_policy after consortium",
    ):
        stack("lilypad_v2", "check_policy", "consortium").validate(FACTS)


def test_disabled_mechanisms_do_not_count() -> None:
    stack({"name": "staking", "enabled": False}, "lilypad_v2").validate(FACTS)
    stack("lilypad_v2", "retention", {"name": "replication", "enabled": False}).validate(FACTS)


class _Reader(Mechanism):
    """An unregistered mechanism that reads one column in one hook (declared by the test)."""

    name = "reader"
    Config = LilypadV2Config

    def set_terms(self, deals: DealBatch) -> None: ...

    def choose_checks(self, deals: DealBatch) -> None: ...


@pytest.mark.parametrize(
    ("hook", "column", "error"),
    [
        (
            "set_terms",
            "state",
            r"reader reads DealBatch\.state in set_terms before the engine sets it before "
            r"slash_destinations; allowed: reader reading DealBatch\.state in slash_destinations",
        ),
        (
            "choose_checks",
            "paid",
            r"reader reads DealBatch\.paid in choose_checks before lilypad_v2 sets it in settle; "
            r"allowed: reader reading DealBatch\.paid in settle or later",
        ),
    ],
)
def test_a_hook_cannot_read_what_only_a_later_step_writes(
    monkeypatch: pytest.MonkeyPatch, hook: str, column: str, error: str
) -> None:
    """Whatever the order, a read in a hook before any step writes the column would see only its default."""
    monkeypatch.setattr(_Reader, "columns", hook_columns(**{hook: Columns(reads=(column,))}))
    for mechanisms in (
        [LilypadV2(LilypadV2Config()), _Reader(LilypadV2Config())],
        [_Reader(LilypadV2Config()), LilypadV2(LilypadV2Config())],
    ):
        with pytest.raises(ConfigError, match=error):
            MechanismStack(mechanisms, [True, True]).validate(FACTS)


@pytest.mark.parametrize(
    ("columns", "error"),
    [
        ({"judge": Columns()}, r"declares columns for 'judge', which is not a hook it implements"),
        ({"settel": Columns()}, r"declares columns for 'settel'"),
        ({"set_terms": Columns(reads=("job_cost",))}, r"set_terms reads 'job_cost', which is not hook data"),
        ({"set_terms": Columns(reads="paid")}, r"set_terms reads 'p', which is not hook data"),  # type: ignore[arg-type]
        (
            {"set_terms": Columns(sets=("consortium.order",))},
            r"set_terms sets 'consortium.order'; allowed: writes to "
            r"its own 'reader.<name>' extra keys only",
        ),
        ({"set_terms": ("paid",)}, r"columns\['set_terms'\] must be a Columns"),
    ],
)
def test_registration_rejects_bad_declarations(columns: dict[str, Any], error: str) -> None:
    implements = {h.name: _Reader.implements(h.name) for h in HOOKS}
    with pytest.raises(ValueError, match=error):
        check_declarations("reader", implements, columns)
    check_declarations("reader", implements, {"set_terms": Columns(reads=("consortium.order",), sets=("reader.mine",))})


def test_every_hook_data_column_has_a_writer() -> None:
    """A column nobody fills is dead weight in DealBatch (or a declaration is missing)."""
    written = {c for h in HOOKS for c in h.engine_fills}
    written |= {c for cls in registered().values() for cols in cls.columns.values() for c in cols.updates + cols.sets}
    assert written >= HOOK_DATA, f"never written: {sorted(HOOK_DATA - written)}"
