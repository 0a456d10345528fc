"""K markets of one config, each from its own seed, settled together by one engine (`sim.union`).

`build_markets` draws each market exactly as `twin.build` would from that seed (market, draws and agents streams),
then joins them: one engine, one ledger, K populations whose actions are laid side by side. `MarketSet` maps a
market and a row within a role to the union's account, so callers keep thinking per market.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agents.population import Population
from mechanisms import MechanismStack
from mechanisms.actions import Actions
from mechanisms.config import ConfigError
from sim.draws import DrawSource
from sim.engine import BatchEngine
from sim.market import Market
from sim.union import UnionDrawSource, UnionError, union_market
from twin.build import STREAMS, ParsedConfig

#: Mechanisms whose hooks settle each deal from its own market's accounts only, so that a union of markets settles
#: each as alone (tests/twin/test_vector.py holds every preset made of these to that). A jackpot pays out of a pool
#: the markets would share, staking binds stakers to nodes and a consortium sizes its panels by position and count
#: in the whole market: they couple markets.
UNION_SAFE = frozenset({"lilypad_v2", "check_policy", "replication", "whistleblowing", "reputation"})


@dataclass
class MarketSet:
    """K markets in one engine: market k's row r of a role is union account `account(role, k, r)`."""

    seeds: list[int]
    markets: list[Market]  # each as built alone
    populations: list[Population]
    market: Market  # the union
    source: UnionDrawSource
    engine: BatchEngine

    @property
    def k(self) -> int:
        return len(self.markets)

    def first(self, role: str) -> int:
        """The union's first account of a role ("client", "node" or "mediator")."""
        f = self.market.facts
        return {"client": 0, "node": f.first_node, "mediator": f.first_mediator}[role]

    def size(self, role: str) -> int:
        """Agents of a role in one market."""
        c = self.markets[0].config
        return {"client": c.n_clients, "node": c.n_nodes, "mediator": c.n_mediators}[role]

    def account(self, role: str, market: int | np.ndarray, row: int | np.ndarray) -> np.ndarray:
        return self.first(role) + np.asarray(market) * self.size(role) + np.asarray(row)

    def market_of(self, role: str, accounts: np.ndarray) -> np.ndarray:
        """The market of each account of a role."""
        return (np.asarray(accounts) - self.first(role)) // self.size(role)

    def actions(self, round_index: int) -> Actions:
        """Every market's scripted actions for the round, side by side (computed once when the markets share one
        population: scripted strategies are frozen, a function of the round alone)."""
        first = self.populations[0]
        if all(p is first for p in self.populations):
            return Actions.concat([first.actions(round_index)] * self.k)
        return Actions.concat([p.actions(round_index) for p in self.populations])


def check_union_stack(stack: MechanismStack, field: str) -> None:
    """Refuse a stack that couples markets settled together."""
    coupled = sorted(m.name for m in stack.active if m.name not in UNION_SAFE)
    if coupled:
        raise ConfigError(f"{field}: markets settled together need mechanisms from {sorted(UNION_SAFE)}; "
                          f"{coupled} would couple them (allowed: 1 market with these mechanisms)")  # fmt: skip


def build_markets(parsed: Sequence[ParsedConfig], stack: MechanismStack, field: str = "env.markets") -> MarketSet:
    """One market per parsed config (same market config, own seed and population) in one engine with `stack`."""
    check_union_stack(stack, field)
    markets, sources = [], []
    for p in parsed:
        streams = dict(zip(STREAMS, np.random.SeedSequence(p.seed).spawn(len(STREAMS)), strict=True))
        market = Market.build(p.market, np.random.default_rng(streams["market"]), typed=False)  # typed joined
        markets.append(market)
        sources.append(DrawSource(p.market, market.module_cum_weight, stack.draws_per_deal,
                                  np.random.default_rng(streams["draws"]), stack.replicas))  # fmt: skip
    try:
        union = union_market(markets)
    except UnionError as exc:
        raise ConfigError(f"{field}={len(markets)} is invalid: {exc}") from exc
    source = UnionDrawSource(sources)
    engine = BatchEngine(union, stack, source)
    return MarketSet([p.seed for p in parsed], markets, [p.population for p in parsed], union, source, engine)
