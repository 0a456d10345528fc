"""The market's static side: who exists, what they own, what they serve and whom they trust.

Accounts are laid out as clients, then nodes, then mediators, then stakers, then the pools of
`mechanisms.money.Pool` (defined once, in `mechanisms.base.MarketFacts`; `Market.facts` holds the run's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import numpy as np

from mechanisms.base import MarketFacts
from mechanisms.config import Length, Name, Probability, Range, number, require
from mechanisms.money import INT64_MAX, MAX_AMOUNT, Amount

MAX_MEDIATORS = 63  # trust sets are int64 bit masks
MAX_MODULES = 63
RESOURCES = ("cpu", "gpu", "vram", "ram", "disk")
Resource = Annotated[int, Range(0, 10**9)]  # milli-CPU, GPUs, MiB
Weight = Annotated[int, Range(1, 10**6)]  # relative frequency
Count = Annotated[int, Range(1, 10**7)]  # agents of a role
Price = Annotated[int, Range(0, 10**12)]  # base units per instruction
Blocks = Annotated[float, Range(0, 1e9)]  # mean response time


@dataclass(frozen=True)
class ModuleSpec:
    """A job type: what it needs, how long it runs, what running it costs."""

    name: Name
    cpu: Resource = 1000  # milli-CPU
    gpu: Resource = 0
    vram: Resource = 0  # MiB
    ram: Resource = 1024  # MiB
    disk: Resource = 1024  # MiB
    instructions: Annotated[int, Range(1, 10**12)] = 1  # job cost = price per instruction x instructions
    compute_cost: Amount = 6  # base units a node (or re-running mediator) spends to run it honestly
    weight: Weight = 1  # relative frequency among posted jobs


@dataclass(frozen=True)
class MachineSpec:
    """A class of node hardware."""

    name: str
    cpu: Resource = 4000
    gpu: Resource = 0
    vram: Resource = 0
    ram: Resource = 8192
    disk: Resource = 65536
    weight: Weight = 1


@dataclass(frozen=True)
class ResponseTimes:
    """Mean response time in blocks per party and phase; a party is late when its (exponential) time exceeds the
    phase's deadline. 0 means always on time."""

    client_agree: Blocks = 0.0
    node_agree: Blocks = 0.0
    node_submit: Blocks = 0.0
    client_judge: Blocks = 0.0
    mediator: Blocks = 0.0


def _default_modules() -> tuple[ModuleSpec, ...]:
    return (
        ModuleSpec("cowsay", cpu=500, ram=256, instructions=1, compute_cost=6),
        ModuleSpec("sdxl", cpu=4000, gpu=1, vram=16384, ram=16384, instructions=10, compute_cost=60),
    )


def _default_machines() -> tuple[MachineSpec, ...]:
    return (
        MachineSpec("cpu-box", cpu=8000, ram=16384, weight=3),
        MachineSpec("gpu-box", cpu=16000, gpu=1, vram=24576, ram=65536, weight=1),
    )


@dataclass(frozen=True)
class MarketConfig:
    n_clients: Count = 200
    n_nodes: Count = 200
    n_mediators: Annotated[int, Range(1, MAX_MEDIATORS)] = 5
    n_stakers: Annotated[int, Range(0, 10**7)] = 0  # third parties who may stake behind nodes (mechanisms.staking)
    client_balance: Amount = 100_000
    node_balance: Amount = 100_000
    mediator_balance: Amount = 1_000
    staker_balance: Amount = 0
    modules: Annotated[tuple[ModuleSpec, ...], Length(1, MAX_MODULES)] = field(default_factory=_default_modules)
    machines: Annotated[tuple[MachineSpec, ...], Length(1)] = field(default_factory=_default_machines)
    node_price: tuple[Price, Price] = (8, 12)  # price per instruction, inclusive range [lo, hi], drawn per node
    client_max_price: tuple[Price, Price] = (10, 14)  # fixed-price clients' limit per instruction, per client
    fixed_price_share: Probability = 0.5  # share of clients in fixed-price mode (the rest take the market price)
    # node allowlist profiles (module names); () = any module
    allowlists: Annotated[tuple[tuple[str, ...], ...], Length(1)] = ((),)
    trust_profiles: Annotated[tuple[tuple[int, ...], ...], Length(1)] = ((),)  # mediator index sets; () = all
    client_activity: Probability = 1.0  # probability a client posts a job in a round
    node_activity: Probability = 1.0  # probability a node posts a resource offer in a round
    response: ResponseTimes = field(default_factory=ResponseTimes)

    def validate(self, path: str) -> None:
        names = [m.name for m in self.modules]
        require(len(set(names)) == len(names), f"{path}.modules", names, "unique module names")
        for rng_name in ("node_price", "client_max_price"):
            lo, hi = getattr(self, rng_name)
            require(lo <= hi, f"{path}.{rng_name}", [lo, hi], "[lo, hi] with lo <= hi")
        for i, allow in enumerate(self.allowlists):
            unknown = sorted(set(allow) - set(names))
            require(not unknown, f"{path}.allowlists[{i}]", list(allow), f"names from {names}")
        for i, prof in enumerate(self.trust_profiles):
            ok = all(0 <= m < self.n_mediators for m in prof)
            require(ok, f"{path}.trust_profiles[{i}]", list(prof), f"mediator indices in [0, {self.n_mediators})")
        self._validate_money(path)

    def _validate_money(self, path: str) -> None:
        """Job costs are single amounts, and all the market's value must fit int64 (see `mechanisms.bounds`)."""
        facts = self.facts
        require(
            facts.max_job_cost <= MAX_AMOUNT,
            f"{path}.node_price",
            list(self.node_price),
            f"a top price x the most instructions of a module ({max(self.node_price[1], 1)} x "
            f"{max(m.instructions for m in self.modules)}) of at most {number(MAX_AMOUNT)}, the largest job cost",
        )
        if facts.total_value > INT64_MAX:
            role = max(
                ("client", "node", "mediator", "staker"),
                key=lambda r: getattr(self, f"n_{r}s") * getattr(self, f"{r}_balance"),
            )
            n, balance = getattr(self, f"n_{role}s"), getattr(self, f"{role}_balance")
            most = (INT64_MAX - (facts.total_value - n * balance)) // n
            require(
                False,
                f"{path}.{role}_balance",
                balance,
                f"at most {most} with these counts, so that all value in the market (n x balance summed over "
                f"the roles, here {facts.total_value}) fits int64",
            )

    @property
    def n_agents(self) -> int:
        return self.n_clients + self.n_nodes + self.n_mediators + self.n_stakers

    @property
    def facts(self) -> MarketFacts:
        """What mechanisms may know of this market, including its account layout."""
        return MarketFacts(
            n_mediators=self.n_mediators,
            max_compute_cost=max(m.compute_cost for m in self.modules),
            max_job_cost=max(m.instructions for m in self.modules) * max(self.node_price[1], 0),
            n_clients=self.n_clients,
            n_nodes=self.n_nodes,
            n_stakers=self.n_stakers,
            mediator_balance=self.mediator_balance,
            staker_balance=self.staker_balance,
            client_balance=self.client_balance,
            node_balance=self.node_balance,
            max_price=self.node_price[1],
        )


def unique_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of an int matrix and each row's index among them (column by column: fast 1-d uniques)."""
    code = np.zeros(len(a), dtype=np.int64)
    for col in a.T:
        _, col_code = np.unique(col, return_inverse=True)
        _, code = np.unique(code * (int(col_code.max(initial=0)) + 1) + col_code, return_inverse=True)
    first = np.unique(code, return_index=True)[1]
    return a[first], code.astype(np.int64)


def _mask(indices: tuple[int, ...], width: int) -> int:
    return (1 << width) - 1 if not indices else sum(1 << i for i in set(indices))


@dataclass(frozen=True)
class Market:
    """Per-agent static attributes drawn once per run. Arrays are indexed by position within the role."""

    config: MarketConfig
    # nodes
    node_capacity: np.ndarray  # (n_nodes, 5) in RESOURCES order
    node_price: np.ndarray
    node_allow: np.ndarray  # bit mask over modules
    node_trust: np.ndarray  # bit mask over mediators
    # clients
    client_fixed: np.ndarray  # bool: fixed-price mode
    client_max_price: np.ndarray
    client_trust: np.ndarray
    # modules
    module_needs: np.ndarray  # (n_modules, 5)
    module_instructions: np.ndarray
    module_compute_cost: np.ndarray
    module_cum_weight: np.ndarray
    # offer types for the solver: offers of one type differ only in price and age
    node_type: np.ndarray  # type id per node, row of `node_types`
    node_types: np.ndarray  # (T_r, 7): capacity (5), allow mask, trust mask
    client_trust_code: np.ndarray  # trust profile per client
    trust_masks: np.ndarray  # mask per trust profile
    facts: MarketFacts  # sizes, balances, largest costs and the account layout (`MarketConfig.facts`)

    @property
    def job_types(self) -> np.ndarray:
        """(n_modules * n_profiles, 7): needs (5), module, trust mask; job type id = module * n_profiles + code."""
        n_mod, n_prof = len(self.module_needs), len(self.trust_masks)
        module = np.repeat(np.arange(n_mod), n_prof)
        return np.column_stack([self.module_needs[module], module, np.tile(self.trust_masks, n_mod)])

    @classmethod
    def build(cls, config: MarketConfig, rng: np.random.Generator, typed: bool = True) -> Market:
        """Draw the market's agents from `rng`. `typed=False` skips the solver's offer types (left empty), for
        markets that `sim.union` joins and types once."""
        c = config
        machines = c.machines
        w = np.array([m.weight for m in machines], dtype=np.float64)
        machine_of = rng.choice(len(machines), size=c.n_nodes, p=w / w.sum())
        caps = np.array([[getattr(m, r) for r in RESOURCES] for m in machines], dtype=np.int64)
        names = [m.name for m in c.modules]
        allow_masks = np.array(
            [_mask(tuple(names.index(n) for n in a), len(names)) for a in c.allowlists], dtype=np.int64
        )
        trust_masks = np.array([_mask(p, c.n_mediators) for p in c.trust_profiles], dtype=np.int64)
        node_price = rng.integers(c.node_price[0], c.node_price[1], size=c.n_nodes, endpoint=True)
        node_allow = allow_masks[rng.integers(0, len(allow_masks), size=c.n_nodes)]
        node_trust = trust_masks[rng.integers(0, len(trust_masks), size=c.n_nodes)]
        client_fixed = rng.random(c.n_clients) < c.fixed_price_share
        client_max_price = rng.integers(c.client_max_price[0], c.client_max_price[1], size=c.n_clients, endpoint=True)
        client_trust_code = rng.integers(0, len(trust_masks), size=c.n_clients)
        rows = np.column_stack([caps[machine_of], node_allow, node_trust])
        node_types, node_type = unique_rows(rows) if typed else (rows[:0], np.zeros(0, dtype=np.int64))
        return cls(
            config=c,
            node_capacity=caps[machine_of],
            node_price=node_price,
            node_allow=node_allow,
            node_trust=node_trust,
            client_fixed=client_fixed,
            client_max_price=client_max_price,
            client_trust=trust_masks[client_trust_code],
            module_needs=np.array([[getattr(m, r) for r in RESOURCES] for m in c.modules], dtype=np.int64),
            module_instructions=np.array([m.instructions for m in c.modules], dtype=np.int64),
            module_compute_cost=np.array([m.compute_cost for m in c.modules], dtype=np.int64),
            module_cum_weight=np.cumsum([m.weight for m in c.modules]).astype(np.int64),
            node_type=node_type,
            node_types=node_types,
            client_trust_code=client_trust_code,
            trust_masks=trust_masks,
            facts=c.facts,
        )
