"""Conservation over random compositions of every mechanism, with random parameters and random collusion.

The same invariants as test_conservation, for any stack: Lilypad v2 first, then a random subset of the other
mechanisms in random order (retention last, as its validation requires), each with random valid parameters, and
agents that at random join the cartel, blow the whistle, accuse, whitewash, or as mediators collude and report
bribes. After every round: total value unchanged, nothing negative, no escrow left but the standing stakes, every
deal in exactly one terminal state along the protocol's path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from mechanisms.protocol import TERMINAL, VISITED_MASK

TERMINAL_VALUES = [int(s) for s in TERMINAL]
OPTIONAL = ("collateral", "consortium", "replication", "whistleblowing", "tax_jackpot", "staking", "reputation",
            "check_policy")
bps = st.integers(0, 10_000)
prob = st.sampled_from([0.0, 0.2, 1.0]) | st.floats(0.0, 1.0)
maybe_amount = st.none() | st.integers(0, 60)


def params(draw: st.DrawFn, name: str, fee: int, n_mediators: int) -> dict[str, Any]:
    """Random valid parameters of mechanism `name` (fees cover the market's largest re-run `fee`)."""
    if name == "collateral":
        return {"multipliers_bps": draw(st.lists(st.integers(0, 40_000), min_size=1, max_size=3)),
                "min_deposit": draw(st.integers(0, 100)), "submit_timeout_collateral": draw(maybe_amount),
                "judge_timeout_collateral": draw(maybe_amount),
                "payment_collateral_bps": draw(st.none() | st.integers(10_000, 30_000))}
    if name == "consortium":
        size = draw(st.integers(1, n_mediators))
        return {"size": size, "threshold": draw(st.integers(size // 2 + 1, size)),
                "selection": draw(st.sampled_from(["uniform", "stake", "reputation", "cheapest"])),
                "member_fee": fee + draw(st.integers(0, 20)),
                "bids": [fee + draw(st.integers(0, 20)) for _ in range(n_mediators)],
                "fee_payer": draw(st.sampled_from(["client", "loser", "split"])),
                "max_depth": draw(st.integers(0, 2)), "growth": draw(st.integers(2, 3)),
                "fallback": draw(st.sampled_from(["majority", "accept", "reject"])),
                "slash_dissent": draw(st.booleans()),
                "dissent_to": draw(st.sampled_from(["burn", "protocol", "payer"])),
                "anonymous": draw(st.booleans())}
    if name == "replication":
        return {"replicas": draw(st.integers(1, 3)), "commit_reveal": draw(st.booleans()),
                "wrong_deposit_to": draw(st.sampled_from(["honest_replica", "client", "burn"]))}
    if name == "whistleblowing":
        return {"reward_bps": draw(bps), "nodes": draw(st.booleans()), "mediators": draw(st.booleans())}
    if name == "tax_jackpot":
        return {"tax_bps": draw(st.integers(0, 5_000)), "tax_payer": draw(st.sampled_from(["node", "client"])),
                "mode": draw(st.sampled_from(["fraction", "fixed"])), "fraction_bps": draw(bps),
                "amount": draw(st.integers(0, 200)), "max_payout": draw(maybe_amount),
                "reward_mediators": draw(st.booleans()), "forced_error_rate": draw(prob)}
    if name == "staking":
        return {"stakes": draw(st.lists(st.integers(0, 2_000), min_size=1, max_size=3)),
                "slash_bps": draw(bps), "slash_to": draw(st.sampled_from(["burn", "protocol", "jackpot", "client"])),
                "fee_share_bps": draw(st.integers(0, 5_000)), "prefer_stake": draw(st.booleans()),
                "full_weight_stake": draw(st.integers(1, 2_000)), "max_bonus_bps": draw(st.integers(0, 20_000)),
                "min_stake": draw(st.integers(0, 500))}
    if name == "reputation":
        alpha, beta = draw(st.integers(0, 40_000)), draw(st.integers(1, 40_000))
        return {"alpha_bps": alpha, "beta_bps": beta, "min_score_bps": draw(st.integers(0, 3_000))}
    if name == "check_policy":
        lo, hi = sorted([draw(prob), draw(prob)])
        return {"mode": draw(st.sampled_from(["fixed", "reputation", "budget"])), "q": draw(prob), "q_min": lo,
                "q_max": hi, "budget_bps": draw(st.integers(0, 20_000))}
    assert name == "retention"
    return {"window": draw(st.integers(0, 50)), "storage_cost": draw(st.integers(0, 3)),
            "payer": draw(st.sampled_from(["client", "node"]))}


@st.composite
def stacks(draw: st.DrawFn, fee: int, n_mediators: int) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(OPTIONAL), unique=True, max_size=len(OPTIONAL)))
    if draw(st.booleans()):
        chosen.append("retention")
    order = ["lilypad_v2", *chosen]
    mech: dict[str, Any] = {"order": order, "lilypad_v2": {
        "mediation_fee": fee + draw(st.integers(0, 30)), "results_multiplier_bps": draw(st.integers(0, 40_000)),
        "slash_to": draw(st.sampled_from(["burn", "counterparty", "mediator", "protocol"])),
        "forfeit_payment": draw(st.booleans())}}
    for name in chosen:
        mech[name] = {"enabled": draw(st.booleans() | st.just(True)), **params(draw, name, fee, n_mediators)}
    return mech


POPULATION = {
    "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 0.7, "bribe": 40},
              {"strategy": "whitewasher", "rate": 1.0, "period": 2}],
    "clients": [{"strategy": "checker", "q": 0.5}, {"strategy": "never_check"}],
    "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 20}],
}


@given(data=st.data())
def test_any_composition_conserves_value_and_terminates(random_market: Any, make_engine: Any,
                                                        data: st.DataObject) -> None:
    market_cfg = data.draw(random_market(), label="market")
    market_cfg.update(n_stakers=data.draw(st.integers(1, 6), label="stakers"), staker_balance=2_000,
                      mediator_balance=data.draw(st.sampled_from([0, 1_000]), label="mediator balance"))
    fee = max(m["compute_cost"] for m in market_cfg["modules"])
    mechanism = data.draw(stacks(fee, market_cfg["n_mediators"]), label="mechanism")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    engine, population = make_engine(market_cfg, None, POPULATION, seed, mechanism=mechanism)
    ledger, rng = engine.ledger, np.random.default_rng(seed)
    total, standing = ledger.total(), ledger.escrow.copy()
    for i in range(data.draw(st.integers(1, 3), label="rounds")):
        actions = population.actions(i)
        for flags in (actions.nodes.collude, actions.nodes.report, actions.nodes.whitewash, actions.clients.accuse,
                      actions.mediators.collude, actions.mediators.report):
            flags[:] = rng.random(len(flags)) < 0.4
        result = engine.step(actions)
        d = result.deals
        assert ledger.total() == total
        assert (ledger.balance >= 0).all() and (ledger.escrow >= 0).all()
        assert (ledger.escrow <= standing).all()  # only standing stakes remain, possibly slashed
        assert np.isin(d.state, TERMINAL_VALUES).all()
        assert (result.visited == VISITED_MASK[d.state]).all()
