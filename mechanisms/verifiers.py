"""Truebit-style verifiers: independent accounts that each pay to verify tasks and are rewarded for the errors they
find; forced errors are rewarded from the jackpot, real errors from the solver's deposit.

The first `verifiers` staker accounts (`market.n_stakers`, laid out after the mediators) act as verifiers. Each
verifies each posted result with probability `participation` (one pre-drawn uniform per verifier and deal), paying
`verification_cost` to the Compute pool for it; a verifier that cannot cover the round's worst case (its balance at
the round's start below `verification_cost` x the most deals a round can have) verifies nothing that round. A wrong
result that some verifier verified is challenged: the deal goes to mediation (the verification game). If mediation
rejects a real error (the node at fault), the solver's deposit goes to the first verifier that found it; a rejected
forced error is claimed from the jackpot by every verifier that found it (`tax_jackpot` with `claimants:
verifiers`, which shares the payout per claim). With clients that never check, verification is the verifiers' job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from mechanisms.base import MarketFacts, Mechanism, register
from mechanisms.bounds import MoneyBounds
from mechanisms.config import Probability, Range, require
from mechanisms.deals import DealBatch, require_context
from mechanisms.hooks import Columns, hook_columns
from mechanisms.money import Amount, Pool
from mechanisms.protocol import Direction, Reason, Step
from mechanisms.transfers import TransferBuilder

MAX_VERIFIERS = 64
MAX_REPLICAS = 8  # deals a job can be bought as (replication.replicas)


@dataclass(frozen=True)
class VerifiersConfig:
    verifiers: Annotated[int, Range(1, MAX_VERIFIERS)] = 3  # the first n staker accounts verify
    participation: Probability = 1.0  # probability that a verifier verifies a given result
    verification_cost: Amount = 0  # what verifying one result costs a verifier


@register
class Verifiers(Mechanism):
    name = "verifiers"
    Config = VerifiersConfig
    columns = hook_columns(
        choose_checks=Columns(
            reads=("submitted", "result", "judged"),
            updates=("checked",),
            sets=("verifiers.verified", "verifiers.found", "verifiers.account"),
        ),
        slash_destinations=Columns(
            reads=("state", "forced_error", "excused", "verifiers.found", "verifiers.account"),
            updates=("node_slash_to",),
        ),
        settle=Columns(reads=("verifiers.verified", "verifiers.account")),
    )

    def __init__(self, config: VerifiersConfig) -> None:
        super().__init__(config)
        self.draws_per_deal = config.verifiers
        self.accounts: np.ndarray | None = None
        self.round_deals = 0

    def validate(self, facts: MarketFacts, path: str) -> None:
        c = self.config
        require(
            c.verifiers <= facts.n_stakers,
            f"{path}.verifiers",
            c.verifiers,
            f"at most market.n_stakers ({facts.n_stakers}): verifiers are staker accounts",
        )
        self.accounts = facts.first_staker + np.arange(c.verifiers, dtype=np.int64)
        self.round_deals = facts.n_clients * MAX_REPLICAS  # the most deals a round can have

    def bound_money(self, bounds: MoneyBounds, path: str) -> None:
        c = self.config
        bounds.product(
            f"{path}.verification_cost",
            c.verification_cost,
            max(bounds.facts.n_clients, 1) * MAX_REPLICAS,
            "a verifier's worst-case cost in a round",
        )

    def choose_checks(self, deals: DealBatch) -> None:
        if self.accounts is None:
            raise ValueError("verifiers: validate the stack against the market first (it fixes the accounts)")
        c, n = self.config, len(deals)
        balance = require_context(deals, self.name).balance[self.accounts]
        able = balance >= c.verification_cost * self.round_deals
        u = deals.extra["u"][:, self.draw_offset : self.draw_offset + c.verifiers]
        verified = deals.submitted[:, None] & (u < c.participation) & able[None, :]
        found = verified & deals.wrong()[:, None]
        deals.extra["verifiers.verified"] = verified
        deals.extra["verifiers.found"] = found
        deals.extra["verifiers.account"] = np.broadcast_to(self.accounts, (n, c.verifiers)).copy()
        deals.checked |= deals.judged & found.any(axis=1)

    def slash_destinations(self, deals: DealBatch) -> None:
        """A real error's deposit goes to the first verifier that found it."""
        found = deals.extra["verifiers.found"]
        first = np.argmax(found, axis=1)
        challenged = found.any(axis=1) & deals.node_at_fault()
        account = deals.extra["verifiers.account"][np.arange(len(deals)), first]
        deals.node_slash_to = np.where(challenged, account, deals.node_slash_to)

    def settle(self, deals: DealBatch, out: TransferBuilder) -> None:
        verified, account = deals.extra["verifiers.verified"], deals.extra["verifiers.account"]
        compute = deals.pool_base + Pool.Compute
        for j in range(self.config.verifiers):
            out.add(
                Step.Judge,
                verified[:, j],
                account[:, j],
                self.config.verification_cost,
                Reason.ComputeCost,
                Direction.Spent,
                compute,
            )
