"""A tax on every paid deal funds a jackpot for whoever proves a cheat, optionally with Truebit-style forced errors.

Checking costs a client the mediation fee and, in a market of honest nodes, finds nothing: rational clients stop
checking and cheating becomes safe again (the verifier's dilemma). A jackpot pays the checker of every result that
mediation rejects, and forced errors (known-wrong results the protocol injects at a small rate) make sure there is
something to find even when nobody cheats. The node of a forced error is not at fault: the base mechanism pays it
and refunds its collateral.

* Tax: `tax_bps` of the job cost of every deal whose node was paid (`DealBatch.paid`), into `Pool.Jackpot`. The
  node pays it out of its payment, or the client on top (escrowed at agreement, counted in `client_exposure`,
  refunded if the node is not paid).
* Claims: the checking client of every MediationRejected deal (the chain sees the rejection, not whether the result
  was really wrong), and with `reward_mediators` every panel member who voted for the rejection. With
  `pay_for: forced_errors` only rejected forced errors claim (Truebit: real errors are paid from the solver's
  deposit), so a node and a client cannot farm the jackpot with a deliberate fake. With `claimants: verifiers` the
  verifiers that found the error claim instead of the client (see `mechanisms.verifiers`), one claim each.
* Payout once per round (`settle_round`, after every deal settled, whatever batches they settled in) from the pool
  as it stood at the round's start (this round's taxes wait for the next round): `fraction` shares
  floor(pool x fraction_bps) equally among the round's claims (floor; the remainder stays), `fixed` pays each
  claim min(amount, floor(pool / claims)); `max_payout` caps each claim.

List after the base mechanism: the tax reads `DealBatch.paid`, which the base mechanism's `settle` sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from mechanisms.base import Mechanism, register
from mechanisms.bounds import MoneyBounds
from mechanisms.config import Probability
from mechanisms.deals import DealBatch, require_context
from mechanisms.hooks import Columns, hook_columns
from mechanisms.money import Amount, Pool, Share, mul_bps
from mechanisms.protocol import DealState, Direction, Reason, Step
from mechanisms.transfers import TransferBuilder


@dataclass(frozen=True)
class TaxJackpotConfig:
    tax_bps: Share = 100  # share of the job cost of every paid deal that goes to the jackpot
    tax_payer: Literal["node", "client"] = "node"  # node: out of its payment; client: on top of the payment
    # fraction: the round's claims share fraction_bps of the pool; fixed: `amount` per claim; per_claim: each claim
    # in turn gets fraction_bps of what the pool holds then (independent of how claims fall into rounds)
    mode: Literal["fraction", "fixed", "per_claim"] = "fraction"
    fraction_bps: Share = 1_000  # fraction / per_claim mode: share of the pool paid out per round / per claim
    amount: Amount = 100  # fixed mode: payout per claim (at most pool / claims)
    max_payout: Amount | None = None  # cap per claim; None = no cap
    reward_mediators: bool = False  # panel members who voted to reject also claim
    forced_error_rate: Probability = 0.0  # probability the protocol swaps a deal's result for a known-wrong one
    pay_for: Literal["rejected", "forced_errors"] = "rejected"  # forced_errors: only rejected forced errors claim
    claimants: Literal["client", "verifiers"] = "client"  # verifiers: each verifier that found the error claims


@register
class TaxJackpot(Mechanism):
    name = "tax_jackpot"
    Config = TaxJackpotConfig
    draws_per_deal = 1  # whether the deal gets a forced error
    columns = hook_columns(
        set_terms=Columns(updates=("forced_error", "client_exposure")),
        settle=Columns(reads=("client_agreed", "paid")),
        settle_round=Columns(
            reads=("state", "panel", "dissenters", "forced_error", "verifiers.found", "verifiers.account")
        ),
    )

    def bound_money(self, bounds: MoneyBounds, path: str) -> None:
        """A client-paid tax is escrowed on top; payouts come from the pool, which holds at most the market's value
        and is shared with Python ints (see `payout`)."""
        if self.config.tax_payer == "client":
            bounds.expose(
                "client", mul_bps(bounds.job_cost, self.config.tax_bps), f"{path}.tax_bps", self.config.tax_bps
            )

    def requires(self) -> dict[str, str]:
        return {"verifiers": "claimants"} if self.config.claimants == "verifiers" else {}

    def tax(self, deals: DealBatch) -> np.ndarray:
        return mul_bps(deals.job_cost, self.config.tax_bps)

    def set_terms(self, deals: DealBatch) -> None:
        deals.forced_error = deals.forced_error | (self.uniforms(deals, 0) < self.config.forced_error_rate)
        if self.config.tax_payer == "client":
            deals.client_exposure = deals.client_exposure + self.tax(deals)

    def claims(self, deals: DealBatch) -> list[tuple[np.ndarray, np.ndarray]]:
        """(deals with the claim, claimant account per deal): the checking client, then each rejecting mediator."""
        rejected = deals.state == DealState.MediationRejected
        if self.config.pay_for == "forced_errors":
            rejected = rejected & deals.forced_error
        if self.config.claimants == "verifiers":
            found, account = deals.extra["verifiers.found"], deals.extra["verifiers.account"]
            out = [(rejected & found[:, j], account[:, j]) for j in range(found.shape[1])]
        else:
            out = [(rejected, deals.client)]
        if self.config.reward_mediators:
            majority = deals.panel & ~deals.dissenters
            for i, account in enumerate(deals.mediator_accounts):
                out.append((rejected & ((majority >> i) & 1 == 1), np.full(len(deals), account, dtype=np.int64)))
        return out

    def payout(self, pool: int, n_claims: int) -> int:
        """What each of the round's `n_claims` claims receives from a pool of `pool` at the round's start."""
        c = self.config
        if n_claims == 0:
            return 0
        each = (
            int(mul_bps(pool, c.fraction_bps)) // n_claims if c.mode == "fraction" else min(c.amount, pool // n_claims)
        )
        return each if c.max_payout is None else min(each, c.max_payout)

    def settle(self, deals: DealBatch, out: TransferBuilder) -> None:
        jackpot = deals.pool_base + Pool.Jackpot
        tax, D = self.tax(deals), Direction
        if self.config.tax_payer == "client":
            out.add(Step.Agree, deals.client_agreed, deals.client, tax, Reason.Tax, D.PaidIn)
            out.add(Step.Settle, deals.paid, deals.client, tax, Reason.Tax, D.PaidOut, jackpot)
            out.add(Step.Settle, deals.client_agreed & ~deals.paid, deals.client, tax, Reason.Tax, D.Refunded)
        else:
            out.add(Step.Settle, deals.paid, deals.node, tax, Reason.Tax, D.Spent, jackpot)

    def per_claim(self, pool: int, n_claims: int) -> list[int]:
        """`per_claim` mode: claim i receives floor(pool_i x fraction_bps) (capped), pool_{i+1} = pool_i minus it, so
        a claim's payout depends only on the claims before it, not on how they were batched into rounds."""
        c, out = self.config, []
        for _ in range(n_claims):
            each = int(mul_bps(pool, c.fraction_bps))
            each = each if c.max_payout is None else min(each, c.max_payout)
            out.append(each)
            pool -= each
        return out

    def settle_round(self, deals: DealBatch, out: TransferBuilder) -> None:
        """The round's claims share the payout (batch-independent: called once with the whole round)."""
        jackpot = deals.pool_base + Pool.Jackpot
        claims = self.claims(deals)
        if self.config.mode == "per_claim":  # claims in order: by claimant kind, then by deal
            pool = int(require_context(deals, self.name).balance[jackpot])
            amounts = iter(self.per_claim(pool, sum(int(mask.sum()) for mask, _ in claims)))
            for mask, claimant in claims:
                each = np.zeros(len(deals), dtype=np.int64)
                rows = np.flatnonzero(mask)
                each[rows] = [next(amounts) for _ in rows]
                out.add(Step.Round, mask, jackpot, each, Reason.Jackpot, Direction.Spent, claimant)
            return
        pool = int(require_context(deals, self.name).balance[jackpot])
        each = self.payout(pool, sum(int(mask.sum()) for mask, _ in claims))
        for mask, claimant in claims:
            out.add(Step.Round, mask, jackpot, each, Reason.Jackpot, Direction.Spent, claimant)
