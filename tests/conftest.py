"""Shared test builders: hypothesis profiles and an engine factory.

Hypothesis profiles: ``default`` (200 examples) for local runs, ``ci`` (2000 examples) loaded whenever the ``CI``
environment variable is set (CI runs with ``CI=true``). Both have no deadline: timings on a shared 2-core machine
are noisy and an example's speed is not what the properties test.

Test modules reach the builders through fixtures (with ``--import-mode=importlib`` a test module cannot import
this file); they are session scoped so hypothesis tests may use them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import sim.engine
from agents.population import Population
from mechanisms import MechanismStack
from mechanisms.deals import MATCH_COLUMNS, MATCH_EXTRA, DealBatch
from mechanisms.hooks import ENGINE, HOOK_DATA, HOOK_INDEX, HOOKS, NONE, Columns
from sim.engine import BatchEngine
from sim.lifecycle import apply_actions, decide, resolve
from twin.build import build

settings.register_profile("default", max_examples=200, deadline=None)
settings.register_profile("ci", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI", "").strip().lower() not in ("", "0", "false") else "default")

EngineFactory = Callable[..., tuple[BatchEngine, Population]]
MarketStrategy = Callable[..., st.SearchStrategy[dict[str, Any]]]


def build_engine(
    market_kwargs: Mapping[str, Any],
    mechanism_params: Mapping[str, Any] | None,
    population_cfg: Mapping[str, Any],
    seed: int,
    mechanism: Mapping[str, Any] | None = None,
) -> tuple[BatchEngine, Population]:
    """A validated market, a mechanism stack (Lilypad v2 alone with `mechanism_params`, or the whole `mechanism`
    mapping in the Hydra form) and a population, built by `twin.build` from `seed` exactly as `simulate` builds a run
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


RESOURCE_MENUS = {
    "cpu": [0, 500, 1000, 4000],
    "gpu": [0, 0, 1, 2],
    "vram": [0, 8, 16],
    "ram": [0, 256, 1024],
    "disk": [0, 10, 100],
}


@st.composite
def market_kwargs(draw: st.DrawFn, max_agents: int = 12, max_mediators: int = 4) -> dict[str, Any]:
    """A random small market config (plain mapping): sizes, modules, machines, prices, price modes, allowlists,
    trust profiles, activity, response times and balances (small ones too, so some parties cannot afford a deal).

    Modules draw their needs from smaller menus than machines their capacities, so most machines cover most
    modules but not all; trust profiles and allowlists are often "any", so most jobs find a node but not all.
    """

    def resources(machine: bool) -> dict[str, int]:
        return {
            name: draw(st.sampled_from([menu[-1], *reversed(menu[1:])] if machine else menu[:-1]))
            for name, menu in RESOURCE_MENUS.items()
        }

    n_modules = draw(st.integers(1, 3))
    names = [f"m{i}" for i in range(n_modules)]
    modules = [
        {
            "name": name,
            **resources(machine=False),
            "instructions": draw(st.integers(1, 5)),
            "compute_cost": draw(st.integers(0, 20)),
            "weight": draw(st.integers(1, 3)),
        }
        for name in names
    ]
    machines = [
        {"name": f"box{i}", **resources(machine=True), "weight": draw(st.integers(1, 3))}
        for i in range(draw(st.integers(1, 3)))
    ]
    n_mediators = draw(st.integers(1, max_mediators))
    subsets = st.one_of(
        st.just(()), st.lists(st.integers(0, n_mediators - 1), max_size=n_mediators, unique=True).map(tuple)
    )
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
        "allowlists": draw(
            st.lists(
                st.one_of(st.just(()), st.lists(st.sampled_from(names), max_size=n_modules, unique=True).map(tuple)),
                min_size=1,
                max_size=3,
            )
        ),
        "trust_profiles": draw(st.lists(subsets, min_size=1, max_size=3)),
        "client_activity": draw(st.sampled_from([1.0, 0.6])),
        "node_activity": draw(st.sampled_from([1.0, 0.6])),
        "response": {
            name: draw(mean) for name in ("client_agree", "node_agree", "node_submit", "client_judge", "mediator")
        },
    }


@pytest.fixture(scope="session")
def random_market() -> MarketStrategy:
    """`random_market(max_agents=12, max_mediators=4)`: a hypothesis strategy of market config mappings."""
    return market_kwargs


# ------------------------------------------------------------------------ declared hook data, enforced during a run


class HookDataViolation(AssertionError):
    """A hook (or an engine step) touched DealBatch data its declaration does not cover."""


@dataclass
class _Frame:
    """What the running hook may touch: readable and writable hook data, and the columns it sets so far."""

    who: str
    hook: str
    readable: frozenset[str]
    writable: frozenset[str]
    sets: frozenset[str] = frozenset()
    written: set[str] = field(default_factory=set)


class HookDataTrace:
    """Checks, while an engine runs, that every mechanism hook reads and writes only the columns it declares in
    `Mechanism.columns` (and reads a column it only `sets` only after setting it), that columns it merely reads come
    back read-only (so an in-place write fails too), and that the engine fills each column between the hooks
    `mechanisms.hooks.HOOKS` says. Columns fixed at the match are free to read and never written."""

    def __init__(self) -> None:
        self.frames: list[_Frame] = []
        self.last_hook = -1  # index in HOOKS of the last hook that ran this round
        self.pending: set[str] = set()  # engine writes since that hook
        self.engine_filled: set[str] = set()
        self.ran: set[tuple[str, str]] = set()  # (mechanism, hook) pairs that ran

    def hook(self, who: str, hook: str, cols: Columns) -> _Frame:
        index = HOOK_INDEX[hook]
        early = sorted(c for c in self.pending if HOOK_INDEX[FILLED_BEFORE[c]] > index)
        if early:
            raise HookDataViolation(
                f"the engine fills {early} already before {hook}, earlier than mechanisms.hooks.HOOKS declares"
            )
        self.last_hook, self.pending = index, set()
        self.ran.add((who, hook))
        sets = frozenset(cols.sets) - frozenset(cols.reads) - frozenset(cols.updates)
        return _Frame(who, hook, frozenset(cols.reads + cols.updates), frozenset(cols.updates + cols.sets), sets)

    def engine(self, step: str, hooks: tuple[str, ...]) -> _Frame:
        if step == "apply_actions":
            self.last_hook, self.pending = HOOK_INDEX["rank_offers"], set()
        fills = frozenset(c for h in hooks for c in HOOKS[HOOK_INDEX[h]].engine_fills)
        return _Frame(ENGINE, step, ALL_DATA, fills)

    def read(self, name: str, value: Any) -> Any:
        if not self.frames:
            return value
        f = self.frames[-1]
        allowed = name in FIXED or name in f.readable or (name in f.sets and name in f.written)
        if f.who != ENGINE and not allowed:
            verb = "reads the old value of" if name in f.sets else "reads undeclared"
            raise HookDataViolation(f"{f.who}.{f.hook} {verb} DealBatch column {name!r}")
        if name not in f.writable and isinstance(value, np.ndarray):
            value = value.view()
            value.flags.writeable = False
        return value

    def write(self, name: str) -> None:
        if not self.frames:
            return
        f = self.frames[-1]
        if name not in f.writable:
            raise HookDataViolation(f"{f.who}.{f.hook} writes undeclared DealBatch column {name!r}")
        f.written.add(name)
        if f.who == ENGINE:
            if HOOK_INDEX[FILLED_BEFORE[name]] <= self.last_hook:
                raise HookDataViolation(
                    f"the engine fills {name!r} after {HOOKS[self.last_hook].name}, later than "
                    f"declared (before {FILLED_BEFORE[name]})"
                )
            self.pending.add(name)
            self.engine_filled.add(name)


FIXED = MATCH_COLUMNS | MATCH_EXTRA
ALL_DATA = HOOK_DATA | FIXED
FILLED_BEFORE = {c: h.name for h in HOOKS for c in h.engine_fills}
_TRACE: list[HookDataTrace] = []  # the active trace, if any


class _TracedExtra(dict):
    """`DealBatch.extra` whose keys are checked like columns."""

    def __getitem__(self, key: str) -> Any:
        return _TRACE[-1].read(key, super().__getitem__(key)) if _TRACE else super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if _TRACE:
            _TRACE[-1].read(str(key), None)
        return super().__contains__(key)

    def __setitem__(self, key: str, value: Any) -> None:
        if _TRACE:
            _TRACE[-1].write(key)
        super().__setitem__(key, value)


class _TracedBatch(DealBatch):
    """A DealBatch that reports every access to hook data to the active trace."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.extra = _TracedExtra(self.extra)

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        return _TRACE[-1].read(name, value) if _TRACE and name in ALL_DATA else value

    def __setattr__(self, name: str, value: Any) -> None:
        if _TRACE and name in ALL_DATA:
            _TRACE[-1].write(name)
        object.__setattr__(self, name, value)


@contextmanager
def trace_hook_data() -> Iterator[HookDataTrace]:
    """Within the block, engines built by `sim.engine` run on traced batches (see `HookDataTrace`)."""
    trace = HookDataTrace()

    def framed(frame: Callable[[], _Frame], call: Callable[[], Any]) -> Any:
        trace.frames.append(frame())
        try:
            return call()
        finally:
            trace.frames.pop()

    def call(stack: MechanismStack, hook: str, *args: Any) -> list[Any]:
        return [
            framed(lambda m=m: trace.hook(m.name, hook, m.columns.get(hook, NONE)), lambda m=m: getattr(m, hook)(*args))
            for m in stack.runners(hook)
        ]

    def engine_step(fn: Callable[..., Any], hooks: tuple[str, ...]) -> Callable[..., Any]:
        return lambda *args: framed(lambda: trace.engine(fn.__name__, hooks), lambda: fn(*args))

    with ExitStack() as patches:
        patches.enter_context(mock.patch.object(sim.engine, "DealBatch", _TracedBatch))
        patches.enter_context(mock.patch.object(MechanismStack, "_call", call))
        for fn, hooks in (
            (apply_actions, ("set_terms",)),
            (decide, ("choose_checks", "judge")),
            (resolve, ("slash_destinations",)),
        ):
            patches.enter_context(mock.patch.object(sim.engine, fn.__name__, engine_step(fn, hooks)))
        _TRACE.append(trace)
        try:
            yield trace
        finally:
            _TRACE.pop()


@pytest.fixture(scope="session")
def hook_data_trace() -> Callable[[], AbstractContextManager[HookDataTrace]]:
    """`with hook_data_trace() as trace:` engines built inside run on batches that enforce declared hook data."""
    return trace_hook_data
