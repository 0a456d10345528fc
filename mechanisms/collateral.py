"""Collateral terms chosen per node: a results-collateral multiplier, a size-independent minimum deposit, and
overrides of the timeout collaterals and the client's payment collateral share.

Lilypad v2 fixes one results multiplier for everyone; here a node states its own in its offer, so the twin can
ask whether a high-collateral node is worth more to clients and whether a minimum deposit deters cheating on small
jobs, where `multiplier x job cost` is too small to matter. The multiplier is a per-node property picked by a
deterministic rule (no setup, no draws): the node with account id `a` posts `multipliers_bps[a % len]`.

Listed after `lilypad_v2`, it replaces that mechanism's terms and moves each party's exposure by the difference,
so mechanisms that add to the exposures (taxes, storage) compose in any order after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from mechanisms.base import Mechanism, register
from mechanisms.bounds import MoneyBounds
from mechanisms.config import Length
from mechanisms.deals import DealBatch
from mechanisms.hooks import Columns, hook_columns
from mechanisms.lilypad_v2 import PaymentShare
from mechanisms.money import Amount, Multiplier, mul_bps

REPLACED = ("results_collateral", "submit_collateral", "judge_collateral", "payment_collateral")


@dataclass(frozen=True)
class CollateralConfig:
    # node account a posts multipliers_bps[a % len] x job cost
    multipliers_bps: Annotated[tuple[Multiplier, ...], Length(1)] = (20_000,)
    min_deposit: Amount = 0  # results collateral = max(min_deposit, multiplier x job cost)
    submit_timeout_collateral: Amount | None = None  # replaces the base mechanism's; None keeps it
    judge_timeout_collateral: Amount | None = None  # replaces the base mechanism's; None keeps it
    payment_collateral_bps: PaymentShare | None = None  # client escrow as a share of job cost; None keeps it


def replace_term(deals: DealBatch, column: str, new: np.ndarray, exposure: str) -> None:
    """Set a terms column and move the party's worst-case exposure by the change (keeps later additions)."""
    new = np.asarray(new, dtype=np.int64)
    setattr(deals, exposure, getattr(deals, exposure) + new - getattr(deals, column))
    setattr(deals, column, new)


@register
class Collateral(Mechanism):
    name = "collateral"
    Config = CollateralConfig
    # replaces the base's terms (reading them, to move the exposures by the difference)
    columns = hook_columns(
        set_terms=Columns(reads=REPLACED, sets=REPLACED, updates=("client_exposure", "node_exposure")),
    )

    def bound_money(self, bounds: MoneyBounds, path: str) -> None:
        c = self.config
        results = max(c.min_deposit, mul_bps(bounds.job_cost, max(c.multipliers_bps)))
        field, value = (
            (f"{path}.min_deposit", c.min_deposit)
            if results == c.min_deposit
            else (f"{path}.multipliers_bps", list(c.multipliers_bps))
        )
        bounds.term("results_collateral", results, field, value, "node")
        for column, name, party in (
            ("submit_collateral", "submit_timeout_collateral", "node"),
            ("judge_collateral", "judge_timeout_collateral", "client"),
        ):
            if getattr(c, name) is not None:
                bounds.term(column, getattr(c, name), f"{path}.{name}", getattr(c, name), party)
        if c.payment_collateral_bps is not None:
            bounds.rate("payment_collateral", c.payment_collateral_bps, f"{path}.payment_collateral_bps", "client")

    def multiplier_bps(self, node: np.ndarray) -> np.ndarray:
        """Results-collateral multiplier each node account posts in its offer."""
        table = np.asarray(self.config.multipliers_bps, dtype=np.int64)
        return table[np.asarray(node, dtype=np.int64) % len(table)]

    def set_terms(self, deals: DealBatch) -> None:
        c, n = self.config, len(deals)
        results = np.maximum(c.min_deposit, mul_bps(deals.job_cost, self.multiplier_bps(deals.node)))
        replace_term(deals, "results_collateral", results, "node_exposure")
        if c.submit_timeout_collateral is not None:
            replace_term(deals, "submit_collateral", np.full(n, c.submit_timeout_collateral), "node_exposure")
        if c.judge_timeout_collateral is not None:
            replace_term(deals, "judge_collateral", np.full(n, c.judge_timeout_collateral), "client_exposure")
        if c.payment_collateral_bps is not None:
            replace_term(
                deals, "payment_collateral", mul_bps(deals.job_cost, c.payment_collateral_bps), "client_exposure"
            )
