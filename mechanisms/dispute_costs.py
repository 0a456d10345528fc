"""Dispute costs as the papers have them: fees that scale with the job, the client's own verification cost, the cost
of producing a fake, and who pays for a dispute.

The base mechanism charges one flat fee per check, paid by the client, and sends a rejected node's deposit whole to
its slash destination. The verifiable-computing papers price these separately: MODiCuM's job creator pays its own
verification cost besides the mediator's fee; Dong et al.'s Prisoner's contract pays the trusted party's cost out of
the cheater's deposit, so the client is made whole; a fee proportional to the job stops a small job's check from
costing as much as the largest module's re-run.

* `fee_per_instruction`: the mediation fee grows by this much per instruction of the job (added to the base fee).
* `verification_cost`: what one check costs the client besides the fee (paid to the Compute pool when it checks,
  also when `imperfect_verification.client_detection` made the check miss a wrong result).
* `fake_cost`: what producing a fake result costs a cheating node (paid to the Compute pool when it posts one).
* `loser_pays`: a node whose result mediation rejects pays the fee out of its slashed deposit (at most the deposit):
  whoever received the deposit passes that much to the client, who paid the fee.
* `client_share_bps`: the client receives this share of what remains of the rejected node's deposit.

Deposits a whistleblower was rewarded from (`whistleblowing.rewarded`) keep the whistleblower's split. List after
the base mechanism (it adds to the fee and exposures the base sets) and after `consortium`, whose fee it extends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from mechanisms.base import Mechanism, register
from mechanisms.bounds import MoneyBounds
from mechanisms.config import Range
from mechanisms.deals import DealBatch
from mechanisms.hooks import Columns, hook_columns
from mechanisms.lilypad_v2 import visited
from mechanisms.money import Amount, Pool, Share, mul_bps
from mechanisms.protocol import DealState, Direction, Reason, Step
from mechanisms.transfers import TransferBuilder

MAX_INSTRUCTIONS = 10**12  # the most instructions a module may have (sim.market.ModuleSpec)


@dataclass(frozen=True)
class DisputeCostsConfig:
    fee_per_instruction: Annotated[int, Range(0, 10**6)] = 0  # added to the mediation fee per instruction of the job
    verification_cost: Amount = 0  # the client's own cost per check, besides the fee
    fake_cost: Amount = 0  # a cheating node's cost of producing its fake result
    loser_pays: bool = False  # a rejected node's deposit pays the fee back to the client
    client_share_bps: Share = 0  # share of the rest of a rejected node's deposit paid to the client


@register
class DisputeCosts(Mechanism):
    name = "dispute_costs"
    Config = DisputeCostsConfig
    columns = hook_columns(
        set_terms=Columns(updates=("mediation_fee", "client_exposure", "node_exposure")),
        settle=Columns(
            reads=(
                "state",
                "submitted",
                "cheated",
                "forced_error",
                "excused",
                "results_collateral",
                "mediation_fee",
                "node_slash_to",
                "whistleblowing.rewarded",
                "imperfect_verification.missed",
            )
        ),
    )

    def bound_money(self, bounds: MoneyBounds, path: str) -> None:
        """The fee grows by fee_per_instruction x instructions (the client escrows it); the client's verification
        cost and a cheater's fake cost add to their exposures."""
        c = self.config
        extra = bounds.product(
            f"{path}.fee_per_instruction",
            c.fee_per_instruction,
            MAX_INSTRUCTIONS,
            "the fee per instruction x a module's most instructions",
        )
        fee = bounds.terms.get("mediation_fee", 0) + extra
        bounds.term("mediation_fee", fee, f"{path}.fee_per_instruction", c.fee_per_instruction, "client")
        bounds.expose("client", c.verification_cost, f"{path}.verification_cost", c.verification_cost)
        bounds.expose("node", c.fake_cost, f"{path}.fake_cost", c.fake_cost)

    def scaled_fee(self, deals: DealBatch) -> np.ndarray:
        return deals.instructions * self.config.fee_per_instruction

    def set_terms(self, deals: DealBatch) -> None:
        c = self.config
        deals.mediation_fee = deals.mediation_fee + self.scaled_fee(deals)
        deals.client_exposure = deals.client_exposure + self.scaled_fee(deals) + c.verification_cost
        deals.node_exposure = deals.node_exposure + c.fake_cost

    def dispute_refund(self, deals: DealBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(deals whose slashed deposit pays the client, the fee paid back, the client's share of the rest)."""
        c = self.config
        rewarded = deals.extra.get("whistleblowing.rewarded", np.zeros(len(deals), dtype=bool))
        pays = deals.node_at_fault() & (deals.node_slash_to != deals.client) & ~rewarded
        deposit = deals.results_collateral
        fee = np.minimum(deals.mediation_fee, deposit) if c.loser_pays else np.zeros(len(deals), dtype=np.int64)
        return pays, fee, mul_bps(deposit - fee, c.client_share_bps)

    def settle(self, deals: DealBatch, out: TransferBuilder) -> None:
        c, compute = self.config, deals.pool_base + Pool.Compute
        out.add(
            Step.Submit,
            deals.submitted & deals.cheated,
            deals.node,
            c.fake_cost,
            Reason.ComputeCost,
            Direction.Spent,
            compute,
        )
        # a check imperfect_verification's client_detection missed was made (and paid for) but disputed nothing
        missed = deals.extra.get("imperfect_verification.missed", np.zeros(len(deals), dtype=bool))
        out.add(
            Step.Judge,
            visited(deals, DealState.ResultsChecked) | missed,
            deals.client,
            c.verification_cost,
            Reason.ComputeCost,
            Direction.Spent,
            compute,
        )
        pays, fee, share = self.dispute_refund(deals)
        out.add(Step.Settle, pays, deals.node_slash_to, fee, Reason.MediationFee, Direction.Spent, deals.client)
        out.add(Step.Settle, pays, deals.node_slash_to, share, Reason.ResultsCollateral, Direction.Spent, deals.client)
