"""Shared test builders: hypothesis profiles and an engine factory.

Hypothesis profiles: ``default`` (200 examples) for local runs, ``ci`` (2000 examples) loaded whenever the ``CI``
environment variable is set (CI runs with ``CI=true``). Both have no deadline: timings on a shared 2-core machine
are noisy and an example's speed is not what the properties test.

Test modules reach the builders through fixtures (with ``--import-mode=importlib`` a test module cannot import
this file); they are session scoped so hypothesis tests may use them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from agents.population import Population
from sim.build import build
from sim.engine import BatchEngine

settings.register_profile("default", max_examples=200, deadline=None)
settings.register_profile("ci", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI", "").strip().lower() not in ("", "0", "false") else "default")

EngineFactory = Callable[..., tuple[BatchEngine, Population]]
MarketStrategy = Callable[..., st.SearchStrategy[dict[str, Any]]]


def build_engine(market_kwargs: Mapping[str, Any], mechanism_params: Mapping[str, Any] | None,
                 population_cfg: Mapping[str, Any], seed: int,
                 mechanism: Mapping[str, Any] | None = None) -> tuple[BatchEngine, Population]:
    """A validated market, a mechanism stack (Lilypad v2 alone with `mechanism_params`, or the whole `mechanism`
    mapping in the Hydra form) and a population, built by `sim.build` from `seed` exactly as `simulate` builds a run
    (so seed N here is seed N there).

    `market_kwargs` and `population_cfg` are plain config mappings (as Hydra would pass them); they go through the
    same validation as a run's config, so a bad value fails here with a ConfigError naming the field.
    """
    if mechanism is None:
        mechanism = {"stack": [{"name": "lilypad_v2", **(mechanism_params or {})}]}
    sim = build({"seed": seed, "market": market_kwargs, "mechanism": mechanism, "agents": population_cfg})
    return sim.engine, sim.population


@pytest.fixture(scope="session")
def make_engine() -> EngineFactory:
    """`make_engine(market_kwargs, mechanism_params, population_cfg, seed, mechanism=None) -> (engine, population)`."""
    return build_engine


RESOURCE_MENUS = {"cpu": [0, 500, 1000, 4000], "gpu": [0, 0, 1, 2], "vram": [0, 8, 16], "ram": [0, 256, 1024],
                  "disk": [0, 10, 100]}


@st.composite
def market_kwargs(draw: st.DrawFn, max_agents: int = 12, max_mediators: int = 4) -> dict[str, Any]:
    """A random small market config (plain mapping): sizes, modules, machines, prices, price modes, allowlists,
    trust profiles, activity, response times and balances (small ones too, so some parties cannot afford a deal).

    Modules draw their needs from smaller menus than machines their capacities, so most machines cover most
    modules but not all; trust profiles and allowlists are often "any", so most jobs find a node but not all.
    """
    def resources(machine: bool) -> dict[str, int]:
        return {name: draw(st.sampled_from([menu[-1], *reversed(menu[1:])] if machine else menu[:-1]))
                for name, menu in RESOURCE_MENUS.items()}

    n_modules = draw(st.integers(1, 3))
    names = [f"m{i}" for i in range(n_modules)]
    modules = [{"name": name, **resources(machine=False), "instructions": draw(st.integers(1, 5)),
                "compute_cost": draw(st.integers(0, 20)), "weight": draw(st.integers(1, 3))} for name in names]
    machines = [{"name": f"box{i}", **resources(machine=True), "weight": draw(st.integers(1, 3))}
                for i in range(draw(st.integers(1, 3)))]
    n_mediators = draw(st.integers(1, max_mediators))
    subsets = st.one_of(st.just(()), st.lists(st.integers(0, n_mediators - 1), max_size=n_mediators,
                                              unique=True).map(tuple))
    lo, hi = sorted(draw(st.lists(st.integers(0, 20), min_size=2, max_size=2)))
    max_lo, max_hi = sorted(draw(st.lists(st.integers(0, 20), min_size=2, max_size=2)))
    mean = st.sampled_from([0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 10.0, 50.0])
    balance = st.sampled_from([100_000] * 5 + [600, 100, 0]) | st.integers(0, 700)  # near the exposures too
    return {
        "n_clients": draw(st.integers(1, max_agents)),
        "n_nodes": draw(st.integers(1, max_agents)),
        "n_mediators": n_mediators,
        "client_balance": draw(balance),
        "node_balance": draw(balance),
        "mediator_balance": draw(st.sampled_from([1_000, 10, 0])),
        "modules": modules,
        "machines": machines,
        "node_price": (lo, hi),
        "client_max_price": (max_lo, max_hi),
        "fixed_price_share": draw(st.sampled_from([0.0, 0.5, 1.0])),
        "allowlists": draw(st.lists(st.one_of(st.just(()), st.lists(st.sampled_from(names), max_size=n_modules,
                                                                   unique=True).map(tuple)), min_size=1, max_size=3)),
        "trust_profiles": draw(st.lists(subsets, min_size=1, max_size=3)),
        "client_activity": draw(st.sampled_from([1.0, 0.6])),
        "node_activity": draw(st.sampled_from([1.0, 0.6])),
        "response": {name: draw(mean) for name in ("client_agree", "node_agree", "node_submit", "client_judge",
                                                     "mediator")},
    }


@pytest.fixture(scope="session")
def random_market() -> MarketStrategy:
    """`random_market(max_agents=12, max_mediators=4)`: a hypothesis strategy of market config mappings."""
    return market_kwargs
