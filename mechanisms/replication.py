"""Replication at deal time: the client buys the same job from `replicas` different nodes and compares results.

The Dong et al. "two clouds" setting. Replicas that disagree go to mediation. Without commit-reveal a node sees
results already posted, so a node that skipped the work copies the first posted result (and so agrees with it);
a node that waits (`NodeActions.wait`, the scripted `copier`: the timing attack) posts after every replica that
does not, so it always has a result to copy (waiting is assumed to fit in the submit deadline); with commit-reveal
every result is committed as a hash before any is revealed, so a lazy node can only post its own fake, or the
cartel's shared one if it colludes. The deposit of a replica proven wrong goes to the honest replica of the same
job (the prisoner's contract), to the client, or is burned.

With `settle_once` one mediation settles the job: the first replica sent to mediation (the lead) pays the fee and
gets the re-run; the others (`shared_rerun`) pay no fee, cost their mediator no re-run, and take the lead's
outcome: the lead's mediator, whether it answered, and a verdict against the result it established (the lead's
result if accepted, else the correct one). Not with `consortium`, whose panels price each mediation themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from mechanisms.base import Mechanism, register
from mechanisms.config import Range
from mechanisms.deals import CORRECT, DealBatch
from mechanisms.groups import disagreeing, group_first
from mechanisms.hooks import Columns, hook_columns
from mechanisms.lilypad_v2 import in_states, slash_destination
from mechanisms.protocol import DealState

S = DealState
WrongDepositTo = Literal["honest_replica", "client", "burn"]


@dataclass(frozen=True)
class ReplicationConfig:
    replicas: Annotated[int, Range(1, 8)] = 2  # deals bought per job, each from a different node
    commit_reveal: bool = False  # results committed as hashes before any is revealed
    wrong_deposit_to: WrongDepositTo = "honest_replica"
    settle_once: bool = False  # one mediation (one fee, one re-run) settles all the disagreeing replicas of a job


@register
class Replication(Mechanism):
    name = "replication"
    Config = ReplicationConfig
    columns = hook_columns(
        # without commit-reveal a lazy replica's result becomes the copy it posted
        choose_checks=Columns(
            reads=("submitted", "cheated", "submit_time", "waits", "judged"),
            updates=("result", "checked", "mediation_fee"),
            sets=("shared_rerun",),
        ),
        review=Columns(
            reads=("shared_rerun", "result", "checked"),
            updates=("mediated", "verdict_accept", "mediator", "bribe_accepted"),
        ),
        slash_destinations=Columns(reads=("submitted", "result", "state"), updates=("node_slash_to",)),
    )

    def __init__(self, config: ReplicationConfig) -> None:
        super().__init__(config)
        self.replicas_per_job = config.replicas

    def choose_checks(self, deals: DealBatch) -> None:
        posted = deals.submitted
        if not self.config.commit_reveal:
            # a node that waits (the timing attack) posts after every replica that does not
            first = group_first(deals.group, posted, (deals.waits.astype(np.int64), deals.submit_time, deals.replica))
            copies = posted & deals.cheated & (first >= 0) & (first != np.arange(len(deals)))
            deals.result = np.where(copies, deals.result[np.clip(first, 0, None)], deals.result)
        # replicas disagree iff their posted results differ
        deals.checked |= deals.judged & disagreeing(deals.group, posted, deals.result)
        if self.config.settle_once:
            lead = group_first(deals.group, deals.checked, (deals.replica,))
            deals.shared_rerun = deals.checked & (lead >= 0) & (lead != np.arange(len(deals)))
            deals.mediation_fee = np.where(deals.shared_rerun, 0, deals.mediation_fee)

    def takes_part(self, hook: str) -> bool:
        """The review (and the order constraints it brings) only with `settle_once`."""
        return self.config.settle_once if hook == "review" else super().takes_part(hook)

    def excludes(self) -> dict[str, str]:
        return {"consortium": "settle_once"} if self.config.settle_once else {}

    def review(self, deals: DealBatch) -> None:
        """With `settle_once`, every replica settled by the lead's mediation takes its outcome."""
        if not deals.shared_rerun.any():
            return
        lead = np.clip(group_first(deals.group, deals.checked & ~deals.shared_rerun, (deals.replica,)), 0, None)
        follow = deals.shared_rerun
        reference = np.where(deals.verdict_accept[lead], deals.result[lead], CORRECT)
        deals.mediated = np.where(follow, deals.mediated[lead], deals.mediated)
        deals.mediator = np.where(follow, deals.mediator[lead], deals.mediator)
        deals.bribe_accepted = np.where(follow, False, deals.bribe_accepted)
        deals.verdict_accept = np.where(
            follow, deals.mediated[lead] & (deals.result == reference), deals.verdict_accept
        )

    def slash_destinations(self, deals: DealBatch) -> None:
        """The prisoner's contract: a replica proven wrong pays the replica proven right."""
        to = self.config.wrong_deposit_to
        if to == "client":
            deals.node_slash_to = slash_destination(deals, "counterparty", deals.node)
            return
        if to == "burn":
            deals.node_slash_to = slash_destination(deals, "burn", deals.node)
            return
        honest = deals.submitted & ~deals.wrong() & ~in_states(deals, S.MediationRejected)
        first_honest = group_first(deals.group, honest, (deals.replica,))
        wrong = in_states(deals, S.MediationRejected) & (first_honest >= 0)
        deals.node_slash_to = np.where(wrong, deals.node[np.clip(first_honest, 0, None)], deals.node_slash_to)
