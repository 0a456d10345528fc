"""What a mechanism costs, measured round by round on the engine's own arrays.

A mechanism is paid for three ways: executions nobody needed with honest nodes (mediator re-runs, replicas beyond
the first), fees (mediation), and capital that sits in escrow instead of working. Escrow is priced by how long it
*must* be held: the counterparty may act until a phase's deadline, so a party has to keep the value available for
the deadlines of every phase the escrow spans, whether or not anyone is late. Standing escrow (stakes) is held
for whole rounds; a round lasts as long as its longest possible deal (the sum of the four deadlines).

The headline number is the cost per correct result: what clients paid (payments, fees, taxes, net of refunds and
payouts) plus `capital_rate` per unit and block of locked value, over the jobs that delivered a correct result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mechanisms.deals import CORRECT, DealBatch
from mechanisms.protocol import Direction, Reason
from sim import metrics
from sim.engine import RoundResult
from sim.market import Market

#: Keys of `CostMeter.summary()`, in report order.
METRICS = (
    "jobs",
    "correct_results",
    "fake_accepted_per_job",
    "extra_executions_per_job",
    "mediation_fees_per_job",
    "collateral_blocks_per_job",
    "client_cost_per_correct_result",
    "cost_per_correct_result",
)


def correct_per_job(deals: DealBatch) -> tuple[np.ndarray, np.ndarray]:
    """Per deal: the job it belongs to (dense index) and whether that job delivered a correct result.

    A job delivers one if any of its replicas posted the correct output: a node that did the work, including one
    whose output the protocol swapped for a forced error, or a lazy node that copied a correct replica."""
    jobs, job = np.unique(deals.group, return_inverse=True)
    good = deals.submitted & ((deals.result == CORRECT) | (deals.forced_error & ~deals.cheated))
    delivered = np.zeros(len(jobs), dtype=bool)
    np.logical_or.at(delivered, job, good)
    return job, delivered


def locked_blocks(deals: DealBatch) -> np.ndarray:
    """Per deal: value x blocks its escrows must stay available (see module doc)."""
    agreed = deals.client_agreed & deals.node_agreed
    checked = deals.checked.astype(np.int64)
    submit, judge, mediate = deals.deadline_submit, deals.deadline_judge, deals.deadline_mediate * checked
    client = (deals.payment_collateral + deals.judge_collateral) * (submit + judge + mediate)
    client += deals.mediation_fee * mediate
    node = deals.submit_collateral * submit + np.where(deals.submitted, deals.results_collateral * (judge + mediate), 0)
    return np.where(agreed, client + node, 0)


@dataclass
class CostMeter:
    """Accumulates a run's costs; `update` once per round with the wealth of every account before the round."""

    market: Market
    capital_rate: float
    totals: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(
            (*metrics.COUNTS, "correct_results", "mediation_fees", "collateral_blocks", "client_outlay"), 0.0
        )
    )

    def update(
        self, result: RoundResult, wealth_before: np.ndarray, wealth_after: np.ndarray, standing_escrow: int
    ) -> None:
        d, t, m, c = result.deals, result.transfers, self.market, self.totals
        for key, n in metrics.round_counts(d, t).items():
            c[key] += n
        c["correct_results"] += int(correct_per_job(d)[1].sum())
        fees = (t.reason == Reason.MediationFee) & (t.direction == Direction.PaidOut)
        c["mediation_fees"] += int(t.amount[fees].sum())
        round_blocks = int(
            (d.deadline_agree + d.deadline_submit + d.deadline_judge + d.deadline_mediate).max(initial=0)
        )
        c["collateral_blocks"] += float(locked_blocks(d).sum()) + float(standing_escrow) * round_blocks
        clients = slice(0, m.facts.first_node)
        c["client_outlay"] += float(wealth_before[clients].sum() - wealth_after[clients].sum())

    def summary(self) -> dict[str, float | None]:
        c, per = self.totals, metrics.ratio
        shared = metrics.rates(c)  # the definitions summary.json uses
        return {
            "jobs": c["jobs"],
            "correct_results": c["correct_results"],
            "fake_accepted_per_job": shared["fake_accepted_per_job"],
            "extra_executions_per_job": shared[metrics.EXTRA_EXECUTIONS],
            "mediation_fees_per_job": per(c["mediation_fees"], c["jobs"]),
            "collateral_blocks_per_job": per(c["collateral_blocks"], c["jobs"]),
            "client_cost_per_correct_result": per(c["client_outlay"], c["correct_results"]),
            "cost_per_correct_result": per(
                c["client_outlay"] + self.capital_rate * c["collateral_blocks"], c["correct_results"]
            ),
        }
