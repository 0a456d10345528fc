"""Per-account counters of a round's deals (summed over an episode), and the headline rates read from them.

A deal counts for each of its parties: its client, its node and its drawn mediator. Several counters are private to
one party (`cheated` to the node and to the mediator that re-ran it, bribes to the node and the mediator) and only
ever reach that party's observation (docs/architecture.md, "Observations come from the public record").
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from marl.heads import ROLES
from mechanisms.deals import CARTEL_FAKE, NO_MEDIATOR
from mechanisms.protocol import DealState
from sim import metrics
from sim.engine import RoundResult

COUNTERS = (
    "deals",
    "submitted",
    "cheated",
    "fake_accepted",
    "judged",
    "checked",
    "rejected",
    "mediated",
    "bribes_offered",
    "bribes_taken",
    "bribe_amount",
    "colluded",
    "reported",
)
C = {name: i for i, name in enumerate(COUNTERS)}
#: The counters that mean something for each role in summaries (the others repeat the counterparty's numbers).
ROLE_COUNTERS = {
    "node": (
        "deals",
        "submitted",
        "cheated",
        "fake_accepted",
        "checked",
        "rejected",
        "bribes_taken",
        "colluded",
        "reported",
    ),
    "client": ("deals", "judged", "checked", "rejected", "cheated", "fake_accepted"),
    "mediator": ("mediated", "rejected", "bribes_offered", "bribes_taken", "bribe_amount"),
}


def round_counts(result: RoundResult, n_accounts: int) -> np.ndarray:
    """(len(COUNTERS), n_accounts) int64 counts of the round's deals per party (one bincount for all counters)."""
    d = result.deals
    med = d.mediator_account()
    has_med = med != NO_MEDIATOR
    offered = d.mediated & d.cheated & (d.bribe > 0)
    colluded = d.cheated & (d.result == CARTEL_FAKE)  # posted the cartel's shared fake
    flags = np.column_stack(
        [
            np.ones(len(d), dtype=np.int64),
            d.submitted,
            d.cheated,
            metrics.fake_accepted(d, result.transfers),
            d.judged,
            d.checked,
            d.state == DealState.MediationRejected,
            d.mediated,
            offered,
            d.bribe_accepted,
            np.where(offered, d.bribe, 0),
            colluded,
            colluded & d.reports,
        ]
    ).astype(np.int64)
    parties = np.concatenate([d.client, d.node, med[has_med]])
    weights = np.concatenate([flags, flags, flags[has_med]])
    k = len(COUNTERS)
    index = (parties[:, None] * k + np.arange(k)).ravel()
    counts = np.bincount(index, weights=weights.ravel(), minlength=n_accounts * k)
    return counts.reshape(n_accounts, k).T.astype(np.int64)


def ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """num / den elementwise, 0 where den is 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def role_rates(counts: Mapping[str, float]) -> dict[str, float | None]:
    """The headline numbers from summed counts (keys as in `MarketEnv.counts`); None where nothing was counted.

    cheat_rate and fake_accepted_per_deal as `sim.metrics` defines them (fake_accepted = fake results the node was
    paid for); check_rate = checks / judged results of the clients counted; bribe_acceptance =
    bribes taken / offered to the mediators counted; return_<role> = reward per agent and episode; collusion_rate =
    the cartel's shared fake / submitted results of the nodes counted; report_rate = reported / posted cartel fakes.
    """

    def r(num: str, den: str) -> float | None:
        d = counts.get(den, 0)
        return float(counts.get(num, 0)) / float(d) if d else None

    node = {
        "deals": counts.get("node_deals", 0),
        "results_submitted": counts.get("node_submitted", 0),
        "cheated": counts.get("node_cheated", 0),
        "fake_accepted": counts.get("node_fake_accepted", 0),
    }
    # a node holds one replica of a job, so per deal is the only unit at node scope (definitions: sim.metrics)
    out = {
        **metrics.rates(node),
        "fake_accepted": counts.get("node_fake_accepted", 0),
        "check_rate": r("client_checked", "client_judged"),
        "bribe_acceptance": r("mediator_bribes_taken", "mediator_bribes_offered"),
        "collusion_rate": r("node_colluded", "node_submitted"),
        "report_rate": r("node_reported", "node_colluded"),
    }
    out.update({f"return_{role}": r(f"{role}_reward", f"{role}_agents") for role in ROLES})
    return out
