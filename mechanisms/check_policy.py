"""The protocol, not the client, sets each deal's check probability (`DealBatch.check_rate`) at agreement.

A client left to itself checks too little (checks cost it the mediation fee and usually find nothing); a
protocol-set rate makes the deterrent a term of the deal that the twin can sweep. The client still pays for the
check (the base mechanism charges it the mediation fee). Modes:

* `fixed`: every deal is checked with probability `q`;
* `reputation`: `q = q_min + (q_max - q_min) x (1 - score)`, with the node's beta-reputation score
  (see `mechanisms.reputation`; prior `alpha_bps`, `beta_bps`): newcomers and caught cheaters are checked most;
* `budget`: a client spends at most `budget_bps` of the job cost on checks in expectation:
  `q = min(q_max, budget_bps / BPS x job_cost / mediation_fee)` (`q_max` if the fee is 0).

It replaces the clients' own rates; it reads the mediation fee, so list it after the base mechanism and any
mechanism that sets the fee (consortium); the stack refuses the other order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from mechanisms.base import Mechanism, register
from mechanisms.bounds import MoneyBounds
from mechanisms.config import Probability, require
from mechanisms.deals import DealBatch, require_context
from mechanisms.hooks import Columns, hook_columns
from mechanisms.money import BPS, Multiplier
from mechanisms.reputation import Prior, beta_score_bps, validate_prior

Mode = Literal["fixed", "reputation", "budget"]


@dataclass(frozen=True)
class CheckPolicyConfig:
    mode: Mode = "fixed"
    q: Probability = 0.1  # fixed: check probability of every deal
    q_min: Probability = 0.02  # reputation: check probability of a node with a perfect score
    q_max: Probability = 0.5  # reputation: probability at score 0; budget: the cap
    alpha_bps: Prior = 10_000  # reputation: prior passes of the node's score (10_000 = one observation)
    beta_bps: Prior = 10_000  # reputation: prior failures
    budget_bps: Multiplier = 1_000  # budget: expected check spending as a share of the job cost

    def validate(self, path: str) -> None:
        require(self.q_min <= self.q_max, f"{path}.q_min", self.q_min, f"at most q_max ({self.q_max})")
        validate_prior(self.alpha_bps, self.beta_bps, path)


@register
class CheckPolicy(Mechanism):
    name = "check_policy"
    Config = CheckPolicyConfig
    columns = hook_columns(set_terms=Columns(reads=("mediation_fee",), sets=("check_rate",)))  # the fee: budget mode

    def bound_money(self, bounds: MoneyBounds, path: str) -> None:
        if self.config.mode == "budget":  # budget_bps x job cost, in int64 before the float division
            bounds.product(f"{path}.budget_bps", self.config.budget_bps, bounds.job_cost, "budget_bps x job cost")

    def rate(self, deals: DealBatch) -> np.ndarray:
        """Check probability per deal under the configured mode."""
        c, n = self.config, len(deals)
        if c.mode == "fixed":
            return np.full(n, float(c.q))
        if c.mode == "reputation":
            counters = require_context(deals, self.name).counters
            doubt = (BPS - beta_score_bps(counters, deals.node, c.alpha_bps, c.beta_bps)) / BPS
            return c.q_min + (c.q_max - c.q_min) * doubt
        fee = deals.mediation_fee
        affordable = c.budget_bps * deals.job_cost / (BPS * np.maximum(fee, 1))
        return np.where(fee > 0, np.minimum(float(c.q_max), affordable), float(c.q_max))

    def set_terms(self, deals: DealBatch) -> None:
        deals.check_rate = self.rate(deals)
