"""The market's static side: who exists, what they own, what they serve and whom they trust.

Accounts are laid out as clients, then nodes, then mediators, then stakers, then the pools of
`mechanisms.money.Pool`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mechanisms.config import ConfigError, require, require_int, require_prob
from mechanisms.money import N_POOLS

MAX_MEDIATORS = 63  # trust sets are int64 bit masks
MAX_MODULES = 63
RESOURCES = ("cpu", "gpu", "vram", "ram", "disk")


@dataclass(frozen=True)
class ModuleSpec:
    """A job type: what it needs, how long it runs, what running it costs."""

    name: str
    cpu: int = 1000  # milli-CPU
    gpu: int = 0
    vram: int = 0  # MiB
    ram: int = 1024  # MiB
    disk: int = 1024  # MiB
    instructions: int = 1  # job cost = price per instruction x instructions
    compute_cost: int = 6  # base units a node (or re-running mediator) spends to run it honestly
    weight: int = 1  # relative frequency among posted jobs

    def validate(self, path: str) -> None:
        require(isinstance(self.name, str) and self.name != "", f"{path}.name", self.name, "a non-empty string")
        for r in RESOURCES:
            require_int(getattr(self, r), f"{path}.{r}", 0, 10**9)
        require_int(self.instructions, f"{path}.instructions", 1, 10**12)
        require_int(self.compute_cost, f"{path}.compute_cost", 0, 10**15)
        require_int(self.weight, f"{path}.weight", 1, 10**6)


@dataclass(frozen=True)
class MachineSpec:
    """A class of node hardware."""

    name: str
    cpu: int = 4000
    gpu: int = 0
    vram: int = 0
    ram: int = 8192
    disk: int = 65536
    weight: int = 1

    def validate(self, path: str) -> None:
        for r in RESOURCES:
            require_int(getattr(self, r), f"{path}.{r}", 0, 10**9)
        require_int(self.weight, f"{path}.weight", 1, 10**6)


@dataclass(frozen=True)
class ResponseTimes:
    """Mean response time in blocks per party and phase; a party is late when its (exponential) time exceeds the
    phase's deadline. 0 means always on time."""

    client_agree: float = 0.0
    node_agree: float = 0.0
    node_submit: float = 0.0
    client_judge: float = 0.0
    mediator: float = 0.0

    def validate(self, path: str) -> None:
        for name in ("client_agree", "node_agree", "node_submit", "client_judge", "mediator"):
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1e9
            require(ok, f"{path}.{name}", v, "a number of blocks in [0, 1e9]")


def _default_modules() -> tuple[ModuleSpec, ...]:
    return (ModuleSpec("cowsay", cpu=500, ram=256, instructions=1, compute_cost=6),
            ModuleSpec("sdxl", cpu=4000, gpu=1, vram=16384, ram=16384, instructions=10, compute_cost=60))


def _default_machines() -> tuple[MachineSpec, ...]:
    return (MachineSpec("cpu-box", cpu=8000, ram=16384, weight=3),
            MachineSpec("gpu-box", cpu=16000, gpu=1, vram=24576, ram=65536, weight=1))


@dataclass(frozen=True)
class MarketConfig:
    n_clients: int = 200
    n_nodes: int = 200
    n_mediators: int = 5
    n_stakers: int = 0  # third parties who may stake behind nodes (see mechanisms.staking)
    client_balance: int = 100_000
    node_balance: int = 100_000
    mediator_balance: int = 1_000
    staker_balance: int = 0
    modules: tuple[ModuleSpec, ...] = field(default_factory=_default_modules)
    machines: tuple[MachineSpec, ...] = field(default_factory=_default_machines)
    node_price: tuple[int, int] = (8, 12)  # price per instruction, inclusive range, drawn per node
    client_max_price: tuple[int, int] = (10, 14)  # fixed-price clients' limit per instruction, drawn per client
    fixed_price_share: float = 0.5  # share of clients in fixed-price mode (the rest take the market price)
    allowlists: tuple[tuple[str, ...], ...] = ((),)  # node allowlist profiles (module names); () = any module
    trust_profiles: tuple[tuple[int, ...], ...] = ((),)  # mediator index sets; () = all mediators
    client_activity: float = 1.0  # probability a client posts a job in a round
    node_activity: float = 1.0  # probability a node posts a resource offer in a round
    response: ResponseTimes = field(default_factory=ResponseTimes)

    def validate(self, path: str) -> None:
        require_int(self.n_clients, f"{path}.n_clients", 1, 10**7)
        require_int(self.n_nodes, f"{path}.n_nodes", 1, 10**7)
        require_int(self.n_mediators, f"{path}.n_mediators", 1, MAX_MEDIATORS)
        require_int(self.n_stakers, f"{path}.n_stakers", 0, 10**7)
        for name in ("client_balance", "node_balance", "mediator_balance", "staker_balance"):
            require_int(getattr(self, name), f"{path}.{name}", 0, 10**15)
        require(0 < len(self.modules) <= MAX_MODULES, f"{path}.modules", len(self.modules),
                f"1 to {MAX_MODULES} modules")
        names = [m.name for m in self.modules]
        require(len(set(names)) == len(names), f"{path}.modules", names, "unique module names")
        require(len(self.machines) > 0, f"{path}.machines", self.machines, "at least one machine class")
        for rng_name in ("node_price", "client_max_price"):
            lo_hi = getattr(self, rng_name)
            ok = len(lo_hi) == 2 and all(isinstance(v, int) for v in lo_hi) and 0 <= lo_hi[0] <= lo_hi[1] <= 10**12
            require(ok, f"{path}.{rng_name}", lo_hi, "[lo, hi] integers with 0 <= lo <= hi")
        require_prob(self.fixed_price_share, f"{path}.fixed_price_share")
        require_prob(self.client_activity, f"{path}.client_activity")
        require_prob(self.node_activity, f"{path}.node_activity")
        require(len(self.allowlists) > 0, f"{path}.allowlists", self.allowlists, "at least one profile")
        for i, allow in enumerate(self.allowlists):
            unknown = sorted(set(allow) - set(names))
            require(not unknown, f"{path}.allowlists[{i}]", list(allow), f"names from {names}")
        require(len(self.trust_profiles) > 0, f"{path}.trust_profiles", self.trust_profiles, "at least one profile")
        for i, prof in enumerate(self.trust_profiles):
            ok = all(isinstance(m, int) and 0 <= m < self.n_mediators for m in prof)
            require(ok, f"{path}.trust_profiles[{i}]", list(prof), f"mediator indices in [0, {self.n_mediators})")

    @property
    def n_agents(self) -> int:
        return self.n_clients + self.n_nodes + self.n_mediators + self.n_stakers


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

    @property
    def job_types(self) -> np.ndarray:
        """(n_modules * n_profiles, 7): needs (5), module, trust mask; job type id = module * n_profiles + code."""
        n_mod, n_prof = len(self.module_needs), len(self.trust_masks)
        module = np.repeat(np.arange(n_mod), n_prof)
        return np.column_stack([self.module_needs[module], module, np.tile(self.trust_masks, n_mod)])

    @classmethod
    def build(cls, config: MarketConfig, rng: np.random.Generator) -> Market:
        c = config
        machines = c.machines
        w = np.array([m.weight for m in machines], dtype=np.float64)
        machine_of = rng.choice(len(machines), size=c.n_nodes, p=w / w.sum())
        caps = np.array([[getattr(m, r) for r in RESOURCES] for m in machines], dtype=np.int64)
        names = [m.name for m in c.modules]
        allow_masks = np.array([_mask(tuple(names.index(n) for n in a), len(names)) for a in c.allowlists],
                               dtype=np.int64)
        trust_masks = np.array([_mask(p, c.n_mediators) for p in c.trust_profiles], dtype=np.int64)
        node_price = rng.integers(c.node_price[0], c.node_price[1], size=c.n_nodes, endpoint=True)
        node_allow = allow_masks[rng.integers(0, len(allow_masks), size=c.n_nodes)]
        node_trust = trust_masks[rng.integers(0, len(trust_masks), size=c.n_nodes)]
        client_fixed = rng.random(c.n_clients) < c.fixed_price_share
        client_max_price = rng.integers(c.client_max_price[0], c.client_max_price[1], size=c.n_clients,
                                        endpoint=True)
        client_trust_code = rng.integers(0, len(trust_masks), size=c.n_clients)
        node_types, node_type = unique_rows(np.column_stack([caps[machine_of], node_allow, node_trust]))
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
        )

    # account layout
    @property
    def first_node(self) -> int:
        return self.config.n_clients

    @property
    def first_mediator(self) -> int:
        return self.config.n_clients + self.config.n_nodes

    @property
    def first_staker(self) -> int:
        return self.first_mediator + self.config.n_mediators

    @property
    def pool_base(self) -> int:
        return self.config.n_agents

    @property
    def n_accounts(self) -> int:
        return self.config.n_agents + N_POOLS

    def mediator_accounts(self) -> np.ndarray:
        return np.arange(self.first_mediator, self.first_staker, dtype=np.int64)

    def initial_balances(self) -> np.ndarray:
        c = self.config
        bal = np.zeros(self.n_accounts, dtype=np.int64)
        bal[: c.n_clients] = c.client_balance
        bal[self.first_node : self.first_mediator] = c.node_balance
        bal[self.first_mediator : self.first_staker] = c.mediator_balance
        bal[self.first_staker : self.pool_base] = c.staker_balance
        return bal

    def role_of(self) -> np.ndarray:
        """Role name per agent account."""
        c = self.config
        return np.array(["client"] * c.n_clients + ["node"] * c.n_nodes + ["mediator"] * c.n_mediators
                        + ["staker"] * c.n_stakers)

    def max_compute_cost(self) -> int:
        return int(self.module_compute_cost.max())

    def max_job_cost(self) -> int:
        top_price = max(self.config.node_price[1], 0)
        return int(self.module_instructions.max()) * top_price


def check_market_size(config: MarketConfig) -> None:
    """Guard against values that overflow int64 money arithmetic."""
    worst = max(config.node_price[1], 1) * max(m.instructions for m in config.modules)
    if worst > 10**15:
        raise ConfigError(f"market: largest job cost {worst} is invalid: allowed at most 1e15 base units")
