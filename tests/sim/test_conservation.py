"""Conservation of value and termination of every deal, over random markets, strategies and Lilypad v2 parameters.

Property (checked after every round of 1-3 rounds): the total of balances, escrows and pools is unchanged; no
balance or escrow is negative; every escrow is empty; every deal ended in exactly one terminal state and visited
exactly the states on the protocol's path to it. Also checked: a party agrees only to what it can afford and never
loses more than its declared exposure, each agent is in at most one deal per round, and the compute pool grew by
exactly the honest runs (nodes that did the work and mediators that re-ran it unbribed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from mechanisms.lilypad_v2 import SLASH_DESTINATIONS
from mechanisms.money import Pool
from mechanisms.protocol import TERMINAL, VISITED_MASK, DealState

TERMINAL_VALUES = [int(s) for s in TERMINAL]
prob = st.sampled_from([0.0, 0.1, 0.5, 1.0]) | st.floats(0.0, 1.0)
share = st.integers(1, 3)


@st.composite
def mechanism_params(draw: st.DrawFn, max_compute_cost: int) -> dict[str, Any]:
    """Random Lilypad v2 terms; the mediation fee covers the market's largest re-run, as validation requires."""
    deadline = st.sampled_from([1, 5, 20, 100])
    return {
        "results_multiplier_bps": draw(st.sampled_from([0, 10_000, 20_000]) | st.integers(0, 50_000)),
        "payment_collateral_bps": draw(st.sampled_from([10_000, 15_000]) | st.integers(10_000, 30_000)),
        "submit_timeout_collateral": draw(st.integers(0, 50)),
        "judge_timeout_collateral": draw(st.integers(0, 50)),
        "mediation_fee": max_compute_cost + draw(st.integers(0, 30)),
        "deadline_agree": draw(deadline),
        "deadline_submit": draw(deadline),
        "deadline_judge": draw(deadline),
        "deadline_mediate": draw(deadline),
        "slash_to": draw(st.sampled_from(SLASH_DESTINATIONS)),
        "forfeit_payment": draw(st.booleans()),
    }


@st.composite
def population_cfg(draw: st.DrawFn) -> dict[str, Any]:
    """Random scripted strategies per role: honest and cheating (with bribes) nodes, checking clients at random
    rates, honest and bribable mediators."""
    node = st.one_of(
        st.builds(
            lambda w, r, b: {"strategy": "cheater", "share": w, "rate": r, "bribe": b},
            share,
            st.sampled_from([1.0, 0.5]) | prob,
            st.sampled_from([0, 30, 100]) | st.integers(0, 200),
        ),
        st.builds(lambda w: {"strategy": "honest", "share": w}, share),
    )
    client = st.one_of(
        st.builds(
            lambda w, q: {"strategy": "checker", "share": w, "q": q},
            share,
            st.sampled_from([0.5, 1.0, 0.1]) | st.floats(0.0, 1.0),
        ),
        st.builds(lambda w: {"strategy": "never_check", "share": w}, share),
    )
    mediator = st.one_of(
        st.builds(lambda w, t: {"strategy": "bribable", "share": w, "threshold": t}, share, st.integers(1, 60)),
        st.builds(lambda w: {"strategy": "honest", "share": w}, share),
    )
    return {
        role: draw(st.lists(s, min_size=1, max_size=3))
        for role, s in (("nodes", node), ("clients", client), ("mediators", mediator))
    }


@given(data=st.data())
def test_value_is_conserved_and_every_deal_terminates(
    random_market: Any, make_engine: Any, data: st.DataObject
) -> None:
    market_cfg = data.draw(random_market(), label="market")
    max_compute_cost = max(m["compute_cost"] for m in market_cfg["modules"])
    params = data.draw(mechanism_params(max_compute_cost), label="mechanism")
    population_config = data.draw(population_cfg(), label="population")
    rounds = data.draw(st.integers(1, 3), label="rounds")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    engine, population = make_engine(market_cfg, params, population_config, seed)
    ledger, market = engine.ledger, engine.market
    total = int(market.facts.initial_balances().sum())  # every agent's and pool's opening balance
    compute_pool = market.facts.pool_base + Pool.Compute
    for i in range(rounds):
        before = ledger.balance.copy()
        result = engine.step(population.actions(i))
        d = result.deals
        # value
        assert int(ledger.balance.sum()) + int(ledger.escrow.sum()) == total  # balances and pools + escrow
        assert (ledger.balance >= 0).all()
        assert (ledger.escrow == 0).all()
        # termination: exactly one terminal state, reached along the protocol's path
        assert np.isin(d.state, TERMINAL_VALUES).all()
        assert (result.visited == VISITED_MASK[d.state]).all()
        # the parties
        assert len(set(d.client.tolist())) == len(d) and len(set(d.node.tolist())) == len(d)
        assert (before[d.client][d.client_agreed] >= d.client_exposure[d.client_agreed]).all()
        assert (before[d.node][d.node_agreed] >= (d.node_exposure + d.bribe)[d.node_agreed]).all()
        assert ((d.state == DealState.TimeoutAgree) == ~(d.client_agreed & d.node_agreed)).all()
        # exposure is the most a party can lose on a deal (the node's bribe comes on top)
        assert (before[d.client] - ledger.balance[d.client] <= d.client_exposure).all()
        assert (before[d.node] - ledger.balance[d.node] <= d.node_exposure + d.bribe).all()
        # who paid for compute: nodes that did the work, mediators that re-ran it unbribed
        runs = (d.submitted & ~d.cheated) * d.compute_cost + (d.mediated & ~d.bribe_accepted) * d.compute_cost
        assert ledger.balance[compute_pool] - before[compute_pool] == int(runs.sum())
