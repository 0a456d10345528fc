"""The public record: per-account counters anyone can compute from the chain's event log.

Reputation, check policies and observations read these; nothing here is private to an agent. A node that
whitewashes (takes a new identity) starts again from zero, which is exactly what a fresh address would show.
"""

from __future__ import annotations

import numpy as np

from mechanisms.deals import DealBatch
from mechanisms.protocol import DealState

S = DealState

#: counter -> what it counts (per account, over the whole run)
COUNTERS = {
    "jobs": "deals the account took part in as node",
    "submitted": "results the node posted in time",
    "checked": "results of the node sent to mediation",
    "passed": "mediations that accepted the node's result",
    "failed": "mediations that rejected the node's result, the node at fault (not a forced error or a whistleblower)",
    "timeouts": "deals that timed out waiting for the node (agree or submit)",
    "client_jobs": "deals the account took part in as client",
    "client_checks": "checks the client asked for",
    "mediations": "mediations the account sat on a panel for",
    "dissents": "mediations where the account voted against the final verdict",
}


def read_only(a: np.ndarray) -> np.ndarray:
    """A view of `a` that refuses writes."""
    view = a.view()
    view.flags.writeable = False
    return view


def bit_counts(masks: np.ndarray, width: int, chunk: int = 1 << 16) -> np.ndarray:
    """How many of the int64 bit masks have each of bits 0..width-1 set (in chunks of `chunk` masks, 64 bytes a
    mask at a time)."""
    out = np.zeros(64, dtype=np.int64)
    masks = np.asarray(masks, dtype="<i8")
    for start in range(0, len(masks), chunk):
        part = masks[start : start + chunk].view(np.uint8).reshape(-1, 8)
        out += np.unpackbits(part, axis=1, bitorder="little").sum(axis=0, dtype=np.int64)
    return out[:width]


class PublicRecord:
    """Counters as int64 arrays over all accounts."""

    def __init__(self, n_accounts: int) -> None:
        self.counters = {name: np.zeros(n_accounts, dtype=np.int64) for name in COUNTERS}

    def snapshot(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.counters.items()}

    def view(self) -> dict[str, np.ndarray]:
        """The live counters, read-only (no copy: for a round's hooks, which run before `update`)."""
        return {k: read_only(v) for k, v in self.counters.items()}

    def whitewash(self, accounts: np.ndarray) -> None:
        """The accounts start over under fresh identities."""
        for v in self.counters.values():
            v[accounts] = 0

    def update(self, deals: DealBatch) -> None:
        """Add a settled round's deals."""
        c, node, st = self.counters, deals.node, deals.state
        node_late = (st == S.TimeoutSubmitResults) | ((st == S.TimeoutAgree) & ~deals.node_agreed)
        np.add.at(c["jobs"], node, 1)
        np.add.at(c["client_jobs"], deals.client, 1)
        for name, mask, who in (
            ("submitted", deals.submitted, node),
            ("checked", deals.checked, node),
            ("passed", st == S.MediationAccepted, node),
            ("failed", deals.node_at_fault(), node),
            ("timeouts", node_late, node),
            ("client_checks", deals.checked, deals.client),
        ):
            np.add.at(c[name], who[mask], 1)
        accounts = deals.mediator_accounts
        c["mediations"][accounts] += bit_counts(deals.panel, len(accounts))
        c["dissents"][accounts] += bit_counts(deals.dissenters, len(accounts))
