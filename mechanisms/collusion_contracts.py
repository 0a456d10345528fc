"""Dong et al.'s (CCS 2017) Colluder's and Traitor's contracts between the replicas of one job.

The Prisoner's contract is `replication` (a wrong replica's deposit goes to the honest one) with
`dispute_costs.loser_pays` (the trusted party's cost comes out of that deposit, so the client is made whole). Against
it two clouds can sign a Colluder's contract: the first signatory of a job (lowest replica, the ringleader) pays each
follower that posts the agreed wrong result `side_payment` when it posted it too, and a signatory that deviates
(posts the correct result) forfeits `collusion_deposit` to the first signatory that followed. The client's answer is
the Traitor's contract (`traitors: true`): a deviator that reports the collusion (`reports`) delivers the correct
result, is paid, receives the cheater's deposit less the dispute cost through the Prisoner's contract, and the
Colluder's contract is void, so it forfeits nothing.

Signatories are the replicas whose nodes are in the cartel this round (`colluding`); what they post is their own
choice (a cheating signatory posts the cartel's fake). Payments are enforced (Spent, balance to balance, as a
contract would); a signatory's exposure covers both amounts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mechanisms.base import Mechanism, register
from mechanisms.bounds import MoneyBounds
from mechanisms.deals import CARTEL_FAKE, CORRECT, DealBatch
from mechanisms.groups import group_first
from mechanisms.hooks import Columns, hook_columns
from mechanisms.money import Amount
from mechanisms.protocol import Direction, Reason, Step
from mechanisms.transfers import TransferBuilder


@dataclass(frozen=True)
class CollusionContractsConfig:
    side_payment: Amount = 0  # the ringleader's payment to each follower that posted the agreed wrong result
    collusion_deposit: Amount = 0  # forfeited by a signatory that posts the correct result to one that followed
    traitors: bool = False  # the Traitor's contract: a deviator that reports voids the Colluder's contract


@dataclass(frozen=True)
class Signatories:
    """Per deal: the ringleader's row (-1 if none), who followed, who deviated, and the first follower's row."""

    leader: np.ndarray
    followed: np.ndarray
    deviated: np.ndarray
    first_follower: np.ndarray


@register
class CollusionContracts(Mechanism):
    name = "collusion_contracts"
    Config = CollusionContractsConfig
    columns = hook_columns(
        set_terms=Columns(reads=("colluding",), updates=("node_exposure",)),
        settle=Columns(reads=("colluding", "submitted", "result", "reports")),
    )

    def bound_money(self, bounds: MoneyBounds, path: str) -> None:
        """A signatory's exposure covers the side payment and the collusion deposit."""
        c = self.config
        bounds.expose("node", c.side_payment, f"{path}.side_payment", c.side_payment)
        bounds.expose("node", c.collusion_deposit, f"{path}.collusion_deposit", c.collusion_deposit)

    def set_terms(self, deals: DealBatch) -> None:
        c = self.config
        deals.node_exposure = deals.node_exposure + np.where(deals.colluding, c.side_payment + c.collusion_deposit, 0)

    def signatories(self, deals: DealBatch) -> Signatories:
        signed = deals.colluding & deals.submitted
        followed = signed & (deals.result == CARTEL_FAKE)
        leader = group_first(deals.group, signed, (deals.replica,))
        return Signatories(
            leader, followed, signed & (deals.result == CORRECT), group_first(deals.group, followed, (deals.replica,))
        )

    def settle(self, deals: DealBatch, out: TransferBuilder) -> None:
        c, s = self.config, self.signatories(deals)
        rows = np.arange(len(deals))
        lead = np.clip(s.leader, 0, None)
        paid_follower = s.followed & (s.leader >= 0) & (s.leader != rows) & s.followed[lead]
        out.add(Step.Settle, paid_follower, deals.node[lead], c.side_payment, Reason.Bribe, Direction.Spent, deals.node)
        void = deals.reports if c.traitors else np.zeros(len(deals), dtype=bool)
        forfeits = s.deviated & ~void & (s.first_follower >= 0)
        out.add(
            Step.Settle,
            forfeits,
            deals.node,
            c.collusion_deposit,
            Reason.Bribe,
            Direction.Spent,
            deals.node[np.clip(s.first_follower, 0, None)],
        )
