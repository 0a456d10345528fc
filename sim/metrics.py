"""One definition of each run metric: what a round counts, and what each rate divides by.

Every report of the twin reads these functions (simulate's `summary.json`, the analysis's cost meter and ranked
table, the notebooks, the RL env's statistics), so a metric with a given name means the same thing everywhere.

Units. A *deal* is one node's contract for one job; a *job* is one job offer, bought as a single deal or as several
replicas (the deals sharing `DealBatch.group`). A rate named `..._per_deal` divides by deals, `..._per_job` by jobs;
with replication the two differ by the number of replicas.

A fake result (`DealBatch.cheated`: the node skipped the computation, including a lazy replica that copied another
replica's result) is *accepted* when the ledger actually paid the node for it: a JobPayment transfer to the deal's
node. It is read from the round's transfers rather than from the terminal state, so it follows whatever rule the
mechanisms settled with (with `lilypad_v2.forfeit_payment=false` a node whose fake mediation rejected is still
paid, and that fake counts as accepted).

Only `mechanisms` and numpy are used here, so `sim`, `experiments` and the RL environment can all import it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mechanisms.deals import DealBatch
from mechanisms.protocol import Direction, Reason
from mechanisms.transfers import Transfers

#: Totals `round_counts` returns, summed over rounds by every report.
COUNTS = ("deals", "jobs", "results_submitted", "cheated", "fake_accepted", "checks", "mediations", "reruns")

#: What each count counts (for reports that print the definitions).
COUNTED = {
    "deals": "deals (one node's contract for one job: each replica is a deal)",
    "jobs": "jobs (matched job offers: all replicas of one offer are one job)",
    "results_submitted": "results posted",
    "cheated": "fake results posted",
    "fake_accepted": "fake results whose node was paid a JobPayment",
    "checks": "results sent to mediation",
    "mediations": "mediations answered in time",
    "reruns": "mediator re-runs",
    "client_outlay": "what clients paid, net of refunds",
}

#: rate -> (numerator count, denominator count). `rates` computes the ones whose counts it is given.
RATIOS: dict[str, tuple[str, str]] = {
    "cheat_rate": ("cheated", "results_submitted"),  # fake results per posted result
    "fake_accepted_per_deal": ("fake_accepted", "deals"),
    "fake_accepted_per_job": ("fake_accepted", "jobs"),  # fake results paid for, all replicas of a job together
    "checks_per_deal": ("checks", "deals"),
    "checks_per_job": ("checks", "jobs"),
    "mediations_per_deal": ("mediations", "deals"),
    "mediations_per_job": ("mediations", "jobs"),
    "client_cost_per_job": ("client_outlay", "jobs"),  # what clients paid, net of refunds, per job
}
#: Executions nobody needed with honest nodes: mediator re-runs plus replicas beyond the first, per job.
EXTRA_EXECUTIONS = "extra_executions_per_job"
RATES = (*RATIOS, EXTRA_EXECUTIONS)


def definition(rate: str) -> str:
    """The rate's definition in words, e.g. for a report: `fake_accepted_per_job = fake results ... / jobs (...)`."""
    if rate == EXTRA_EXECUTIONS:
        return f"{rate} = (mediator re-runs + deals - jobs) / jobs: re-runs plus replicas beyond the first"
    num, den = RATIOS[rate]
    return f"{rate} = {COUNTED[num]} / {COUNTED[den]}"


def ratio(num: float, den: float) -> float | None:
    """num / den, or None when there is nothing to divide by (JSON null, a blank table cell)."""
    return float(num) / float(den) if den else None


def job_payment_to_node(deals: DealBatch, transfers: Transfers) -> np.ndarray:
    """Per deal: the JobPayment the ledger moved to the deal's node (int64 base units)."""
    pay = (transfers.reason == Reason.JobPayment) & (transfers.direction == Direction.PaidOut)
    out = np.zeros(len(deals), dtype=np.int64)
    if not pay.any():
        return out
    row = np.searchsorted(deals.deal_id, transfers.deal_id[pay])
    inside = row < len(deals)
    row, amount, payee = row[inside], transfers.amount[pay][inside], transfers.payee[pay][inside]
    to_node = (deals.deal_id[row] == transfers.deal_id[pay][inside]) & (payee == deals.node[row])
    np.add.at(out, row[to_node], amount[to_node])
    return out


def fake_accepted(deals: DealBatch, transfers: Transfers) -> np.ndarray:
    """Per deal: a fake result the node was paid for (module doc)."""
    return deals.cheated & (job_payment_to_node(deals, transfers) > 0)


def job_count(deals: DealBatch) -> int:
    """Jobs among the deals: a job bought as several replicas is one job."""
    return len(np.unique(deals.group))


def mediator_reruns(deals: DealBatch, transfers: Transfers) -> int:
    """Re-executions by mediators: ComputeCost transfers a mediator paid (a bribed mediator skips the re-run)."""
    rerun = (transfers.reason == Reason.ComputeCost) & np.isin(transfers.payer, deals.mediator_accounts)
    return int(rerun.sum())


def round_counts(deals: DealBatch, transfers: Transfers) -> dict[str, int]:
    """The round's totals (keys `COUNTS`); `deals` must be in deal-id order, as the engine returns them."""
    return {
        "deals": len(deals),
        "jobs": job_count(deals),
        "results_submitted": int(deals.submitted.sum()),
        "cheated": int(deals.cheated.sum()),
        "fake_accepted": int(fake_accepted(deals, transfers).sum()),
        "checks": int(deals.checked.sum()),
        "mediations": int(deals.mediated.sum()),
        "reruns": mediator_reruns(deals, transfers),
    }


def extra_executions_per_job(reruns: float, deals: float, jobs: float) -> float | None:
    """Mediator re-runs plus replicas beyond the first, per job."""
    return ratio(reruns + deals - jobs, jobs)


def rates(counts: Mapping[str, float]) -> dict[str, float | None]:
    """Every rate of `RATES` whose counts are given (summed totals, e.g. `round_counts` over a run); None where
    the denominator is 0. Callers with partial counts (the env's per-role counters) get the rates they support."""
    out = {
        name: ratio(counts[num], counts[den]) for name, (num, den) in RATIOS.items() if num in counts and den in counts
    }
    if all(k in counts for k in ("reruns", "deals", "jobs")):
        out[EXTRA_EXECUTIONS] = extra_executions_per_job(counts["reruns"], counts["deals"], counts["jobs"])
    return out
