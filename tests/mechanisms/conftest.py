"""Builders for mechanism tests: an engine over any mechanism stack, and a runner that checks money every round."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from mechanisms import MarketFacts, MechanismStack
from mechanisms.actions import Actions
from mechanisms.deals import CORRECT, FIRST_OWN_FAKE, FORCED_FAKE, NEVER, DealBatch, RoundContext
from mechanisms.protocol import DealState
from mechanisms.transfers import Transfers
from sim.engine import BatchEngine, RoundResult
from sim.ledger import Ledger
from sim.lifecycle import resolve
from sim.public_record import COUNTERS
from twin.build import build

PAID = (DealState.ResultsAccepted, DealState.TimeoutJudgeResults, DealState.MediationAccepted)

#: lilypad_v2 with collateral and a fee, the base the single-mechanism tests stack on
LILYPAD_BASE = {
    "name": "lilypad_v2",
    "results_multiplier_bps": 20_000,
    "payment_collateral_bps": 15_000,
    "submit_timeout_collateral": 7,
    "judge_timeout_collateral": 5,
    "mediation_fee": 20,
}


@dataclass
class Outcome:
    """What a few rounds produced, summed."""

    engine: BatchEngine
    results: list[RoundResult] = field(default_factory=list)

    def count(self, state: DealState) -> int:
        return sum(int((r.deals.state == state).sum()) for r in self.results)

    @property
    def deals(self) -> int:
        return sum(len(r.deals) for r in self.results)

    @property
    def fake_accepted(self) -> int:
        return sum(int((np.isin(r.deals.state, PAID) & r.deals.wrong()).sum()) for r in self.results)

    def balance(self, account: int | np.ndarray) -> np.ndarray:
        return self.engine.ledger.balance[account]


def run_stack(
    mechanism: Mapping[str, Any],
    population: Mapping[str, Any],
    market: Mapping[str, Any] | None = None,
    rounds: int = 3,
    seed: int = 7,
    tweak: Callable[[Actions], None] | None = None,
) -> Outcome:
    """Run `rounds` rounds of a market under `mechanism` (the Hydra mapping form), asserting after every round
    that value is conserved, nothing is negative and escrow holds only standing stakes."""
    market = {"n_clients": 60, "n_nodes": 120, "n_mediators": 5, "mediator_balance": 100_000, **(market or {})}
    sim = build({"seed": seed, "market": market, "mechanism": mechanism, "agents": population})
    engine, pop = sim.engine, sim.population
    total, standing = engine.ledger.total(), engine.ledger.escrow.copy()
    out = Outcome(engine)
    for i in range(rounds):
        actions = pop.actions(i)
        if tweak is not None:
            tweak(actions)
        out.results.append(engine.step(actions))
        assert engine.ledger.total() == total
        assert (engine.ledger.balance >= 0).all() and (engine.ledger.escrow >= 0).all()
        assert (engine.ledger.escrow <= standing).all()
    return out


@pytest.fixture(scope="session")
def stack_run() -> Callable[..., Outcome]:
    """`stack_run(mechanism, population, market=None, rounds=3, seed=7, tweak=None) -> Outcome`."""
    return run_stack


# ----------------------------------------------------------------------------------- hand-built deals, exact money

POOLS = ("burn", "protocol", "compute", "jackpot")  # mechanisms.money.Pool order
#: Decisions that walk a deal to the end of each phase (`HandMarket.deals(phase=...)`).
PHASES: dict[str, dict[str, Any]] = {"none": {}}
PHASES["agreed"] = {"client_agreed": True, "node_agreed": True}
PHASES["submitted"] = {**PHASES["agreed"], "submitted": True}
PHASES["judged"] = {**PHASES["submitted"], "judged": True}
PHASES["checked"] = {**PHASES["judged"], "checked": True, "mediator": 1}
PHASES["mediated"] = {**PHASES["checked"], "mediated": True}


@dataclass
class Settled:
    transfers: Any  # mechanisms.transfers.Transfers
    delta: dict[str, int]  # nonzero balance changes by account name


class HandMarket:
    """A tiny account layout for exact settlement tests: clients, nodes, mediators, stakers, then the pools.

    Agents start with `balance` each, pools as given. Deals are built by hand (`deals`), their decisions set by
    phase, then judged, walked to their final state and settled by the stack onto one `Ledger` (`settle`), which is
    checked for conservation and solvency.
    """

    def __init__(
        self,
        n_clients: int = 1,
        n_nodes: int = 1,
        n_mediators: int = 2,
        n_stakers: int = 0,
        balance: int = 1000,
        pools: Mapping[str, int] | None = None,
    ) -> None:
        self.sizes = {"client": n_clients, "node": n_nodes, "mediator": n_mediators, "staker": n_stakers}
        self.names = [f"{role}{i}" for role, n in self.sizes.items() for i in range(n)] + list(POOLS)
        self.pool_base = len(self.names) - len(POOLS)
        start = np.array([balance] * self.pool_base + [(pools or {}).get(p, 0) for p in POOLS], dtype=np.int64)
        self.ledger = Ledger(start)
        self.facts = MarketFacts(
            n_mediators,
            max_compute_cost=12,
            max_job_cost=1000,
            n_clients=n_clients,
            n_nodes=n_nodes,
            n_stakers=n_stakers,
            mediator_balance=balance,
            staker_balance=balance,
        )

    def account(self, name: str) -> int:
        return self.names.index(name)

    def stack(self, *entries: Mapping[str, Any]) -> MechanismStack:
        """A validated stack (config entries as in `MechanismStack.from_config`) with its setup applied."""
        stack = MechanismStack.from_config(entries)
        stack.validate(self.facts)
        for t in stack.setup(self.facts):
            self.ledger.apply(t)
        return stack

    def context(self, counters: Mapping[str, Any] | None = None) -> RoundContext:
        """The ledger as it stands now and the given public-record counters (per account name; others 0)."""
        full = {k: np.zeros(len(self.names), dtype=np.int64) for k in COUNTERS}
        for key, per_name in (counters or {}).items():
            for name, value in per_name.items():
                full[key][self.account(name)] = value
        return RoundContext(0, self.ledger.balance.copy(), self.ledger.escrow.copy(), full)

    def deals(
        self,
        stack: MechanismStack,
        client: Any = 0,
        node: Any = 0,
        job_cost: Any = 30,
        compute_cost: Any = 12,
        phase: str | list[str] = "none",
        u: Any = 0.5,
        counters: Mapping[str, Any] | None = None,
        **columns: Any,
    ) -> DealBatch:
        """Deals (client / node indices within their roles, one per list entry), terms set by `stack`, then the
        decisions of `phase` and `columns` (scalars or one value per deal). `u` (one value, or one per deal) fills
        every mechanism uniform of the deal."""
        client, node = np.atleast_1d(client), np.atleast_1d(node)
        n = max(len(client), len(node), len(np.atleast_1d(job_cost)), len(np.atleast_1d(u)))

        def per_deal(v: Any) -> np.ndarray:
            return np.broadcast_to(np.asarray(v), (n,)).copy()

        deals = DealBatch(
            deal_id=np.arange(n, dtype=np.int64),
            client=per_deal(client).astype(np.int64),
            node=self.sizes["client"] + per_deal(node).astype(np.int64),
            job=np.arange(n, dtype=np.int64),
            module=np.zeros(n, dtype=np.int64),
            price=per_deal(job_cost),
            instructions=np.ones(n, dtype=np.int64),
            job_cost=per_deal(job_cost).astype(np.int64),
            compute_cost=per_deal(compute_cost).astype(np.int64),
            mutual_mediators=np.full(n, (1 << self.sizes["mediator"]) - 1),
            mediator_accounts=self.sizes["client"] + self.sizes["node"] + np.arange(self.sizes["mediator"]),
            mediator_threshold=np.full(self.sizes["mediator"], NEVER, dtype=np.int64),
            pool_base=self.pool_base,
            context=self.context(counters),
            extra={"u": np.repeat(per_deal(u).astype(float)[:, None], stack.draws_per_deal, axis=1)},
        )
        stack.set_terms(deals)
        phases = [phase] * n if isinstance(phase, str) else phase
        for i, p in enumerate(phases):
            for name, value in PHASES[p].items():
                getattr(deals, name)[i] = value
        for name, value in columns.items():
            setattr(deals, name, per_deal(value).astype(getattr(deals, name).dtype))
        deals.result = np.where(deals.cheated, FIRST_OWN_FAKE + deals.deal_id, CORRECT)
        deals.result = np.where(deals.forced_error & deals.submitted, FORCED_FAKE, deals.result)
        return deals

    def settle(self, stack: MechanismStack, deals: DealBatch) -> Settled:
        """Judge, walk to the final states, settle and apply; value is conserved and nothing goes negative."""
        before, total = self.ledger.balance.copy(), self.ledger.total()
        stack.judge(deals)
        resolve(deals)
        transfers = Transfers.concat([stack.settle(deals), stack.settle_round(deals)])
        self.ledger.apply(transfers)
        assert self.ledger.total() == total
        assert (self.ledger.balance >= 0).all() and (self.ledger.escrow >= 0).all()
        delta = {self.names[i]: int(d) for i, d in enumerate(self.ledger.balance - before) if d != 0}
        return Settled(transfers, delta)


@pytest.fixture
def hand() -> Callable[..., HandMarket]:
    """`hand(n_clients=1, n_nodes=1, n_mediators=2, n_stakers=0, balance=1000, pools=None) -> HandMarket`."""
    return HandMarket
