"""K independent markets as one: settled by one engine round, each exactly as it would be alone.

Learning samples many short rounds of small markets, where an engine round costs its fixed Python time rather than
its deals. The union lays the K markets side by side (clients of market 0, of market 1, ..., then nodes, mediators
and stakers the same way, then one set of pools) so that one batched round settles them all:

* matching never crosses markets: market k's trust masks use mediator bits k x M .. k x M + M - 1 (M mediators per
  market), so a client and a node of different markets never trust a common mediator; the mediator a deal draws
  among its mutual ones is the same one it draws alone (the k-th set bit of a mask within one market's bits);
* every market keeps its own draws (its own Generator); arrival ranks are interleaved (rank x K + k), which keeps
  each market's order of jobs and offers, and the greedy solver decides a market's matches from its own offers only;
* the pools are shared: burnt, protocol and compute value are sinks no agent observes. A mechanism whose payouts
  read a pool or the whole round (a jackpot's `settle_round`) would couple the markets, so the union refuses it.

Agents' balances, escrows, public counters and deals are then those of the K markets run one by one (tested in
tests/sim/test_union.py); deal ids are numbered across the union.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from sim.draws import DrawSource, RoundDraws
from sim.market import MAX_MEDIATORS, Market, unique_rows


class UnionError(ValueError):
    """The markets cannot be settled as one (sizes differ, too many mediators in all)."""


def union_market(markets: Sequence[Market]) -> Market:
    """The K markets (same config up to their draws) as one market; market k's agents follow market k-1's, role by
    role."""
    first = markets[0]
    c, k = first.config, len(markets)
    if any(m.config != c for m in markets):
        raise UnionError("markets of a union share one config (their draws differ by seed)")
    if k * c.n_mediators > MAX_MEDIATORS:
        raise UnionError(f"{k} markets of {c.n_mediators} mediators: at most {MAX_MEDIATORS} mediators in all")

    def shifted(mask: np.ndarray, i: int) -> np.ndarray:
        return mask << (i * c.n_mediators)

    config = dataclasses.replace(c, n_clients=k * c.n_clients, n_nodes=k * c.n_nodes, n_mediators=k * c.n_mediators,
                                 n_stakers=k * c.n_stakers)  # fmt: skip
    node_capacity = np.concatenate([m.node_capacity for m in markets])
    node_allow = np.concatenate([m.node_allow for m in markets])
    node_trust = np.concatenate([shifted(m.node_trust, i) for i, m in enumerate(markets)])
    node_types, node_type = unique_rows(np.column_stack([node_capacity, node_allow, node_trust]))
    profiles = len(first.trust_masks)
    return Market(
        config=config,
        node_capacity=node_capacity,
        node_price=np.concatenate([m.node_price for m in markets]),
        node_allow=node_allow,
        node_trust=node_trust,
        client_fixed=np.concatenate([m.client_fixed for m in markets]),
        client_max_price=np.concatenate([m.client_max_price for m in markets]),
        client_trust=np.concatenate([shifted(m.client_trust, i) for i, m in enumerate(markets)]),
        module_needs=first.module_needs,
        module_instructions=first.module_instructions,
        module_compute_cost=first.module_compute_cost,
        module_cum_weight=first.module_cum_weight,
        node_type=node_type,
        node_types=node_types,
        client_trust_code=np.concatenate([i * profiles + m.client_trust_code for i, m in enumerate(markets)]),
        trust_masks=np.concatenate([shifted(m.trust_masks, i) for i, m in enumerate(markets)]),
        facts=config.facts,
    )


class UnionDrawSource:
    """The markets' own draw sources, drawn together: one `RoundDraws` for the union, each market's rows in place."""

    def __init__(self, sources: Sequence[DrawSource]) -> None:
        self.sources = list(sources)
        self.replicas = self.sources[0].replicas
        self.jobs_posted = np.zeros(len(self.sources), dtype=np.int64)  # per market, in the last round drawn

    def next_round(self) -> RoundDraws:
        parts = [s.next_round() for s in self.sources]
        k = len(parts)
        self.jobs_posted = np.array([int(p.client_active.sum()) * self.replicas for p in parts], dtype=np.int64)

        def interleaved(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) * k + i for i, p in enumerate(parts)])

        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return RoundDraws(joined("client_active"), joined("job_module"), interleaved("job_arrival"),
                          joined("node_active"), interleaved("node_arrival"), joined("u"), joined("e"))  # fmt: skip
