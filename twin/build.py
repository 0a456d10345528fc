"""Config mapping -> validated, seeded simulation components. Shared by every entry point (simulate, train, sweeps)
and the RL env. It joins `sim` (market, draws, engine) and `agents` (the population), which know nothing of each
other (docs/architecture.md, "Layers").

Everything a config can get wrong is checked here, before any entry point opens an output file: the market and the
mechanism stack are parsed into frozen dataclasses, the stack is cross-checked against the market, and the
population is parsed against the registered strategies. Errors are `ConfigError`s naming the field.

Randomness (docs/architecture.md, "Seeds"): one `SeedSequence` from the config seed, spawned once into independent
streams per component, in a fixed order (market, draws, agents), so adding a component later appends a stream
without changing the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.population import Population
from mechanisms import MechanismStack
from mechanisms.config import ConfigError, from_mapping, require, require_int
from sim.draws import DrawSource
from sim.engine import BatchEngine
from sim.market import Market, MarketConfig

#: Top-level config sections the builder reads; entry points add their own keys (rounds, progress, ...).
SECTIONS = ("seed", "market", "mechanism", "agents")
#: The stack used when a config names none.
DEFAULT_MECHANISM = {"order": ["lilypad_v2"]}
#: Order of the streams spawned from the run seed; append only, never reorder (it would change every run).
STREAMS = ("market", "draws", "agents")
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class ParsedConfig:
    """The validated config, before anything random is drawn. It holds live mechanism and population objects
    (which may keep state across rounds), so build one engine per ParsedConfig; parse again for another run."""

    seed: int
    market: MarketConfig
    stack: MechanismStack
    population: Population


@dataclass(frozen=True)
class Components:
    """A ready-to-run simulation: the engine owns the ledger; `agent_rng` is reserved for stochastic policies."""

    config: ParsedConfig
    market: Market
    source: DrawSource
    engine: BatchEngine
    population: Population
    agent_rng: np.random.Generator

    @property
    def stack(self) -> MechanismStack:
        return self.config.stack


def section(cfg: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A config section as a mapping (missing or null = empty, i.e. all defaults)."""
    value = cfg.get(name)
    if value is None:
        return {}
    require(isinstance(value, Mapping), name, value, "a mapping")
    return value


def check_keys(cfg: Mapping[str, Any], allowed: tuple[str, ...], path: str = "config") -> None:
    """Reject unknown keys: a misspelt option must fail loudly, not fall back to a default."""
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")


def parse_market(cfg: Mapping[str, Any]) -> MarketConfig:
    return from_mapping(MarketConfig, section(cfg, "market"), "market")


def parse_stack(cfg: Mapping[str, Any]) -> MechanismStack:
    """`mechanism: {order: [name, ...], <name>: {enabled: ..., <params>}, ...}` (or a `stack:` list)."""
    mech = section(cfg, "mechanism") or DEFAULT_MECHANISM
    for name, value in mech.items():
        if name not in ("order", "stack", "name", "description"):
            require(
                value is None or isinstance(value, Mapping),
                f"mechanism.{name}",
                value,
                "a mapping of the mechanism's parameters",
            )
    return MechanismStack.from_mapping(mech, "mechanism")


def parse_population(cfg: Mapping[str, Any], market: MarketConfig) -> Population:
    sizes = {"clients": market.n_clients, "nodes": market.n_nodes, "mediators": market.n_mediators}
    return Population.from_config(section(cfg, "agents"), sizes, "agents")


def parse(cfg: Mapping[str, Any]) -> ParsedConfig:
    """Validate the builder's sections of a plain mapping (e.g. `OmegaConf.to_container(cfg, resolve=True)`).

    The stack's cross-check against the market (e.g. a mediation fee below the largest re-run cost) needs the built
    market and happens in `build`, still before any output is opened.
    """
    require(isinstance(cfg, Mapping), "config", cfg, "a mapping")
    seed = cfg.get("seed", 0)
    require_int(seed, "seed", 0, MAX_SEED)
    market = parse_market(cfg)
    return ParsedConfig(seed, market, parse_stack(cfg), parse_population(cfg, market))


def build(cfg: Mapping[str, Any] | ParsedConfig) -> Components:
    """Validate `cfg` (unless already parsed) and assemble market, draws, engine and population from its seed."""
    parsed = cfg if isinstance(cfg, ParsedConfig) else parse(cfg)
    streams = dict(zip(STREAMS, np.random.SeedSequence(parsed.seed).spawn(len(STREAMS)), strict=True))
    market = Market.build(parsed.market, np.random.default_rng(streams["market"]))
    source = DrawSource(
        parsed.market,
        market.module_cum_weight,
        parsed.stack.draws_per_deal,
        np.random.default_rng(streams["draws"]),
        parsed.stack.replicas,
    )
    engine = BatchEngine(market, parsed.stack, source)  # validates the stack against the market
    return Components(parsed, market, source, engine, parsed.population, np.random.default_rng(streams["agents"]))
