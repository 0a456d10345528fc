"""Money bounds at the extremes: a config whose amounts fit int64 is accepted and runs exactly; one unit beyond is
refused before the run, naming the field.

Each case puts one field next to the edge where a product the run forms reaches int64 (the edge is computed here
with Python ints, independently of `mechanisms.bounds`), then checks both sides: accepted configs run two rounds
with value conserved, nothing negative and every amount exact; refused ones name the field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mechanisms.base import MarketFacts
from mechanisms.bounds import MoneyBounds
from mechanisms.config import ConfigError
from mechanisms.money import BPS, INT64_MAX, MAX_AMOUNT
from mechanisms.retention import LOCKED
from twin.build import build

L = INT64_MAX
AGENTS = {
    "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 1.0}],
    "clients": [{"strategy": "checker", "q": 0.5}],
}


def market(price: int, instructions: int = 1, **more: Any) -> dict[str, Any]:
    """Four rich clients and nodes, one module, every node at `price` per instruction."""
    return {
        "n_clients": 4,
        "n_nodes": 4,
        "n_mediators": 2,
        "client_balance": MAX_AMOUNT,
        "node_balance": MAX_AMOUNT,
        "mediator_balance": MAX_AMOUNT,
        "node_price": [price, price],
        "client_max_price": [price, price],
        "modules": [{"name": "m", "instructions": instructions}],
        **more,
    }


def config(mkt: dict[str, Any], *entries: dict[str, Any]) -> dict[str, Any]:
    order = ["lilypad_v2", *(e["name"] for e in entries)]
    sections = {e["name"]: {k: v for k, v in e.items() if k != "name"} for e in entries}
    return {"seed": 1, "market": mkt, "agents": AGENTS, "mechanism": {"order": order, **sections}}


def run(cfg: dict[str, Any], rounds: int = 2) -> list[Any]:
    """Run the config; value is conserved, nothing is negative, every round's deals come back."""
    sim = build(cfg)
    ledger = sim.engine.ledger
    total = ledger.total()
    assert total == sim.market.facts.total_value  # the exact (Python int) total fits int64
    deals = []
    for i in range(rounds):
        deals.append(sim.engine.step(sim.population.actions(i)).deals)
        assert ledger.total() == total
        assert (ledger.balance >= 0).all() and (ledger.escrow >= 0).all()
    return deals


@dataclass(frozen=True)
class Edge:
    """A field, the config that sets it to `value` at a drawn scale, and the largest value that fits."""

    field: str
    scale: st.SearchStrategy[int]
    limit: Callable[[int], int]  # scale -> largest accepted value
    cfg: Callable[[int, int], dict[str, Any]]  # (scale, value) -> config
    bounds: tuple[int, int]  # the field's own declared range (values outside it are refused for that reason)
    exact: Callable[[int, int, list[Any]], None] = lambda scale, value, deals: None


def locked_value_is_exact(scale: int, window: int, deals: list[Any]) -> None:
    for d in deals:
        assert d.extra[LOCKED].tolist() == [
            int(c) * window if p else 0 for c, p in zip(d.job_cost, d.paid, strict=True)
        ]


EDGES = {
    "retention window: job cost x window": Edge(
        "mechanism.retention.window",
        st.integers(10**10, 10**12),
        lambda j: L // j,
        lambda j, w: config(market(j), {"name": "retention", "window": w, "storage_cost": 0}),
        (0, 10**9),
        locked_value_is_exact,
    ),
    "check_policy budget: budget_bps x job cost": Edge(
        "mechanism.check_policy.budget_bps",
        st.integers(10**10, 10**12),
        lambda p: L // (p * 1000),
        lambda p, b: config(market(p, 1000), {"name": "check_policy", "mode": "budget", "budget_bps": b}),
        (0, 100 * BPS),
    ),
    "staking stakes: fee share x stake": Edge(
        "mechanism.staking.stakes",
        st.integers(10**4, 10**12),
        lambda j: L // j,
        lambda j, s: config(
            market(j, n_stakers=4, staker_balance=MAX_AMOUNT), {"name": "staking", "stakes": [s], "fee_share_bps": BPS}
        ),
        (0, MAX_AMOUNT),
    ),
    "staking ranking: full_weight_stake x max_bonus_bps": Edge(
        "mechanism.staking.max_bonus_bps",
        st.integers(10**13, MAX_AMOUNT),
        lambda fws: L // fws,
        lambda fws, b: config(
            market(10, n_stakers=4, staker_balance=MAX_AMOUNT),
            {
                "name": "staking",
                "stakes": [MAX_AMOUNT],
                "prefer_stake": True,
                "full_weight_stake": fws,
                "max_bonus_bps": b,
            },
        ),
        (0, 100 * BPS),
    ),
    "staking after reputation: price x 10000 x 10000": Edge(
        "mechanism.staking.prefer_stake",
        st.just(0),
        lambda _: L // BPS // BPS,
        lambda _, p: config(
            market(p, n_stakers=4, staker_balance=MAX_AMOUNT),
            {"name": "reputation"},
            {"name": "staking", "prefer_stake": True},
        ),
        (0, 10**12),
    ),
    "market job cost: price x instructions": Edge(
        "market.node_price",
        st.integers(1_001, 10**9),
        lambda i: MAX_AMOUNT // i,
        lambda i, p: config(market(p, i)),
        (0, 10**12),
    ),
    "market value: n_clients x client_balance": Edge(
        "market.client_balance",
        st.integers(9_300, 12_000),
        lambda n: (L - 4 * MAX_AMOUNT) // n,
        lambda n, b: config(market(1, n_clients=n, client_balance=b, node_balance=MAX_AMOUNT, mediator_balance=0)),
        (0, MAX_AMOUNT),
    ),
}


@pytest.mark.parametrize("name", list(EDGES))
@settings(max_examples=25)
@given(data=st.data())
def test_at_the_edge_runs_and_one_beyond_is_refused_naming_the_field(name: str, data: st.DataObject) -> None:
    edge = EDGES[name]
    scale = data.draw(edge.scale, label="scale")
    limit = edge.limit(scale)
    lo, hi = edge.bounds
    assert lo <= limit < hi  # the edge lies inside the field's own range, so it is the bound that decides
    value = data.draw(
        st.sampled_from([limit, limit + 1, limit - 1]) | st.integers(max(lo, limit - 10**6), min(hi, limit + 10**6)),
        label="value",
    )
    if value <= limit:
        edge.exact(scale, value, run(edge.cfg(scale, value)))
    else:
        with pytest.raises(ConfigError, match=rf"^{edge.field.replace('.', chr(92) + '.')}="):
            build(edge.cfg(scale, value))


def test_results_collateral_that_used_to_wrap_is_exact() -> None:
    """Job cost 9.2e12 at a 100x multiplier: multiplying first in int64 (9.2e12 x 1e6) wrapped to garbage (a
    negative PaymentCollateral transfer); the terms are now exact and the run settles them."""
    price = L // (100 * BPS) // 10 + 1
    job_cost = price * 10
    assert job_cost * 100 * BPS > L
    cfg = config(market(price, 10))
    cfg["mechanism"]["lilypad_v2"] = {"results_multiplier_bps": 100 * BPS, "payment_collateral_bps": 100 * BPS}
    deals = run(cfg)
    assert sum(len(d) for d in deals) > 0
    for d in deals:
        assert d.results_collateral.tolist() == [job_cost * 100] * len(d)
        assert d.payment_collateral.tolist() == [job_cost * 100] * len(d)
    assert any(d.node_agreed.any() for d in deals)  # the node can afford 9.2e14: the terms were settled


def test_commitments_name_the_largest_part() -> None:
    """A client commits the exposure of all its replicas at once, a node its exposure and a bribe: when the sum
    cannot fit int64 the error names the field with the largest part."""
    bounds = MoneyBounds(MarketFacts(2, 6, 100, max_price=100), replicas=8)
    bounds.expose("client", MAX_AMOUNT, "mechanism.a.fee", MAX_AMOUNT)
    bounds.expose("client", L // 8 - MAX_AMOUNT, "mechanism.b.deposit", 7)
    bounds.check_commitments()  # exactly int64's largest value over 8 replicas
    bounds.expose("client", 1, "mechanism.c.tax", 1)
    with pytest.raises(ConfigError, match=r"^mechanism\.b\.deposit=7 is invalid: .*client's exposure"):
        bounds.check_commitments()
    node = MoneyBounds(MarketFacts(2, 6, 100, max_price=100))
    node.expose("node", L - MAX_AMOUNT + 1, "mechanism.d.collateral", 3)  # plus a bribe of up to MAX_AMOUNT
    with pytest.raises(ConfigError, match=r"^mechanism\.d\.collateral=3 is invalid: .*node's exposure"):
        node.check_commitments()
