"""Conservation over random compositions of every mechanism, in random orders, with random parameters and collusion.

The same invariants as test_conservation, for any stack: Lilypad v2 and a random subset of the other mechanisms,
in a random order, each with random valid parameters, and agents that at random join the cartel, blow the whistle,
accuse, whitewash, or as mediators collude and report bribes. An order in which a mechanism reads a DealBatch
column before another writes it must be refused, naming the order field, the column and both mechanisms; every
accepted one runs with each hook held to the columns it declares, and after every round: total value unchanged,
nothing negative, no escrow left but the standing stakes, every deal in exactly one terminal state along the
protocol's path.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from mechanisms import registered
from mechanisms.config import ConfigError
from mechanisms.protocol import TERMINAL, VISITED_MASK

TERMINAL_VALUES = [int(s) for s in TERMINAL]
OPTIONAL = (
    "collateral",
    "consortium",
    "replication",
    "whistleblowing",
    "tax_jackpot",
    "staking",
    "reputation",
    "check_policy",
    "retention",
    "dispute_costs",
    "imperfect_verification",
    "collusion_contracts",
    "verifiers",
)
ORDER_ERROR = re.compile(
    r"^mechanism\.order=\[.*\] is invalid: (\w+) (?:reads|updates) DealBatch\.([\w.]+) in (\w+) "
    r"before (\w+) (?:sets|updates) it in (\w+); allowed: an order with \1 after \4$"
)
bps = st.integers(0, 10_000)
prob = st.sampled_from([0.0, 0.2, 1.0]) | st.floats(0.0, 1.0)
maybe_amount = st.none() | st.integers(0, 60)


def params(draw: st.DrawFn, name: str, fee: int, n_mediators: int) -> dict[str, Any]:
    """Random valid parameters of mechanism `name` (fees cover the market's largest re-run `fee`)."""
    if name == "collateral":
        return {
            "multipliers_bps": draw(st.lists(st.integers(0, 40_000), min_size=1, max_size=3)),
            "min_deposit": draw(st.integers(0, 100)),
            "submit_timeout_collateral": draw(maybe_amount),
            "judge_timeout_collateral": draw(maybe_amount),
            "payment_collateral_bps": draw(st.none() | st.integers(10_000, 30_000)),
        }
    if name == "consortium":
        size = draw(st.integers(1, n_mediators))
        return {
            "size": size,
            "threshold": draw(st.integers(size // 2 + 1, size)),
            "selection": draw(st.sampled_from(["uniform", "stake", "reputation", "cheapest"])),
            "member_fee": fee + draw(st.integers(0, 20)),
            "bids": [fee + draw(st.integers(0, 20)) for _ in range(n_mediators)],
            "fee_payer": draw(st.sampled_from(["client", "loser", "split"])),
            "max_depth": draw(st.integers(0, 2)),
            "growth": draw(st.integers(2, 3)),
            "fallback": draw(st.sampled_from(["majority", "accept", "reject"])),
            "slash_dissent": draw(st.booleans()),
            "dissent_to": draw(st.sampled_from(["burn", "protocol", "payer"])),
            "anonymous": draw(st.booleans()),
        }
    if name == "replication":
        return {
            "replicas": draw(st.integers(1, 3)),
            "commit_reveal": draw(st.booleans()),
            "wrong_deposit_to": draw(st.sampled_from(["honest_replica", "client", "burn"])),
            "settle_once": draw(st.booleans()),
        }
    if name == "whistleblowing":
        return {"reward_bps": draw(bps), "nodes": draw(st.booleans()), "mediators": draw(st.booleans())}
    if name == "tax_jackpot":
        return {
            "tax_bps": draw(st.integers(0, 5_000)),
            "tax_payer": draw(st.sampled_from(["node", "client"])),
            "mode": draw(st.sampled_from(["fraction", "fixed", "per_claim"])),
            "fraction_bps": draw(bps),
            "amount": draw(st.integers(0, 200)),
            "max_payout": draw(maybe_amount),
            "reward_mediators": draw(st.booleans()),
            "forced_error_rate": draw(prob),
            "pay_for": draw(st.sampled_from(["rejected", "forced_errors"])),
        }
    if name == "staking":
        return {
            "stakes": draw(st.lists(st.integers(0, 2_000), min_size=1, max_size=3)),
            "slash_bps": draw(bps),
            "slash_to": draw(st.sampled_from(["burn", "protocol", "jackpot", "client"])),
            "fee_share_bps": draw(st.integers(0, 5_000)),
            "prefer_stake": draw(st.booleans()),
            "full_weight_stake": draw(st.integers(1, 2_000)),
            "max_bonus_bps": draw(st.integers(0, 20_000)),
            "min_stake": draw(st.integers(0, 500)),
        }
    if name == "reputation":
        alpha, beta = draw(st.integers(0, 40_000)), draw(st.integers(1, 40_000))
        return {"alpha_bps": alpha, "beta_bps": beta, "min_score_bps": draw(st.integers(0, 3_000))}
    if name == "check_policy":
        lo, hi = sorted([draw(prob), draw(prob)])
        return {
            "mode": draw(st.sampled_from(["fixed", "reputation", "budget"])),
            "q": draw(prob),
            "q_min": lo,
            "q_max": hi,
            "budget_bps": draw(st.integers(0, 20_000)),
        }
    if name == "dispute_costs":
        return {
            "fee_per_instruction": draw(st.integers(0, 5)),
            "verification_cost": draw(st.integers(0, 20)),
            "fake_cost": draw(st.integers(0, 10)),
            "loser_pays": draw(st.booleans()),
            "client_share_bps": draw(bps),
        }
    if name == "imperfect_verification":
        return {
            "client_detection": draw(prob),
            "detection": draw(prob),
            "false_reject": draw(prob),
            "nd_false_reject": draw(prob),
            "nondeterministic_modules": draw(st.lists(st.integers(0, 3), unique=True, max_size=3)),
        }
    if name == "collusion_contracts":
        return {
            "side_payment": draw(st.integers(0, 30)),
            "collusion_deposit": draw(st.integers(0, 30)),
            "traitors": draw(st.booleans()),
        }
    if name == "verifiers":  # the property's markets have at least one staker
        return {"verifiers": 1, "participation": draw(prob), "verification_cost": draw(st.integers(0, 3))}
    assert name == "retention"
    return {
        "window": draw(st.integers(0, 50)),
        "storage_cost": draw(st.integers(0, 3)),
        "payer": draw(st.sampled_from(["client", "node"])),
    }


@st.composite
def stacks(draw: st.DrawFn, fee: int, n_mediators: int) -> dict[str, Any]:
    """Lilypad v2 and a random subset of the others in a random order (Lilypad v2 first half the time)."""
    chosen = draw(st.lists(st.sampled_from(OPTIONAL), unique=True, max_size=len(OPTIONAL)))
    order = list(chosen)
    order.insert(draw(st.just(0) | st.integers(0, len(chosen))), "lilypad_v2")
    mech: dict[str, Any] = {
        "order": order,
        "lilypad_v2": {
            "mediation_fee": fee + draw(st.integers(0, 30)),
            "results_multiplier_bps": draw(st.integers(0, 40_000)),
            "slash_to": draw(st.sampled_from(["burn", "counterparty", "mediator", "protocol"])),
            "forfeit_payment": draw(st.booleans()),
        },
    }
    if draw(st.booleans()):  # a fee below the re-run cost: mediators pay the difference
        mech["lilypad_v2"].update(fee_covers_rerun=False, mediation_fee=draw(st.integers(0, fee + 30)))
    for name in chosen:
        mech[name] = {"enabled": draw(st.booleans() | st.just(True)), **params(draw, name, fee, n_mediators)}
    if "replication" in chosen and "consortium" in chosen and mech["consortium"]["enabled"]:
        mech["replication"]["settle_once"] = False  # refused with consortium panels (tested in test_replication)
    if "tax_jackpot" in chosen and mech.get("verifiers", {}).get("enabled") is True:
        mech["tax_jackpot"]["claimants"] = draw(st.sampled_from(["client", "verifiers"]))
    return mech


POPULATION = {
    "nodes": [
        {"strategy": "honest"},
        {"strategy": "cheater", "rate": 0.7, "bribe": 40},
        {"strategy": "whitewasher", "rate": 1.0, "period": 2},
    ],
    "clients": [{"strategy": "checker", "q": 0.5}, {"strategy": "never_check"}],
    "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 20}],
}


def test_every_registered_mechanism_is_drawn() -> None:
    """A new mechanism must join the property (with a parameter strategy in `params`)."""
    assert {"lilypad_v2", *OPTIONAL} == set(registered())


@pytest.mark.parametrize(
    ("order", "reader", "writer"),
    [
        (["tax_jackpot", "lilypad_v2"], "tax_jackpot", "lilypad_v2"),
        (["lilypad_v2", "retention", "replication"], "retention", "replication"),
    ],
)
def test_the_order_error_is_the_one_the_property_expects(
    make_engine: Any, order: list[str], reader: str, writer: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        make_engine({"n_clients": 2, "n_nodes": 2}, None, POPULATION, 0, mechanism={"order": order})
    found = ORDER_ERROR.match(str(refused.value))
    assert found is not None and (found[1], found[4]) == (reader, writer), str(refused.value)


@given(data=st.data())
def test_any_composition_conserves_value_or_is_refused(
    random_market: Any, make_engine: Any, hook_data_trace: Any, data: st.DataObject
) -> None:
    market_cfg = data.draw(random_market(), label="market")
    market_cfg.update(
        n_stakers=data.draw(st.integers(1, 6), label="stakers"),
        staker_balance=2_000,
        mediator_balance=data.draw(st.sampled_from([0, 1_000]), label="mediator balance"),
    )
    fee = max(m["compute_cost"] for m in market_cfg["modules"])
    mechanism = data.draw(stacks(fee, market_cfg["n_mediators"]), label="mechanism")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    try:
        engine, population = make_engine(market_cfg, None, POPULATION, seed, mechanism=mechanism)
    except ConfigError as refused:  # only for reading a column before another mechanism writes it
        found = ORDER_ERROR.match(str(refused))
        assert found is not None, str(refused)
        reader, writer, order = found[1], found[4], mechanism["order"]
        assert found[3] == found[5] and order.index(reader) < order.index(writer)
        assert mechanism.get(reader, {}).get("enabled", True) and mechanism.get(writer, {}).get("enabled", True)
        event("order refused")
        return
    event("order accepted")
    ledger, rng = engine.ledger, np.random.default_rng(seed)
    total, standing = ledger.total(), ledger.escrow.copy()
    with hook_data_trace():
        for i in range(data.draw(st.integers(1, 3), label="rounds")):
            actions = population.actions(i)
            for flags in (
                actions.nodes.collude,
                actions.nodes.report,
                actions.nodes.whitewash,
                actions.nodes.wait,
                actions.clients.accuse,
                actions.mediators.collude,
                actions.mediators.report,
            ):
                flags[:] = rng.random(len(flags)) < 0.4
            result = engine.step(actions)
            d = result.deals
            assert ledger.total() == total
            assert (ledger.balance >= 0).all() and (ledger.escrow >= 0).all()
            assert (ledger.escrow <= standing).all()  # only standing stakes remain, possibly slashed
            assert np.isin(d.state, TERMINAL_VALUES).all()
            assert (result.visited == VISITED_MASK[d.state]).all()
