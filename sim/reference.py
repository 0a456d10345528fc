"""The reference model: the market as a plain Mesa model, one agent per participant and one job at a time.

It exists to check the batch engine (`sim.engine.BatchEngine`): both consume the same `RoundDraws` and must end
every round with the same balances, escrows, deal states and transfers. Only what the batch engine does with
arrays is re-implemented here in plain Python (the order book, the solver, the agents' decisions, the walk through
the state machine and the ledger); the mechanism rules (offer ranking, terms, checks, mediators, verdicts,
settlement) are the same `MechanismStack` hooks, called on the deals of one job: a batch of one deal, or of the
job's replicas where a mechanism buys several (replica rules compare them). Copying the round's actions onto
deals (`apply_actions`) and the public record (`PublicRecord`) are shared too.

Jobs are settled one after another, oldest first. The batch engine decides a whole round against the balances at
its start, and so do the agents here (`opening_balance`): a client buying replicas commits to all of them at
once. Mechanism state (`after_round`) is updated once per round from all of the round's deals, as in the batch
engine.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields

import mesa
import numpy as np

from mechanisms.actions import Actions
from mechanisms.base import MechanismStack
from mechanisms.deals import CARTEL_FAKE, CORRECT, FIRST_OWN_FAKE, FORCED_FAKE, DealBatch, RoundContext
from mechanisms.money import Pool
from mechanisms.protocol import TERMINAL, TRANSITIONS, DealState, Direction, IllegalTransition, Reason, Step
from mechanisms.transfers import Transfers
from sim.draws import E, RoundDraws, U
from sim.engine import RoundResult, new_deals
from sim.ledger import InsolventTransfer
from sim.lifecycle import apply_actions
from sim.market import Market
from sim.offers import JobOffers, ResourceOffers
from sim.public_record import PublicRecord
from sim.solver import match_reference

S = DealState


class AccountAgent(mesa.Agent):
    """A market participant with money: a free balance and an escrow, as Python ints (exact, unbounded)."""

    def __init__(self, model: ReferenceModel, index: int, account: int, balance: int) -> None:
        super().__init__(model)
        self.index = index  # position within the role
        self.account = account  # position in the ledger (clients, nodes, mediators, stakers, pools)
        self.balance = balance
        self.escrow = 0
        self.opening_balance = balance  # free balance at the start of the round

    def can_afford(self, amount: int) -> bool:
        """Whether the agent commits to a deal's exposure: judged on the balance it opened the round with, as a
        client buying several replicas commits to all of them at once."""
        return self.opening_balance >= amount


class ClientAgent(AccountAgent):
    """A job creator; posts at most one job a round (when its draw says it is active), bought as `replicas` deals."""

    def job_offers(self, draws: RoundDraws, replicas: int) -> list[dict]:
        """This client's job offer once per replica (`JobOffers` columns)."""
        m, i = self.model.market, self.index
        module = int(draws.job_module[i])
        job = dict(
            client=i,
            module=module,
            needs=m.module_needs[module],
            fixed=bool(m.client_fixed[i]),
            max_price=int(m.client_max_price[i]),
            trust=int(m.client_trust[i]),
            jtype=module * len(m.trust_masks) + int(m.client_trust_code[i]),
        )
        arrival = int(draws.job_arrival[i])
        return [dict(job, arrival=arrival * replicas + r, replica=r, row=i * replicas + r) for r in range(replicas)]


class NodeAgent(AccountAgent):
    """A resource provider; posts at most one resource offer a round, unless the mechanisms exclude it."""

    def resource_offer(self, draws: RoundDraws, context: RoundContext) -> dict | None:
        """This node's resource offer (`ResourceOffers` columns), ranked by the stack; None if it is excluded."""
        m, i = self.model.market, self.index
        price = int(m.node_price[i])
        rank = int(self.model.stack.rank_offers(np.array([self.account]), np.array([price]), context)[0])
        if rank < 0:
            return None
        return dict(
            node=i,
            capacity=m.node_capacity[i],
            price=price,
            allow=int(m.node_allow[i]),
            trust=int(m.node_trust[i]),
            arrival=int(draws.node_arrival[i]),
            rtype=int(m.node_type[i]),
            rank=rank,
        )


class MediatorAgent(AccountAgent):
    """Re-runs checked jobs; how it votes is the mechanisms' `judge` rule, given its actions this round."""


class StakerAgent(AccountAgent):
    """A third party whose money may stand behind nodes; its escrows are the mechanisms' (setup, settle)."""


@dataclass
class PoolAccount:
    """An account no agent owns (burn, protocol, compute, jackpot): held by the model, not a Mesa agent."""

    pool: Pool
    account: int
    balance: int = 0
    escrow: int = 0


@dataclass(frozen=True)
class DealOutcome:
    """What one deal came to: who, which final state, which result, and how much moved for each reason."""

    deal_id: int
    client: int  # account id
    node: int  # account id
    mediator: int  # mediator index, or NO_MEDIATOR
    state: DealState
    cheated: bool
    result: int  # CORRECT or a fake result's id
    amounts: tuple[int, ...]  # sum of transfer amounts per `Reason`, all directions

    @property
    def fake_accepted(self) -> bool:
        """The node cheated and was paid (the definition of the deal table's `fake_accepted`)."""
        return self.cheated and self.amounts[Reason.JobPayment] > 0


@dataclass(frozen=True)
class ReferenceRound:
    round: int
    outcomes: list[DealOutcome]  # in deal id order
    transfers: Transfers  # the round's transfers, job after job (each job's in step order)
    posted_jobs: int
    posted_offers: int


def in_time(e: float, mean: float, deadline: int) -> bool:
    """A party answers in time iff its response time (a standard exponential times its mean) is within the
    deadline."""
    return e * mean <= deadline


def walk(deals: DealBatch, i: int) -> list[DealState]:
    """The states deal i visits, from its decisions, each move checked against the protocol's table."""
    path = [S.DealNegotiating]

    def move(to: DealState) -> None:
        if to not in TRANSITIONS.get(path[-1], ()):
            raise IllegalTransition(f"illegal deal transition {path[-1].name} -> {to.name}")
        path.append(to)

    if not (deals.client_agreed[i] and deals.node_agreed[i]):
        move(S.TimeoutAgree)
        return path
    move(S.DealAgreed)
    if not deals.submitted[i]:
        move(S.TimeoutSubmitResults)
        return path
    move(S.ResultsSubmitted)
    if not deals.judged[i]:
        move(S.TimeoutJudgeResults)
    elif not deals.checked[i]:
        move(S.ResultsAccepted)
    else:
        move(S.ResultsChecked)
        if not deals.mediated[i]:
            move(S.TimeoutMediateResults)
        elif deals.verdict_accept[i]:
            move(S.MediationAccepted)
        else:
            move(S.MediationRejected)
    if path[-1] not in TERMINAL:
        raise IllegalTransition(f"deal {int(deals.deal_id[i])} stopped in non-terminal {path[-1].name}")
    return path


def stack_offers(cls: type, offers: list[dict]) -> JobOffers | ResourceOffers:
    """Offers posted one by one as the solver's structure of arrays."""
    return cls(**{f.name: np.array([o[f.name] for o in offers]) for f in fields(cls)})


def outcomes_of(result: RoundResult) -> list[DealOutcome]:
    """The batch engine's round in the reference's terms, for deal-by-deal comparison."""
    d = result.deals
    sums = result.transfers.reason_sums(d.deal_id)
    return [
        DealOutcome(
            int(d.deal_id[i]),
            int(d.client[i]),
            int(d.node[i]),
            int(d.mediator[i]),
            DealState(int(d.state[i])),
            bool(d.cheated[i]),
            int(d.result[i]),
            tuple(sums[i].tolist()),
        )
        for i in range(len(d))
    ]


class ReferenceModel(mesa.Model):
    """The market as a Mesa model. Same inputs as `BatchEngine` (a `Market`, a `MechanismStack`); each round is
    driven by `step_round(actions, draws)` with the round's `RoundDraws`, so the model draws nothing itself."""

    def __init__(self, market: Market, stack: MechanismStack) -> None:
        super().__init__(seed=0)  # Mesa's own generators are never used: all randomness arrives in RoundDraws
        facts = market.facts
        stack.validate(facts)
        self.market, self.stack = market, stack
        c = market.config
        self.clients = [ClientAgent(self, i, i, c.client_balance) for i in range(c.n_clients)]
        self.nodes = [NodeAgent(self, i, facts.first_node + i, c.node_balance) for i in range(c.n_nodes)]
        self.mediators = [
            MediatorAgent(self, i, facts.first_mediator + i, c.mediator_balance) for i in range(c.n_mediators)
        ]
        self.stakers = [StakerAgent(self, i, facts.first_staker + i, c.staker_balance) for i in range(c.n_stakers)]
        self.pools = [PoolAccount(p, facts.pool_base + p) for p in Pool]
        self.accounts: list[AccountAgent | PoolAccount] = [
            *self.clients,
            *self.nodes,
            *self.mediators,
            *self.stakers,
            *self.pools,
        ]
        self.record = PublicRecord(facts.n_accounts)
        self.round = 0
        self.next_deal_id = 0
        self.deals_settled = 0
        self.fake_results_accepted = 0
        self.rounds: list[ReferenceRound] = []
        self.datacollector = mesa.DataCollector(
            model_reporters={
                "total_value": lambda m: m.total_value(),
                "deals": "deals_settled",
                "fake_results_accepted": "fake_results_accepted",
            },
            agent_reporters={"balance": "balance"},
        )
        for transfers in stack.setup(facts):
            self.apply(transfers)

    # --- the ledger in account order, for comparison with `Ledger.balance` / `Ledger.escrow`
    def balances(self) -> np.ndarray:
        return np.array([a.balance for a in self.accounts], dtype=np.int64)

    def escrows(self) -> np.ndarray:
        return np.array([a.escrow for a in self.accounts], dtype=np.int64)

    def total_value(self) -> int:
        return sum(a.balance + a.escrow for a in self.accounts)

    # --- a round
    def step_round(self, actions: Actions, draws: RoundDraws) -> ReferenceRound:
        """Run one round on `draws` and return its deals' outcomes."""
        self.step(actions, draws)  # Mesa's wrapper counts `self.steps`, then runs `step` below
        return self.rounds[-1]

    def step(self, actions: Actions, draws: RoundDraws) -> None:  # type: ignore[override]
        for node in self.nodes:
            if actions.nodes.whitewash[node.index]:
                self.record.whitewash(np.array([node.account]))
        for agent in self.agents:
            agent.opening_balance = agent.balance
        context = RoundContext(self.round, self.balances(), self.escrows(), self.record.snapshot())
        replicas = self.stack.replicas
        jobs = stack_offers(
            JobOffers, [o for a in self.clients if draws.client_active[a.index] for o in a.job_offers(draws, replicas)]
        )
        posted = [a.resource_offer(draws, context) for a in self.nodes if draws.node_active[a.index]]
        offers = stack_offers(ResourceOffers, [o for o in posted if o is not None])
        matched = match_reference(jobs, offers)
        by_age = [j for j in sorted(range(len(jobs.client)), key=lambda j: jobs.arrival[j]) if matched[j] >= 0]
        deals, transfers = [], []
        for client_index, job_rows in itertools.groupby(by_age, key=lambda j: jobs.client[j]):  # a job's replicas
            rows = list(job_rows)
            sellers = [
                (self.nodes[offers.node[matched[j]]], int(offers.price[matched[j]]), int(jobs.replica[j])) for j in rows
            ]
            job_deals, t = self.run_job(self.clients[client_index], sellers, actions, draws, context)
            deals.append(job_deals)
            transfers.append(t)
        if deals:
            whole_round = DealBatch.concat(deals)
            transfers.append(self.stack.settle_round(whole_round))
            self.apply(transfers[-1])
        round_transfers = Transfers.concat(transfers)
        rows = [(d, i) for d in deals for i in range(len(d))]
        sums = round_transfers.reason_sums(np.array([d.deal_id[i] for d, i in rows], dtype=np.int64))
        outcomes = [self.outcome(d, i, tuple(s)) for (d, i), s in zip(rows, sums.tolist(), strict=True)]
        if deals:
            self.stack.after_round(whole_round, round_transfers)
        self.rounds.append(ReferenceRound(self.round, outcomes, round_transfers, len(jobs.client), len(offers.node)))
        self.round += 1
        self.datacollector.collect(self)

    def run_job(
        self,
        client: ClientAgent,
        sellers: list[tuple[NodeAgent, int, int]],
        actions: Actions,
        draws: RoundDraws,
        context: RoundContext,
    ) -> tuple[DealBatch, Transfers]:
        """One job's deals (one per replica bought; usually one) from agreement to settlement, applied to the
        agents' balances. `sellers` holds (node, price, replica) per deal, in deal id order."""
        n = len(sellers)
        deals = new_deals(
            self.market,
            draws,
            np.full(n, client.index),
            np.array([s[0].index for s in sellers]),
            np.array([s[1] for s in sellers]),
            self.next_deal_id,
            context,
            np.array([s[2] for s in sellers]),
        )
        self.next_deal_id += n
        apply_actions(deals, actions, self.market)  # plain copying of this round's actions onto the deals
        self.stack.set_terms(deals)
        for i, (node, _, _) in enumerate(sellers):
            self.decide(deals, i, client, node, actions, draws)
        self.stack.choose_checks(deals)
        self.stack.select_mediators(deals)
        r = self.market.config.response
        for i in range(n):
            late = not in_time(float(draws.e[deals.job[i], E.mediator]), r.mediator, int(deals.deadline_mediate[i]))
            deals.mediated[i] = deals.checked[i] and not late
        self.stack.judge(deals)
        for i in range(n):
            deals.state[i] = walk(deals, i)[-1]
        transfers = self.stack.settle(deals)
        self.apply(transfers)
        self.record.update(deals)
        return deals, transfers

    def outcome(self, deals: DealBatch, i: int, amounts: tuple[int, ...]) -> DealOutcome:
        """Deal i of a settled job (`amounts`: its transfer sum per `Reason`), counted for the data collector."""
        out = DealOutcome(
            int(deals.deal_id[i]),
            int(deals.client[i]),
            int(deals.node[i]),
            int(deals.mediator[i]),
            DealState(int(deals.state[i])),
            bool(deals.cheated[i]),
            int(deals.result[i]),
            amounts,
        )
        self.deals_settled += 1
        self.fake_results_accepted += out.fake_accepted
        return out

    def decide(
        self, deals: DealBatch, i: int, client: ClientAgent, node: NodeAgent, actions: Actions, draws: RoundDraws
    ) -> None:
        """Deal i's parties' choices and the clock, phase by phase up to the client's judgement."""
        r = self.market.config.response
        e, u = draws.e[deals.job[i]].tolist(), draws.u[deals.job[i]].tolist()
        committed = sum(int(x) for x in deals.client_exposure)  # the client's every deal this round: this job's
        deals.client_agreed[i] = client.can_afford(committed) and in_time(
            e[E.client_agree], r.client_agree, int(deals.deadline_agree[i])
        )
        deals.node_agreed[i] = node.can_afford(int(deals.node_exposure[i]) + int(deals.bribe[i])) and in_time(
            e[E.node_agree], r.node_agree, int(deals.deadline_agree[i])
        )
        agreed = deals.client_agreed[i] and deals.node_agreed[i]
        deals.submit_time[i] = e[E.node_submit] * r.node_submit
        deals.submitted[i] = agreed and deals.submit_time[i] <= int(deals.deadline_submit[i])
        deals.cheated[i] = deals.submitted[i] and u[U.cheat] < float(actions.nodes.cheat_rate[node.index])
        if deals.submitted[i] and deals.forced_error[i]:
            deals.result[i] = FORCED_FAKE  # the protocol swapped in a known-wrong result
        elif deals.cheated[i]:
            deals.result[i] = CARTEL_FAKE if deals.colluding[i] else FIRST_OWN_FAKE + int(deals.deal_id[i])
        else:
            deals.result[i] = CORRECT
        deals.judge_time[i] = e[E.client_judge] * r.client_judge
        deals.judged[i] = deals.submitted[i] and deals.judge_time[i] <= int(deals.deadline_judge[i])

    def apply(self, transfers: Transfers) -> None:
        """Move money transfer by transfer (one job's, or the setup's); no balance or escrow may be negative after
        any step."""
        rows = zip(
            *(getattr(transfers, c).tolist() for c in ("step", "payer", "payee", "amount", "direction")), strict=True
        )
        for step, group in itertools.groupby(rows, key=lambda row: row[0]):
            touched = []
            for _, payer_id, payee_id, amount, direction in group:
                payer = self.accounts[payer_id]
                touched.append(payer)
                match Direction(direction):
                    case Direction.PaidIn:  # own balance -> own escrow
                        payer.balance -= amount
                        payer.escrow += amount
                    case Direction.Refunded:  # own escrow -> own balance
                        payer.escrow -= amount
                        payer.balance += amount
                    case Direction.PaidOut | Direction.Slashed:  # own escrow -> payee's balance
                        payer.escrow -= amount
                        self.accounts[payee_id].balance += amount
                        touched.append(self.accounts[payee_id])
                    case Direction.Spent:  # own balance -> payee's balance
                        payer.balance -= amount
                        self.accounts[payee_id].balance += amount
                        touched.append(self.accounts[payee_id])
            for a in touched:
                if a.balance < 0 or a.escrow < 0:
                    raise InsolventTransfer(
                        f"step {Step(step).name}: account {a.account} balance {a.balance} escrow {a.escrow}"
                    )
