"""The twin's rules and agents applied to one live deal: the same `MechanismStack` hooks on a batch of one, and
each role's behaviour through the per-role action interface of `agents` (a scripted strategy or a learned policy
fills the role's action arrays, here arrays of one).

A live deal's terms are the twin's terms (the stack's `set_terms`), the client's check is the stack's
`choose_checks` with the client's committed rate, and offer ranking is the stack's `rank_offers`; the chain
enforces the settlement the same stack defines (checked by the differential tests of `live.chain`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from agents.population import ROLE_OF_GROUP, parse_groups
from agents.scripted import Strategy
from live.chain.binding import Terms
from mechanisms.actions import ClientActions, MediatorActions, NodeActions
from mechanisms.base import MechanismStack
from mechanisms.deals import NEVER, NO_MEDIATOR, DealBatch, RoundContext
from sim.market import MarketConfig

COUNTERS = ("passed", "failed")


@dataclass(frozen=True)
class LiveMarket:
    """The twin market config the live network mirrors: module names, instruction counts and re-run costs, and how
    many accounts each role has (twin account ids: clients, nodes, mediators, then the pools)."""

    config: MarketConfig

    @property
    def module_names(self) -> list[str]:
        return [m.name for m in self.config.modules]

    def module_index(self, ref: str) -> int:
        """`name:tag` -> index of `name` in the market's module list (the on-chain `Terms.module`)."""
        name = ref.partition(":")[0]
        names = self.module_names
        if name not in names:
            raise ValueError(f"module {ref!r} is not traded on this market: allowed one of {names}")
        return names.index(name)

    def instructions(self, module: int) -> int:
        return int(self.config.modules[module].instructions)

    def compute_cost(self, module: int) -> int:
        return int(self.config.modules[module].compute_cost)

    @property
    def n_agents(self) -> int:
        c = self.config
        return c.n_clients + c.n_nodes + c.n_mediators


def empty_context(n_accounts: int) -> RoundContext:
    z = np.zeros(n_accounts, dtype=np.int64)
    return RoundContext(0, z, z, {k: z.copy() for k in COUNTERS})


def deal_of_one(
    t: Terms, market: LiveMarket, client: int, node: int, stack: MechanismStack, u: Sequence[float]
) -> DealBatch:
    """The live deal `t` as the twin's batch of one (client / node = twin account ids), terms set by the stack."""
    return job_batch([t], market, client, [node], stack, np.reshape(np.asarray(u, dtype=np.float64), (1, -1)))


def job_batch(
    ts: Sequence[Terms], market: LiveMarket, client: int, nodes: Sequence[int], stack: MechanismStack, u: np.ndarray
) -> DealBatch:
    """One job's live deals `ts` (its replicas, in replica order; nodes = their twin account ids) as the twin's
    batch of one group, terms set by the stack; `u` holds each deal's uniform draws (a row per deal)."""
    n = len(ts)
    col = lambda f: np.array([f(t) for t in ts], dtype=np.int64)  # noqa: E731
    d = DealBatch(
        deal_id=col(lambda t: t.nonce),
        client=np.full(n, client, dtype=np.int64),
        node=np.asarray(nodes, dtype=np.int64),
        job=np.zeros(n, dtype=np.int64),
        module=col(lambda t: t.module),
        price=col(lambda t: t.price),
        instructions=col(lambda t: t.instructions),
        job_cost=col(lambda t: t.price * t.instructions),
        compute_cost=col(lambda t: market.compute_cost(t.module)),
        mutual_mediators=col(lambda t: t.mediators),
        mediator_accounts=np.arange(market.config.n_mediators, dtype=np.int64)
        + market.config.n_clients
        + market.config.n_nodes,
        mediator_threshold=np.zeros(market.config.n_mediators, dtype=np.int64),
        pool_base=market.n_agents,
        context=empty_context(market.n_agents + 8),
        replica=np.arange(n, dtype=np.int64),
        extra={"u": np.asarray(u, dtype=np.float64).reshape(n, -1)},
    )
    stack.set_terms(d)
    return d


def stack_mediator(deal: DealBatch, stack: MechanismStack) -> int:
    """Registry index of the mediator the stack's `select_mediators` draws for this deal were it checked
    (NO_MEDIATOR when none both parties trust)."""
    deal.judged = np.ones(1, dtype=bool)
    deal.checked = np.ones(1, dtype=bool)
    stack.select_mediators(deal)
    return int(deal.mediator[0])


def job_checks(
    deals: DealBatch, stack: MechanismStack, check_rate: float, posted: Sequence[bytes | None]
) -> np.ndarray:
    """The stack's `choose_checks` for one job's replicas (`deals`, from `job_batch`) given the result each node
    posted (None: none yet): per replica, whether the client checks it. Replicas whose results differ are checked
    (replication); each judged result is also checked at the client's committed rate (a mechanism such as
    check_policy may have set the rate as a term already; its rate then wins, as in the twin)."""
    if "check_rate" not in _set_by_terms(stack):
        deals.check_rate = np.full(len(deals), check_rate)
    distinct = sorted({p for p in posted if p is not None})
    submitted = np.array([p is not None for p in posted], dtype=bool)
    deals.submitted = submitted
    deals.judged = submitted.copy()
    # the client cannot tell which result is correct: each distinct posted result gets its own id (never CORRECT
    # or the cartel's), so only their agreement counts
    deals.result = np.array([0 if p is None else 2 + distinct.index(p) for p in posted], dtype=np.int64)
    deals.checked = np.zeros(len(deals), dtype=bool)
    stack.choose_checks(deals)
    return deals.checked & submitted


def _set_by_terms(stack: MechanismStack) -> set[str]:
    cols: set[str] = set()
    for m in stack.runners("set_terms"):
        c = m.columns.get("set_terms")
        if c is not None:
            cols |= set(c.sets) | set(c.updates)
    return cols


def rank_offers(stack: MechanismStack, nodes: np.ndarray, prices: np.ndarray, n_accounts: int) -> np.ndarray:
    """The stack's effective price per resource offer (-1 = excluded), on the public record's empty context."""
    return stack.rank_offers(nodes.astype(np.int64), prices.astype(np.int64), empty_context(n_accounts + 8))


class Policy(Protocol):
    """One agent's behaviour: fills its row of the role's action arrays (a scripted `Strategy` or a learned one)."""

    def act(self, rows: np.ndarray, out: Any, round_index: int) -> None: ...


def strategy(role: str, entry: Mapping[str, Any], path: str) -> Strategy:
    """One scripted strategy from `{strategy: name, <params>}` (role: clients | nodes | mediators)."""
    (group,) = parse_groups([entry], ROLE_OF_GROUP[role], path)
    return group.strategy


def node_plan(policy: Policy, round_index: int) -> NodeActions:
    """The node's action row for its next deal (cheat rate, bribe, whether it waits to post after its replicas)."""
    out = NodeActions.default(1)
    policy.act(np.zeros(1, dtype=np.int64), out, round_index)
    return out


def node_actions(policy: Policy, round_index: int) -> tuple[float, int]:
    """(cheat rate, bribe) this node commits to for its next deal."""
    out = node_plan(policy, round_index)
    return float(out.cheat_rate[0]), int(out.bribe[0])


def client_actions(policy: Policy, round_index: int) -> float:
    out = ClientActions.default(1)
    policy.act(np.zeros(1, dtype=np.int64), out, round_index)
    return float(out.check_rate[0])


def mediator_actions(policy: Policy, round_index: int) -> tuple[int, bool]:
    """(smallest bribe the mediator takes, NEVER = incorruptible; whether it proves a bribe it took when the mechanism
    pays for the proof)."""
    out = MediatorActions.default(1)
    policy.act(np.zeros(1, dtype=np.int64), out, round_index)
    return int(out.bribe_threshold[0]), bool(out.report[0])


def mediator_threshold(policy: Policy, round_index: int) -> int:
    """Smallest bribe the mediator takes (NEVER = incorruptible)."""
    return mediator_actions(policy, round_index)[0]


__all__ = ["NEVER", "NO_MEDIATOR", "LiveMarket", "deal_of_one", "job_batch", "job_checks", "rank_offers", "strategy"]
