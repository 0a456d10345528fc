"""Beta reputation from the public record: clients prefer nodes whose checked results passed.

A node's score is the mean of a beta distribution over "a checked result passes", with a prior of `alpha` passes
and `beta` failures (basis points of one observation), updated by the public record's counters:

    score_bps = floor(BPS x (passed + alpha) / (passed + failed + timeouts + alpha + beta))

computed exactly in integers. The solver ranks offers by `price x BPS // score` (a node at half the best score
looks twice as expensive); a fixed-price client's limit binds that effective price (see `sim.solver.match`), so a
poor score can price a node out. Nodes below `min_score_bps` (and nodes whose score floors to 0) are excluded.

A fresh identity starts at the prior, so a node that cheats and then takes a new identity (whitewashing,
`NodeActions.whitewash`) competes as a newcomer: below nodes with a good record, above caught cheaters who keep
their name. The prior sets that trade-off (a low alpha makes newcomers, and whitewashers, pay for it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from mechanisms.base import Mechanism, register
from mechanisms.bounds import MoneyBounds
from mechanisms.config import Range, require
from mechanisms.deals import RoundContext
from mechanisms.money import BPS, Share

MAX_PRIOR = 1_000 * BPS  # a prior worth up to 1000 observations
Prior = Annotated[int, Range(0, MAX_PRIOR)]


def beta_score_bps(
    counters: Mapping[str, np.ndarray], accounts: np.ndarray, alpha_bps: int, beta_bps: int
) -> np.ndarray:
    """Beta-reputation score of each account in basis points (floor), from its public-record counters."""
    accounts = np.asarray(accounts, dtype=np.int64)
    passed = counters["passed"][accounts]
    events = passed + counters["failed"][accounts] + counters["timeouts"][accounts]
    return (passed * BPS + alpha_bps) * BPS // (events * BPS + alpha_bps + beta_bps)


def validate_prior(alpha_bps: int, beta_bps: int, path: str) -> None:
    """alpha + beta > 0, so a fresh identity has a defined score."""
    require(alpha_bps + beta_bps > 0, f"{path}.beta_bps", beta_bps, "alpha_bps + beta_bps > 0")


@dataclass(frozen=True)
class ReputationConfig:
    alpha_bps: Prior = 10_000  # prior passes (10_000 = one observation); a fresh identity scores alpha/(alpha+beta)
    beta_bps: Prior = 10_000  # prior failures
    min_score_bps: Share = 0  # offers of nodes scoring below this are withdrawn

    def validate(self, path: str) -> None:
        validate_prior(self.alpha_bps, self.beta_bps, path)


@register
class Reputation(Mechanism):
    name = "reputation"
    Config = ReputationConfig

    def bound_money(self, bounds: MoneyBounds, path: str) -> None:
        """Ranking multiplies the effective price so far by BPS (then divides by a score of at least 1)."""
        bounds.rank = bounds.product(
            "market.node_price[1]",
            bounds.facts.max_price,
            BPS,
            "the effective price x 10000 in reputation's ranking",
            size=bounds.rank,
        )

    def score_bps(self, accounts: np.ndarray, context: RoundContext) -> np.ndarray:
        return beta_score_bps(context.counters, accounts, self.config.alpha_bps, self.config.beta_bps)

    def rank_offers(self, node: np.ndarray, price: np.ndarray, context: RoundContext) -> np.ndarray:
        score = self.score_bps(node, context)
        keep = (score >= self.config.min_score_bps) & (score > 0)
        return np.where(keep, np.asarray(price, dtype=np.int64) * BPS // np.maximum(score, 1), -1)
