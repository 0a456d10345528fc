"""Replication at deal time: the client buys the same job from `replicas` different nodes and compares results.

The Dong et al. "two clouds" setting. Replicas that disagree go to mediation. Without commit-reveal a node sees
results already posted, so a node that skipped the work copies the first posted result (and so agrees with it);
a node that waits (`NodeActions.wait`, the scripted `copier`: the timing attack) posts after every replica that
does not, so it always has a result to copy (waiting is assumed to fit in the submit deadline); with commit-reveal
every result is committed as a hash before any is revealed, so a lazy node can only post its own fake, or the
cartel's shared one if it colludes. The deposit of a replica proven wrong goes to the honest replica of the same
job (the prisoner's contract), to the client, or is burned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from mechanisms.base import Mechanism, register
from mechanisms.config import Range
from mechanisms.deals import DealBatch
from mechanisms.groups import group_first
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


@register
class Replication(Mechanism):
    name = "replication"
    Config = ReplicationConfig
    columns = hook_columns(
        # without commit-reveal a lazy replica's result becomes the copy it posted
        choose_checks=Columns(reads=("submitted", "cheated", "submit_time", "waits", "judged"),
                              updates=("result", "checked")),
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
        lo = group_first(deals.group, posted, (deals.result,))
        hi = group_first(deals.group, posted, (-deals.result,))
        disagree = (lo >= 0) & (deals.result[np.clip(lo, 0, None)] != deals.result[np.clip(hi, 0, None)])
        deals.checked |= deals.judged & disagree

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
