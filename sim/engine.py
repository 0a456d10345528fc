"""The batch engine: a round matches and settles all its deals as arrays (structure of arrays)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mechanisms.actions import Actions
from mechanisms.base import MechanismStack
from mechanisms.deals import DealBatch, RoundContext
from mechanisms.transfers import Transfers
from sim.draws import N_FIXED_U, DrawSource, RoundDraws
from sim.ledger import EventLog, Ledger
from sim.lifecycle import apply_actions, decide, resolve
from sim.market import Market
from sim.offers import JobOffers, ResourceOffers
from sim.public_record import PublicRecord
from sim.solver import TypeTable, match


@dataclass(frozen=True)
class RoundResult:
    round: int
    deals: DealBatch
    visited: np.ndarray  # bit mask of states visited, per deal
    transfers: Transfers
    posted_jobs: int
    posted_offers: int


def new_deals(market: Market, draws: RoundDraws, client: np.ndarray, node: np.ndarray, price: np.ndarray,
              first_id: int, context: RoundContext | None = None, replica: np.ndarray | None = None) -> DealBatch:
    """Deals between clients and nodes (indices within their roles) at the matched prices, terms still empty.

    Replica r of client c's job reads draw row c * replicas + r and belongs to group c."""
    module = draws.job_module[client]
    instructions = market.module_instructions[module]
    replicas = len(draws.u) // len(draws.client_active)
    replica = np.zeros(len(client), dtype=np.int64) if replica is None else replica.astype(np.int64)
    row = client.astype(np.int64) * replicas + replica
    return DealBatch(
        deal_id=first_id + np.arange(len(client), dtype=np.int64),
        client=client.astype(np.int64),
        node=market.facts.first_node + node.astype(np.int64),
        job=row,
        module=module,
        price=price.astype(np.int64),
        instructions=instructions,
        job_cost=price * instructions,
        compute_cost=market.module_compute_cost[module],
        mutual_mediators=market.client_trust[client] & market.node_trust[node],
        mediator_accounts=market.facts.mediator_accounts(),
        mediator_threshold=np.zeros(market.config.n_mediators, dtype=np.int64),  # set by apply_actions
        context=context,
        pool_base=market.facts.pool_base,
        group=client.astype(np.int64),
        replica=replica,
        extra={"u": draws.u[row, N_FIXED_U:]},
    )


class BatchEngine:
    """Runs rounds on one ledger. Every round's randomness comes from `source` (one Generator)."""

    def __init__(self, market: Market, stack: MechanismStack, source: DrawSource) -> None:
        facts = market.facts
        stack.validate(facts)
        self.market, self.stack, self.source = market, stack, source
        self.types = TypeTable.build(market)
        self.ledger = Ledger(facts.initial_balances())
        self.record = PublicRecord(facts.n_accounts)
        self.events = EventLog()
        for transfers in stack.setup(facts):
            self.ledger.apply(transfers)
            self.events.record(-1, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), transfers)
        self.round = 0
        self.next_deal_id = 0

    def step(self, actions: Actions, draws: RoundDraws | None = None) -> RoundResult:
        draws = draws if draws is not None else self.source.next_round()
        self.record.whitewash(self.market.facts.first_node + np.flatnonzero(actions.nodes.whitewash))
        context = RoundContext(self.round, self.ledger.balance.copy(), self.ledger.escrow.copy(),
                               self.record.snapshot())
        jobs = JobOffers.post(self.market, draws, self.stack.replicas)
        offers = ResourceOffers.post(self.market, draws)
        nodes = self.market.facts.first_node + offers.node
        offers = offers.ranked(self.stack.rank_offers(nodes, offers.price, context))
        matched = match(jobs, offers, self.types)
        by_age = np.argsort(jobs.arrival, kind="stable")
        j = by_age[matched[by_age] >= 0]  # matched jobs, oldest first: deal ids follow job age
        r = matched[j]
        deals = new_deals(self.market, draws, jobs.client[j], offers.node[r], offers.price[r], self.next_deal_id,
                          context, jobs.replica[j])
        apply_actions(deals, actions, self.market)
        self.stack.set_terms(deals)
        decide(deals, self.ledger.balance, actions, draws, self.market, self.stack)
        visited = resolve(deals)
        transfers = Transfers.concat([self.stack.settle(deals), self.stack.settle_round(deals)])
        self.ledger.apply(transfers)
        self.stack.after_round(deals, transfers)
        self.record.update(deals)
        self.events.record(self.round, deals.deal_id, visited, transfers, self.stack.public_votes(deals))
        result = RoundResult(self.round, deals, visited, transfers, len(jobs.client), len(offers.node))
        self.round += 1
        self.next_deal_id += len(deals)
        return result
