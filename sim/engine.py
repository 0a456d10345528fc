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
from sim.public_record import PublicRecord, read_only
from sim.solver import TypeTable, arrival_order, match


@dataclass(frozen=True)
class RoundResult:
    round: int
    deals: DealBatch
    visited: np.ndarray  # bit mask of states visited, per deal
    transfers: Transfers
    posted_jobs: int
    posted_offers: int


def new_deals(
    market: Market,
    draws: RoundDraws,
    client: np.ndarray,
    node: np.ndarray,
    price: np.ndarray,
    first_id: int,
    context: RoundContext | None = None,
    replica: np.ndarray | None = None,
) -> DealBatch:
    """Deals between clients and nodes (indices within their roles) at the matched prices, terms still empty.

    Replica r of client c's job reads draw row c * replicas + r and belongs to group c."""
    client = np.asarray(client, dtype=np.int64)
    module = draws.job_module[client]
    instructions = market.module_instructions[module]
    replicas = len(draws.u) // len(draws.client_active)
    replica = np.zeros(len(client), dtype=np.int64) if replica is None else np.asarray(replica, dtype=np.int64)
    row = client * replicas + replica if replicas > 1 else client
    return DealBatch(
        deal_id=np.arange(first_id, first_id + len(client), dtype=np.int64),
        client=client,
        node=market.facts.first_node + node,
        job=row,
        module=module,
        price=np.asarray(price, dtype=np.int64),
        instructions=instructions,
        job_cost=price * instructions,
        compute_cost=market.module_compute_cost[module],
        mutual_mediators=market.client_trust[client] & market.node_trust[node],
        mediator_accounts=market.facts.mediator_accounts(),
        mediator_threshold=np.zeros(market.config.n_mediators, dtype=np.int64),  # set by apply_actions
        context=context,
        pool_base=market.facts.pool_base,
        group=client,
        replica=replica,
        extra={"u": np.take(draws.u, row, axis=0)[:, N_FIXED_U:]},
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
        # the hooks read the state as the round starts; the ledger and record change only after the last hook
        context = RoundContext(
            self.round, read_only(self.ledger.balance), read_only(self.ledger.escrow), self.record.view()
        )
        deals, posted_jobs, posted_offers = self.match(draws, context)
        apply_actions(deals, actions, self.market)
        self.stack.set_terms(deals)
        decide(deals, self.ledger.balance, actions, draws, self.market, self.stack)
        visited = resolve(deals)
        transfers = Transfers.concat([self.stack.settle(deals), self.stack.settle_round(deals)])
        self.stack.after_round(deals, transfers)
        votes = self.stack.public_votes(deals)
        self.ledger.apply(transfers)
        self.record.update(deals)
        self.events.record(self.round, deals.deal_id, visited, transfers, votes)
        result = RoundResult(self.round, deals, visited, transfers, posted_jobs, posted_offers)
        self.round += 1
        self.next_deal_id += len(deals)
        return result

    def match(self, draws: RoundDraws, context: RoundContext) -> tuple[DealBatch, int, int]:
        """The round's deals (ids in order of job age), and how many jobs and resource offers were posted; the
        order book is dropped once matched."""
        jobs = JobOffers.post(self.market, draws, self.stack.replicas)
        offers = ResourceOffers.post(self.market, draws)
        nodes = self.market.facts.first_node + offers.node
        offers = offers.ranked(self.stack.rank_offers(nodes, offers.price, context))
        by_age = arrival_order(jobs.arrival)
        matched = match(jobs, offers, self.types, by_age)
        j = by_age[matched[by_age] >= 0]  # matched jobs, oldest first: deal ids follow job age
        r = matched[j]
        deals = new_deals(
            self.market,
            draws,
            jobs.client[j],
            offers.node[r],
            offers.price[r],
            self.next_deal_id,
            context,
            jobs.replica[j],
        )
        return deals, len(jobs.client), len(offers.node)
