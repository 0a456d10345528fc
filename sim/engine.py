"""The batch engine: a round matches and settles all its deals as arrays (structure of arrays)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.actions import Actions
from mechanisms.base import MarketFacts, MechanismStack
from mechanisms.deals import DealBatch
from mechanisms.transfers import Transfers
from sim.draws import N_FIXED_U, DrawSource, RoundDraws
from sim.ledger import EventLog, Ledger
from sim.lifecycle import decide, resolve
from sim.market import Market
from sim.offers import JobOffers, ResourceOffers
from sim.solver import TypeTable, match


@dataclass(frozen=True)
class RoundResult:
    round: int
    deals: DealBatch
    visited: np.ndarray  # bit mask of states visited, per deal
    transfers: Transfers
    posted_jobs: int
    posted_offers: int


def new_deals(market: Market, draws: RoundDraws, actions: Actions, client: np.ndarray, node: np.ndarray,
              price: np.ndarray, first_id: int) -> DealBatch:
    """Deals between clients and nodes (indices within their roles) at the matched prices, terms still empty."""
    module = draws.job_module[client]
    instructions = market.module_instructions[module]
    return DealBatch(
        deal_id=first_id + np.arange(len(client), dtype=np.int64),
        client=client.astype(np.int64),
        node=market.first_node + node.astype(np.int64),
        job=client.astype(np.int64),
        module=module,
        price=price.astype(np.int64),
        instructions=instructions,
        job_cost=price * instructions,
        compute_cost=market.module_compute_cost[module],
        mutual_mediators=market.client_trust[client] & market.node_trust[node],
        mediator_accounts=market.mediator_accounts(),
        mediator_threshold=actions.mediators.bribe_threshold,
        pool_base=market.pool_base,
        extra={"u": draws.u[client, N_FIXED_U:]},
    )


def market_facts(market: Market) -> MarketFacts:
    return MarketFacts(market.config.n_mediators, market.max_compute_cost(), market.max_job_cost())


class BatchEngine:
    """Runs rounds on one ledger. Every round's randomness comes from `source` (one Generator)."""

    def __init__(self, market: Market, stack: MechanismStack, source: DrawSource) -> None:
        stack.validate(market_facts(market))
        self.market, self.stack, self.source = market, stack, source
        self.types = TypeTable.build(market)
        self.ledger = Ledger(market.initial_balances())
        self.events = EventLog()
        self.round = 0
        self.next_deal_id = 0

    def step(self, actions: Actions, draws: RoundDraws | None = None) -> RoundResult:
        draws = draws if draws is not None else self.source.next_round()
        jobs, offers = JobOffers.post(self.market, draws), ResourceOffers.post(self.market, draws)
        matched = match(jobs, offers, self.types)
        by_age = np.argsort(jobs.arrival, kind="stable")
        j = by_age[matched[by_age] >= 0]  # matched jobs, oldest first: deal ids follow job age
        r = matched[j]
        deals = new_deals(self.market, draws, actions, jobs.client[j], offers.node[r], offers.price[r],
                          self.next_deal_id)
        self.stack.set_terms(deals)
        decide(deals, self.ledger.balance, actions, draws, self.market, self.stack)
        visited = resolve(deals)
        transfers = self.stack.settle(deals)
        self.ledger.apply(transfers)
        self.events.record(self.round, deals.deal_id, visited, transfers)
        result = RoundResult(self.round, deals, visited, transfers, len(jobs.client), len(offers.node))
        self.round += 1
        self.next_deal_id += len(deals)
        return result
