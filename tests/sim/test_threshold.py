"""The inspection game: cheating pays iff the clients' committed check probability q is below the threshold.

Market: price 10 per job (one instruction), compute cost 6, results collateral 2 x job cost (20), a caught cheater
forfeits payment and collateral, an honest mediator re-runs every checked job, clients check with probability q,
nobody is ever late. Per job:

    honest node:        10 - 6                   = 4            (paid whether checked or not)
    always-cheat node:  10 (1 - q) - 20 q                       (no compute; caught with probability q)
    cheating pays iff   10 (1 - q) - 20 q > 4  <=>  q < 6 / 30 = 0.2

Profits are measured as the change of each node's balance over a round (compute cost included), one sample per
job, over 20 000 jobs per strategy and q; the always-cheat mean must sit within its 99.9% confidence interval of
the theory, and the sign of (cheat - honest) must flip at q = 0.2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mechanisms.protocol import DealState

PRICE, COMPUTE_COST, MULTIPLIER = 10, 6, 2
N_NODES, ROUNDS = 4_000, 10  # half honest, half always-cheat: 20 000 jobs per strategy
Z_999 = 3.2905  # two-sided 99.9% normal quantile
MARKET = {
    "n_clients": N_NODES,
    "n_nodes": N_NODES,
    "n_mediators": 3,
    "modules": [{"name": "job", "instructions": 1, "compute_cost": COMPUTE_COST}],
    "machines": [{"name": "box"}],
    "node_price": (PRICE, PRICE),
    "client_max_price": (PRICE, PRICE),
    "fixed_price_share": 0.5,
    "response": {"client_agree": 0, "node_agree": 0, "node_submit": 0, "client_judge": 0, "mediator": 0},
}
MECHANISM = {
    "results_multiplier_bps": MULTIPLIER * 10_000,
    "forfeit_payment": True,
    "mediation_fee": COMPUTE_COST,
    "slash_to": "burn",
}
HONEST = PRICE - COMPUTE_COST
Q_STAR = COMPUTE_COST / (PRICE * (1 + MULTIPLIER))


def cheat_profit(q: float) -> float:
    """Expected profit per job of an always-cheating node: paid when unchecked, loses the collateral when caught."""
    return PRICE * (1 - q) - MULTIPLIER * PRICE * q


def test_theory_as_stated() -> None:
    assert HONEST == 4
    assert abs(Q_STAR - 0.2) < 1e-12
    assert [cheat_profit(q) for q in (0.1, 0.15, 0.2, 0.25, 0.3)] == pytest.approx([7, 5.5, 4, 2.5, 1])


def measure(make_engine: Any, q: float, seed: int) -> dict[str, np.ndarray]:
    """Per-job profit samples (balance change over the round of the job) per node strategy."""
    population = {
        "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 1.0}],
        "clients": [{"strategy": "checker", "q": q}],
        "mediators": [{"strategy": "honest"}],
    }
    engine, pop = make_engine(MARKET, MECHANISM, population, seed)
    labels = pop.labels("nodes")
    samples: dict[str, list[np.ndarray]] = {"honest": [], "cheater": []}
    for i in range(ROUNDS):
        before = engine.ledger.balance.copy()
        deals = engine.step(pop.actions(i)).deals
        assert len(deals) == N_NODES  # every job finds a node, every node gets a job
        assert np.isin(
            deals.state, [DealState.ResultsAccepted, DealState.MediationAccepted, DealState.MediationRejected]
        ).all()  # nobody is late
        profit = engine.ledger.balance[deals.node] - before[deals.node]
        label = labels[deals.node - engine.market.facts.first_node]
        for name, chunks in samples.items():
            chunks.append(profit[label == name])
    return {name: np.concatenate(chunks) for name, chunks in samples.items()}


def interval(x: np.ndarray) -> tuple[float, float]:
    """99.9% confidence interval of the mean."""
    half = Z_999 * x.std(ddof=1) / np.sqrt(len(x))
    return x.mean() - half, x.mean() + half


@pytest.mark.parametrize(("q", "gain_sign"), [(0.1, 1), (0.15, 1), (0.2, 0), (0.25, -1), (0.3, -1)])
def test_cheating_pays_iff_q_below_threshold(make_engine: Any, q: float, gain_sign: int) -> None:
    samples = measure(make_engine, q, seed=int(q * 1000))
    honest, cheater = samples["honest"], samples["cheater"]
    assert len(honest) == len(cheater) == N_NODES // 2 * ROUNDS
    # honest: exactly 4 on every single job, checked or not
    assert (honest == HONEST).all()
    # always-cheat: +10 or -20 per job, mean within the 99.9% interval of the theory
    assert set(np.unique(cheater).tolist()) <= {PRICE, -MULTIPLIER * PRICE}
    lo, hi = interval(cheater)
    assert lo <= cheat_profit(q) <= hi, f"q={q}: measured [{lo:.3f}, {hi:.3f}], theory {cheat_profit(q)}"
    # the gain of cheating over honesty (honest profit has no variance): its sign flips at q = 0.2
    gain_lo, gain_hi = lo - HONEST, hi - HONEST
    if gain_sign > 0:
        assert gain_lo > 0
    elif gain_sign < 0:
        assert gain_hi < 0
    else:
        assert gain_lo <= 0 <= gain_hi
