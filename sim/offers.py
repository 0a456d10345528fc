"""A round's order book: job offers and resource offers as structures of arrays, and the matching rule."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sim.draws import RoundDraws
from sim.market import Market


@dataclass(frozen=True)
class JobOffers:
    client: np.ndarray  # client index (= account id) ; also the row of the round's per-deal draws
    module: np.ndarray
    needs: np.ndarray  # (k, 5)
    fixed: np.ndarray  # bool: fixed-price mode
    max_price: np.ndarray  # per instruction, binding in fixed mode only
    trust: np.ndarray  # mediator bit mask
    arrival: np.ndarray  # rank: lower = older (replicas of one job in replica order)
    jtype: np.ndarray  # row of Market.job_types
    replica: np.ndarray  # index of this replica within its job
    row: np.ndarray  # row of the round's per-deal draws

    @classmethod
    def post(cls, market: Market, draws: RoundDraws, replicas: int = 1) -> JobOffers:
        """Each active client's job, once per replica it buys (the solver then gives each a different node)."""
        idx = np.repeat(np.flatnonzero(draws.client_active), replicas)
        replica = np.tile(np.arange(replicas, dtype=np.int64), len(idx) // replicas)
        module = draws.job_module[idx]
        jtype = module * len(market.trust_masks) + market.client_trust_code[idx]
        return cls(
            idx,
            module,
            np.take(market.module_needs, module, axis=0),
            market.client_fixed[idx],
            market.client_max_price[idx],
            market.client_trust[idx],
            draws.job_arrival[idx] * replicas + replica,
            jtype,
            replica,
            idx * replicas + replica,
        )


@dataclass(frozen=True)
class ResourceOffers:
    node: np.ndarray  # node index within nodes
    capacity: np.ndarray  # (k, 5)
    price: np.ndarray  # per instruction
    allow: np.ndarray  # module bit mask; 0 = any module
    trust: np.ndarray
    arrival: np.ndarray
    rtype: np.ndarray  # row of Market.node_types
    rank: np.ndarray = None  # type: ignore[assignment]  # effective price (mechanisms may adjust; -1 excludes)

    def __post_init__(self) -> None:
        if self.rank is None:
            object.__setattr__(self, "rank", self.price)

    def ranked(self, rank: np.ndarray) -> ResourceOffers:
        """The same offers under mechanism-adjusted effective prices; offers ranked -1 are withdrawn."""
        keep = rank >= 0
        if keep.all():
            return dataclasses.replace(self, rank=rank)
        return ResourceOffers(
            self.node[keep],
            self.capacity[keep],
            self.price[keep],
            self.allow[keep],
            self.trust[keep],
            self.arrival[keep],
            self.rtype[keep],
            rank[keep],
        )

    @classmethod
    def post(cls, market: Market, draws: RoundDraws) -> ResourceOffers:
        idx = np.flatnonzero(draws.node_active)
        return cls(
            idx,
            np.take(market.node_capacity, idx, axis=0),
            market.node_price[idx],
            market.node_allow[idx],
            market.node_trust[idx],
            draws.node_arrival[idx],
            market.node_type[idx],
        )


def compatible(needs, module, fixed, max_price, job_trust, capacity, allow, price, res_trust):
    """The Lilypad solver's rule, elementwise with numpy broadcasting: the resources cover the job, the module is
    on the node's allowlist (an empty list allows all), a fixed-price job pays at least the node's price, and the two
    sides trust at least one common mediator."""
    covers = np.all(np.asarray(capacity) >= np.asarray(needs), axis=-1)
    allowed = (allow == 0) | ((allow >> module) & 1 == 1)
    priced = np.logical_not(fixed) | (price <= max_price)
    return covers & allowed & priced & ((job_trust & res_trust) != 0)
