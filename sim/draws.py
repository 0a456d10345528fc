"""All randomness of a round, drawn up front from the run's Generator.

Both engines (the batch engine and the Mesa reference) consume the same `RoundDraws`, so they can be compared
deal by deal. Per-deal draws are indexed by replica slot: a client posts at most one job a round, bought as
`replicas` deals, so the row of replica r of client c's job is c * replicas + r.
Comparisons use only exact float operations (`<`, `*`, `floor`) so both engines decide identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from sim.market import MarketConfig


class U(IntEnum):
    """Columns of `RoundDraws.u` (uniforms in [0, 1)); mechanism uniforms follow `N_FIXED`."""

    cheat = 0


N_FIXED_U = len(U)


class E(IntEnum):
    """Columns of `RoundDraws.e` (standard exponentials): response time / mean response time."""

    client_agree = 0
    node_agree = 1
    node_submit = 2
    client_judge = 3
    mediator = 4


@dataclass(frozen=True)
class RoundDraws:
    client_active: np.ndarray  # bool per client
    job_module: np.ndarray  # module index per client's job
    job_arrival: np.ndarray  # arrival rank per client's job (a permutation)
    node_active: np.ndarray  # bool per node
    node_arrival: np.ndarray  # arrival rank per node's offer (a permutation)
    u: np.ndarray  # (n_clients * replicas, N_FIXED_U + mechanism draws)
    e: np.ndarray  # (n_clients * replicas, len(E))


class DrawSource:
    """Draws rounds one after another from one Generator, always in the same order."""

    def __init__(
        self,
        config: MarketConfig,
        module_cum_weight: np.ndarray,
        mechanism_draws: int,
        rng: np.random.Generator,
        replicas: int = 1,
    ) -> None:
        self.config = config
        self.replicas = replicas
        self.cum_weight = module_cum_weight
        self.n_u = N_FIXED_U + mechanism_draws
        self.rng = rng

    def next_round(self) -> RoundDraws:
        c, rng = self.config, self.rng
        client_active = rng.random(c.n_clients) < c.client_activity
        pick = np.floor(rng.random(c.n_clients) * self.cum_weight[-1]).astype(np.int64)
        job_module = np.searchsorted(self.cum_weight, pick, side="right").astype(np.int64)
        job_arrival = rng.permutation(c.n_clients).astype(np.int64)
        node_active = rng.random(c.n_nodes) < c.node_activity
        node_arrival = rng.permutation(c.n_nodes).astype(np.int64)
        u = rng.random((c.n_clients * self.replicas, self.n_u))
        e = rng.standard_exponential((c.n_clients * self.replicas, len(E)))
        return RoundDraws(client_active, job_module, job_arrival, node_active, node_arrival, u, e)
