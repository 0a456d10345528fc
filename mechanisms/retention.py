"""Data retention: a job's inputs and outputs are kept for `window` blocks, and only a check within it can run.

A mediator can only re-run a job whose inputs are still stored, and storage is not free. The window trades
storage cost (and payment held back until the window closes) against the checks it allows: a client that judges
after the window has passed can no longer ask for mediation, and the result stands.

* Storage: `window x storage_cost` per agreed deal, paid at agreement by the client or the node (`payer`, counted
  in that party's exposure) to `Pool.Compute` (Reason.StorageCost, Spent). The protocol treasury is no choice:
  it could pay only while it holds enough, and no party's exposure would cover the shortfall.
* Checks: a check is refused when the client's judge response time (`DealBatch.judge_time`, blocks after the
  result) exceeds the window: `checked &= judge_time <= window`. This filter must see every other source of
  checks: it reads `checked` in `choose_checks`, so the stack refuses an order that lists a mechanism adding
  checks after it. It only binds when the window is shorter than the judge deadline.
* Locked value: the node's payment is released only when the window closes; each paid deal reports the locked
  value x time, `job_cost x window` base-unit-blocks, in `extra["retention.locked_blocks"]` (0 when unpaid).

List after the base mechanism: locked value reads `DealBatch.paid`, set by the base mechanism's `settle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from mechanisms.base import Mechanism, register
from mechanisms.bounds import MoneyBounds
from mechanisms.config import Range, number, require
from mechanisms.deals import DealBatch
from mechanisms.hooks import Columns, hook_columns
from mechanisms.money import MAX_AMOUNT, Amount, Pool
from mechanisms.protocol import Direction, Reason, Step
from mechanisms.transfers import TransferBuilder

LOCKED = "retention.locked_blocks"


@dataclass(frozen=True)
class RetentionConfig:
    window: Annotated[int, Range(0, 10**9)] = 100  # blocks inputs and outputs are kept after the result is posted
    storage_cost: Amount = 1  # base units per block of storage
    payer: Literal["client", "node"] = "client"  # the protocol treasury cannot guarantee it pays

    def validate(self, path: str) -> None:
        require(
            self.window * self.storage_cost <= MAX_AMOUNT,
            f"{path}.storage_cost",
            self.storage_cost,
            f"window x storage_cost at most {number(MAX_AMOUNT)}",
        )


@register
class Retention(Mechanism):
    name = "retention"
    Config = RetentionConfig
    columns = hook_columns(
        set_terms=Columns(updates=("client_exposure", "node_exposure")),  # the payer's
        # reads the checks every other mechanism chose, so it comes after all of them
        choose_checks=Columns(reads=("checked", "judge_time"), updates=("checked",)),
        settle=Columns(reads=("client_agreed", "node_agreed", "paid"), sets=(LOCKED,)),
    )

    def bound_money(self, bounds: MoneyBounds, path: str) -> None:
        c = self.config
        bounds.expose(c.payer, c.window * c.storage_cost, f"{path}.storage_cost", c.storage_cost)
        bounds.product(f"{path}.window", c.window, bounds.job_cost, "job cost x window (locked value x time)")

    def storage(self, deals: DealBatch) -> np.ndarray:
        return np.full(len(deals), self.config.window * self.config.storage_cost, dtype=np.int64)

    def set_terms(self, deals: DealBatch) -> None:
        exposure = f"{self.config.payer}_exposure"
        setattr(deals, exposure, getattr(deals, exposure) + self.storage(deals))

    def choose_checks(self, deals: DealBatch) -> None:
        deals.checked &= deals.judge_time <= self.config.window

    def settle(self, deals: DealBatch, out: TransferBuilder) -> None:
        payer = deals.client if self.config.payer == "client" else deals.node
        out.add(
            Step.Agree,
            deals.client_agreed & deals.node_agreed,
            payer,
            self.storage(deals),
            Reason.StorageCost,
            Direction.Spent,
            deals.pool_base + Pool.Compute,
        )
        deals.extra[LOCKED] = np.where(deals.paid, deals.job_cost * self.config.window, 0)
