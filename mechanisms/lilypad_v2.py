"""The Lilypad v2 baseline: payment, results and timeout collateral, one uniformly drawn mutual mediator.

Settlement follows Lilypad v2 except where v2 loses value: every terminal path here releases every escrow, and
where slashed value goes is a config choice (v2 sends it to the token owner).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

import numpy as np

from mechanisms.base import MarketFacts, Mechanism, register
from mechanisms.bounds import MoneyBounds
from mechanisms.config import Range, require
from mechanisms.deals import NO_MEDIATOR, DealBatch, require_context
from mechanisms.hooks import Columns, hook_columns
from mechanisms.money import BPS, Amount, Multiplier, Pool, mul_bps
from mechanisms.protocol import VISITED_MASK, DealState, Direction, Reason, Step
from mechanisms.transfers import TransferBuilder
from mechanisms.voting import VOTE_COLUMNS, mediator_votes

S = DealState
PAID_STATES = (S.ResultsAccepted, S.TimeoutJudgeResults, S.MediationAccepted)
MAX_REPLICAS = 8  # deals a job can be bought as (replication.replicas): a round has at most n_clients x 8 deals
#: The deal terms this mechanism sets at agreement (escrow amounts and fee first, then deadlines and exposures).
TERMS = (
    "payment_collateral",
    "results_collateral",
    "submit_collateral",
    "judge_collateral",
    "mediation_fee",
    "deadline_agree",
    "deadline_submit",
    "deadline_judge",
    "deadline_mediate",
    "client_exposure",
    "node_exposure",
)
SlashTo = Literal["burn", "counterparty", "mediator", "protocol"]
SLASH_DESTINATIONS = get_args(SlashTo)
Blocks = Annotated[int, Range(1, 10**9)]  # a deadline
PaymentShare = Annotated[int, Range(BPS, 100 * BPS)]  # the client escrows at least the job cost


@dataclass(frozen=True)
class LilypadV2Config:
    results_multiplier_bps: Multiplier = 20_000  # results collateral = multiplier x job cost (20_000 = 2x)
    payment_collateral_bps: PaymentShare = 10_000  # client escrow as a share of job cost
    submit_timeout_collateral: Amount = 5  # node loses it if no result by the submit deadline
    judge_timeout_collateral: Amount = 5  # client loses it if no judgement by the judge deadline
    mediation_fee: Amount = 60  # paid by the client to the mediator for a check; covers the re-run unless allowed
    fee_covers_rerun: bool = True  # false: the fee may be below the re-run cost and the mediator pays the rest
    deadline_agree: Blocks = 10  # blocks
    deadline_submit: Blocks = 60
    deadline_judge: Blocks = 30
    deadline_mediate: Blocks = 60
    slash_to: SlashTo = "burn"  # counterparty = the client for a node's slash
    forfeit_payment: bool = True  # a node whose result mediation rejects is not paid


def visited(deals: DealBatch, state: DealState) -> np.ndarray:
    """Deals whose path went through `state`."""
    return (VISITED_MASK[deals.state] >> int(state)) & 1 == 1


def in_states(deals: DealBatch, *states: DealState) -> np.ndarray:
    member = np.zeros(len(DealState), dtype=bool)
    member[[int(s) for s in states]] = True
    return member[deals.state]


def slash_destination(deals: DealBatch, slash_to: str, slashed_party: np.ndarray) -> np.ndarray:
    """Account that receives value slashed from `slashed_party` (client or node account per deal) under one of
    SLASH_DESTINATIONS."""
    n = len(deals)
    if slash_to == "burn":
        return np.full(n, deals.pool_base + Pool.Burn, dtype=np.int64)
    if slash_to == "protocol":
        return np.full(n, deals.pool_base + Pool.Protocol, dtype=np.int64)
    if slash_to == "counterparty":
        return np.where(slashed_party == deals.client, deals.node, deals.client)
    med = deals.mediator_account()
    return np.where(med == NO_MEDIATOR, deals.pool_base + Pool.Protocol, med)


#: Widths up to this use a table of every mask's set bits (2^width rows): one lookup instead of a pass per bit.
TABLE_WIDTH = 10


@functools.cache
def _set_bits(width: int) -> np.ndarray:
    """[mask, n] -> index of the n-th set bit of mask (n up to width; -1 past the last)."""
    table = np.full((1 << width, width + 1), -1, dtype=np.int64)
    for mask in range(1 << width):
        bits = [b for b in range(width) if (mask >> b) & 1]
        table[mask, : len(bits)] = bits
    return table


def nth_set_bit(mask: np.ndarray, n: np.ndarray, width: int) -> np.ndarray:
    """Index of the n-th (0-based) set bit of each mask, scanning bits 0..width-1; -1 if there is none."""
    if len(mask) and width <= TABLE_WIDTH and mask.min() >= 0 and mask.max() < 1 << width and n.min() >= 0:
        return _set_bits(width)[mask, np.minimum(n, width)]
    m = np.asarray(mask, dtype=np.int64) & ((1 << width) - 1)
    for i in range(int(n.max(initial=0))):  # clear the n lowest set bits (n < width: a few passes, not one per bit)
        m = np.where(n > i, m & (m - 1), m)
    lowest = m & -m
    return np.where((m != 0) & (n >= 0), np.bitwise_count((lowest - 1).astype(np.uint64)).astype(np.int64), -1)


def pick_uniform(mask: np.ndarray, u: np.ndarray, width: int) -> np.ndarray:
    """One member of each bit-mask set, uniformly, from uniforms u in [0, 1)."""
    count = np.bitwise_count(mask.astype(np.uint64)).astype(np.int64)
    k = np.floor(u * count).astype(np.int64)
    return nth_set_bit(mask, k, width)


@register
class LilypadV2(Mechanism):
    name = "lilypad_v2"
    Config = LilypadV2Config
    draws_per_deal = 2  # the client's check, the choice of mediator
    columns = hook_columns(
        set_terms=Columns(sets=TERMS),
        choose_checks=Columns(reads=("judged", "check_rate"), updates=("checked",)),
        select_mediators=Columns(reads=("checked",), sets=("mediator",)),
        judge=Columns(
            reads=(*VOTE_COLUMNS, "mediator", "mediated", "mediation_fee"),
            updates=("mediated",),
            sets=("bribe_accepted", "verdict_accept", "panel"),
        ),
        slash_destinations=Columns(reads=("mediator",), sets=("node_slash_to", "client_slash_to")),
        settle_mediation=Columns(
            reads=("state", "mediator", "bribe_accepted", "bribe", "mediation_fee", "shared_rerun")
        ),
        settle=Columns(
            reads=(
                "state",
                "client_agreed",
                "node_agreed",
                "cheated",
                "forced_error",
                "excused",
                *TERMS[:5],
                "node_slash_to",
                "client_slash_to",
            ),
            sets=("paid",),
        ),
    )

    def __init__(self, config: LilypadV2Config) -> None:
        super().__init__(config)
        self.worst_round_loss = 0  # a mediator's largest loss in one round when the fee is below the re-run cost

    def validate(self, facts: MarketFacts, path: str) -> None:
        shortfall = max(facts.max_compute_cost - self.config.mediation_fee, 0)
        self.worst_round_loss = shortfall * facts.n_clients * MAX_REPLICAS
        require(
            self.config.mediation_fee >= facts.max_compute_cost or not self.config.fee_covers_rerun,
            f"{path}.mediation_fee",
            self.config.mediation_fee,
            f">= the largest re-run cost in the market ({facts.max_compute_cost}), so a mediator never pays to "
            "mediate (or set fee_covers_rerun: false)",
        )

    def bound_money(self, bounds: MoneyBounds, path: str) -> None:
        c = self.config
        bounds.rate("payment_collateral", c.payment_collateral_bps, f"{path}.payment_collateral_bps", "client")
        bounds.rate("results_collateral", c.results_multiplier_bps, f"{path}.results_multiplier_bps", "node")
        for column, name, party in (
            ("submit_collateral", "submit_timeout_collateral", "node"),
            ("judge_collateral", "judge_timeout_collateral", "client"),
            ("mediation_fee", "mediation_fee", "client"),
        ):
            bounds.term(column, getattr(c, name), f"{path}.{name}", getattr(c, name), party)
        bounds.expose(
            "node", bounds.terms["compute_cost"], "market.modules[*].compute_cost", bounds.terms["compute_cost"]
        )

    def set_terms(self, deals: DealBatch) -> None:
        c = self.config
        deals.payment_collateral = mul_bps(deals.job_cost, c.payment_collateral_bps)
        deals.results_collateral = mul_bps(deals.job_cost, c.results_multiplier_bps)
        deals.submit_collateral = np.full(len(deals), c.submit_timeout_collateral, dtype=np.int64)
        deals.judge_collateral = np.full(len(deals), c.judge_timeout_collateral, dtype=np.int64)
        deals.mediation_fee = np.full(len(deals), c.mediation_fee, dtype=np.int64)
        for phase in ("agree", "submit", "judge", "mediate"):
            setattr(deals, f"deadline_{phase}", np.full(len(deals), getattr(c, f"deadline_{phase}"), dtype=np.int64))
        deals.client_exposure = deals.payment_collateral + deals.judge_collateral + deals.mediation_fee
        deals.node_exposure = deals.submit_collateral + deals.results_collateral + deals.compute_cost

    def choose_checks(self, deals: DealBatch) -> None:
        deals.checked |= deals.judged & (self.uniforms(deals, 0) < deals.check_rate)

    def select_mediators(self, deals: DealBatch) -> None:
        chosen = pick_uniform(deals.mutual_mediators, self.uniforms(deals, 1), len(deals.mediator_accounts))
        deals.mediator = np.where(deals.checked, chosen, NO_MEDIATOR)

    def judge(self, deals: DealBatch) -> None:
        """One mediator decides: it re-runs the job, unless a bribe or the cartel buys its vote. With a fee below the
        re-run cost the mediator pays the difference (its loss shows as its ComputeCost beyond the fee); one whose
        balance at the round's start cannot cover the worst round of such losses does not answer (the deal times
        out and the fee is refunded), so no mediator ever overdraws."""
        if not self.config.fee_covers_rerun:
            loss = deals.compute_cost > deals.mediation_fee
            balance = require_context(deals, self.name).balance[deals.mediator_account()]
            deals.mediated = deals.mediated & (~loss | (balance >= self.worst_round_loss))
        accept, bribed = mediator_votes(deals, deals.mediator)
        deals.bribe_accepted = deals.mediated & bribed
        deals.verdict_accept = deals.mediated & accept
        deals.panel = np.where(deals.mediated, np.left_shift(1, np.clip(deals.mediator, 0, None)), 0)

    def slash_destinations(self, deals: DealBatch) -> None:
        deals.node_slash_to = slash_destination(deals, self.config.slash_to, deals.node)
        deals.client_slash_to = slash_destination(deals, self.config.slash_to, deals.client)

    def settle_mediation(self, deals: DealBatch, out: TransferBuilder) -> None:
        """A bribe changes hands off-chain; the fee pays the mediator, who re-runs the job unless bribed (or unless
        another replica's mediation already re-ran it: `shared_rerun`)."""
        med = deals.mediator_account()
        mediated = in_states(deals, S.MediationAccepted, S.MediationRejected)
        D = Direction
        out.add(Step.Mediate, mediated & deals.bribe_accepted, deals.node, deals.bribe, Reason.Bribe, D.Spent, med)
        out.add(Step.Mediate, mediated, deals.client, deals.mediation_fee, Reason.MediationFee, D.PaidOut, med)
        out.add(
            Step.Mediate,
            mediated & ~deals.bribe_accepted & ~deals.shared_rerun,
            med,
            deals.compute_cost,
            Reason.ComputeCost,
            D.Spent,
            deals.pool_base + Pool.Compute,
        )

    def settle(self, deals: DealBatch, out: TransferBuilder) -> None:
        c, C, N = self.config, deals.client, deals.node
        compute_pool = deals.pool_base + Pool.Compute
        submitted, checked = visited(deals, S.ResultsSubmitted), visited(deals, S.ResultsChecked)
        D = Direction

        # agreement: each side escrows as it agrees
        out.add(Step.Agree, deals.client_agreed, C, deals.payment_collateral, Reason.PaymentCollateral, D.PaidIn)
        out.add(Step.Agree, deals.client_agreed, C, deals.judge_collateral, Reason.JudgeTimeoutCollateral, D.PaidIn)
        out.add(Step.Agree, deals.node_agreed, N, deals.submit_collateral, Reason.SubmitTimeoutCollateral, D.PaidIn)
        # result: an honest node pays for the work; its submit collateral is swapped for results collateral
        out.add(
            Step.Submit, submitted & ~deals.cheated, N, deals.compute_cost, Reason.ComputeCost, D.Spent, compute_pool
        )
        out.add(Step.Submit, submitted, N, deals.submit_collateral, Reason.SubmitTimeoutCollateral, D.Refunded)
        out.add(Step.Submit, submitted, N, deals.results_collateral, Reason.ResultsCollateral, D.PaidIn)
        # check: the judge collateral is returned and the mediation fee escrowed
        out.add(Step.Judge, checked, C, deals.judge_collateral, Reason.JudgeTimeoutCollateral, D.Refunded)
        out.add(Step.Judge, checked, C, deals.mediation_fee, Reason.MediationFee, D.PaidIn)

        # settlement: every escrow still held is paid out, refunded or slashed. A forced error (the protocol's
        # own wrong result) that mediation rejects is not the node's fault: it is paid and keeps its collateral;
        # an excused node (a whistleblower) keeps its collateral but is not paid for work it did not do.
        rejected = deals.node_at_fault()
        paid = in_states(deals, *PAID_STATES) | (
            in_states(deals, S.MediationRejected) & (deals.forced_error | (rejected & (not c.forfeit_payment)))
        )
        deals.paid = paid  # read by mechanisms that take a share of the payment (taxes, staking fees, retention)
        out.add(Step.Settle, paid, C, deals.job_cost, Reason.JobPayment, D.PaidOut, N)
        out.add(
            Step.Settle,
            deals.client_agreed,
            C,
            deals.payment_collateral - np.where(paid, deals.job_cost, 0),
            Reason.PaymentCollateral,
            D.Refunded,
        )
        unjudged = in_states(deals, S.TimeoutAgree, S.TimeoutSubmitResults, S.ResultsAccepted)
        out.add(
            Step.Settle,
            deals.client_agreed & unjudged,
            C,
            deals.judge_collateral,
            Reason.JudgeTimeoutCollateral,
            D.Refunded,
        )
        out.add(
            Step.Settle,
            in_states(deals, S.TimeoutJudgeResults),
            C,
            deals.judge_collateral,
            Reason.JudgeTimeoutCollateral,
            D.Slashed,
            deals.client_slash_to,
        )
        out.add(
            Step.Settle,
            deals.node_agreed & in_states(deals, S.TimeoutAgree),
            N,
            deals.submit_collateral,
            Reason.SubmitTimeoutCollateral,
            D.Refunded,
        )
        out.add(
            Step.Settle,
            in_states(deals, S.TimeoutSubmitResults),
            N,
            deals.submit_collateral,
            Reason.SubmitTimeoutCollateral,
            D.Slashed,
            deals.node_slash_to,
        )
        out.add(Step.Settle, submitted & ~rejected, N, deals.results_collateral, Reason.ResultsCollateral, D.Refunded)
        out.add(
            Step.Settle, rejected, N, deals.results_collateral, Reason.ResultsCollateral, D.Slashed, deals.node_slash_to
        )
        out.add(
            Step.Settle,
            in_states(deals, S.TimeoutMediateResults),
            C,
            deals.mediation_fee,
            Reason.MediationFee,
            D.Refunded,
        )
