"""Whistleblowing (the "traitor's contract"): a participant proves a collusion or a bribe it took part in.

A colluding node that posted the cartel's shared fake may reveal it: the proof sends every replica of that job to
mediation and overturns any verdict that accepted the cartel's fake; the whistleblower keeps its own deposit
(excused, but unpaid) and collects `reward_bps` of the deposits slashed from the other cartel members. A mediator
that took a bribe may prove it: the bribing node's result is rejected and the mediator collects `reward_bps` of
the node's slashed deposit (and keeps the bribe). The rest of each slashed deposit goes where it would have gone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mechanisms.base import Mechanism, register
from mechanisms.deals import CARTEL_FAKE, DealBatch
from mechanisms.groups import group_any, group_first
from mechanisms.hooks import Columns, hook_columns
from mechanisms.lilypad_v2 import in_states
from mechanisms.money import Share, mul_bps
from mechanisms.protocol import DealState, Direction, Reason, Step
from mechanisms.transfers import TransferBuilder

S = DealState
REPORTS = ("submitted", "reports", "result")  # what a node's proof of the cartel's fake reads


@dataclass(frozen=True)
class WhistleblowingConfig:
    reward_bps: Share = 10_000  # share of the slashed deposits paid to the whistleblower
    nodes: bool = True  # cartel nodes may prove the cartel's fake
    mediators: bool = True  # bribed mediators may prove the bribe


@register
class Whistleblowing(Mechanism):
    name = "whistleblowing"
    Config = WhistleblowingConfig
    columns = hook_columns(
        choose_checks=Columns(reads=(*REPORTS, "judged"), updates=("checked",)),
        review=Columns(
            reads=(
                *REPORTS,
                "mediated",
                "bribe_accepted",
                "mediator",
                "mediator_report",
                "consortium.order",
                "consortium.bribed",
            ),
            updates=("verdict_accept", "excused"),
            sets=("whistleblowing.exposed", "whistleblowing.mediator"),
        ),
        # reads where the others sent the slashed deposits, to pass on what exceeds the reward
        slash_destinations=Columns(
            reads=(*REPORTS, "mediated", "state", "node_slash_to", "whistleblowing.exposed", "whistleblowing.mediator"),
            updates=("node_slash_to",),
            sets=("whistleblowing.base_to", "whistleblowing.rewarded"),
        ),
        settle=Columns(
            reads=(
                "excused",
                "state",
                "forced_error",
                "results_collateral",
                "node_slash_to",
                "whistleblowing.rewarded",
                "whistleblowing.base_to",
            )
        ),
    )

    def _node_reports(self, deals: DealBatch) -> np.ndarray:
        return self.config.nodes & deals.submitted & deals.reports & (deals.result == CARTEL_FAKE)

    def choose_checks(self, deals: DealBatch) -> None:
        exposed = group_any(deals.group, self._node_reports(deals)) & (deals.result == CARTEL_FAKE)
        deals.checked |= deals.judged & exposed

    def _mediator_reporter(self, deals: DealBatch) -> np.ndarray:
        """Index of a bribed panel member who proves the bribe, or -1."""
        if not self.config.mediators:
            return np.full(len(deals), -1, dtype=np.int64)
        if "consortium.bribed" in deals.extra:
            order, bribed = deals.extra["consortium.order"], deals.extra["consortium.bribed"]
            reporting = bribed & deals.mediator_report[np.clip(order, 0, None)] & (order >= 0)
            seat = np.argmax(reporting, axis=1)
            return np.where(reporting.any(axis=1), order[np.arange(len(deals)), seat], -1)
        lead = np.clip(deals.mediator, 0, None)
        return np.where(deals.bribe_accepted & deals.mediator_report[lead], deals.mediator, -1)

    def review(self, deals: DealBatch) -> None:
        node_reports = self._node_reports(deals)
        exposed = group_any(deals.group, node_reports) & (deals.result == CARTEL_FAKE)
        bribe_proven = self._mediator_reporter(deals) >= 0
        deals.verdict_accept &= ~(deals.mediated & (exposed | bribe_proven))
        deals.excused |= node_reports & deals.mediated
        deals.extra["whistleblowing.exposed"] = deals.mediated & exposed & ~node_reports
        deals.extra["whistleblowing.mediator"] = np.where(
            deals.mediated & bribe_proven, self._mediator_reporter(deals), -1
        )

    def slash_destinations(self, deals: DealBatch) -> None:
        """Route the traitors' share: exposed cartel members pay the first reporter, bribers the mediator."""
        reporter = group_first(deals.group, self._node_reports(deals) & deals.mediated, (deals.replica,))
        exposed = deals.extra["whistleblowing.exposed"] & (reporter >= 0) & in_states(deals, S.MediationRejected)
        med = deals.extra["whistleblowing.mediator"]
        proven = (med >= 0) & in_states(deals, S.MediationRejected)
        deals.extra["whistleblowing.base_to"] = deals.node_slash_to.copy()
        to = np.where(exposed, deals.node[np.clip(reporter, 0, None)], deals.node_slash_to)
        deals.node_slash_to = np.where(proven, deals.mediator_accounts[np.clip(med, 0, None)], to)
        deals.extra["whistleblowing.rewarded"] = exposed | proven

    def settle(self, deals: DealBatch, out: TransferBuilder) -> None:
        """The whistleblower passes on what exceeds its reward to where the deposit would have gone."""
        # only a deposit that was slashed can be passed on: not an excused node's, nor a forced error's
        rewarded = deals.extra["whistleblowing.rewarded"] & deals.node_at_fault()
        passed_on = deals.results_collateral - mul_bps(deals.results_collateral, self.config.reward_bps)
        out.add(
            Step.Settle,
            rewarded,
            deals.node_slash_to,
            passed_on,
            Reason.Reward,
            Direction.Spent,
            deals.extra["whistleblowing.base_to"],
        )
