"""Transfers: every movement of value, with a reason, a direction and the step of the round it happens in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mechanisms.errors import InvariantViolation
from mechanisms.protocol import Direction, Reason, Step

NOBODY = -1  # payee of a PaidIn or Refunded transfer (value stays with the payer)


class NegativeTransfer(InvariantViolation, ValueError):
    """A hook asked for a negative amount: value would flow backwards (a bug in the hook's arithmetic)."""

COLUMNS = ("step", "deal_id", "payer", "payee", "amount", "reason", "direction", "hidden")


@dataclass(frozen=True)
class Transfers:
    """A structure of arrays, sorted by step (stable: append order within a step)."""

    step: np.ndarray
    deal_id: np.ndarray
    payer: np.ndarray
    payee: np.ndarray
    amount: np.ndarray
    reason: np.ndarray
    direction: np.ndarray
    hidden: np.ndarray  # bool: parties not attributable on the public record (anonymous mediation)

    def __len__(self) -> int:
        return len(self.amount)

    @classmethod
    def empty(cls) -> Transfers:
        return cls(*(np.zeros(0, dtype=bool if c == "hidden" else np.int64) for c in COLUMNS))

    @classmethod
    def concat(cls, parts: list[Transfers]) -> Transfers:
        """Transfers of several batches in order (empty columns for none)."""
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(t, c) for t in parts]) for c in COLUMNS))

    def sum_by(self, key: str, size: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Exact int64 sums of `amount` grouped by the integer column `key` (values in [0, size))."""
        keys = getattr(self, key)
        amounts = self.amount
        if mask is not None:
            keys, amounts = keys[mask], amounts[mask]
        out = np.zeros(size, dtype=np.int64)
        np.add.at(out, keys, amounts)
        return out

    def deal_rows(self, deal_id: np.ndarray) -> np.ndarray:
        """Row of each transfer's deal in `deal_id` (ascending ids, e.g. a round's deals); raises if a transfer
        belongs to none of them."""
        row = np.searchsorted(deal_id, self.deal_id)
        if len(self) and (len(deal_id) == 0 or not np.array_equal(deal_id[np.minimum(row, len(deal_id) - 1)],
                                                                  self.deal_id)):
            raise ValueError("transfers reference deals outside the given ones")
        return row

    def reason_sums(self, deal_id: np.ndarray) -> np.ndarray:
        """Exact int64 sum of `amount` per deal of `deal_id` (ascending) and per `Reason`, all directions: shape
        (len(deal_id), len(Reason)). The one definition of a deal's per-reason amounts (deal table, reference)."""
        sums = np.zeros((len(deal_id), len(Reason)), dtype=np.int64)
        np.add.at(sums, (self.deal_rows(deal_id), self.reason), self.amount)
        return sums


class TransferBuilder:
    """Collects transfers hook by hook; zero amounts are dropped."""

    def __init__(self, deal_id: np.ndarray) -> None:
        self._deal_id = deal_id
        self._parts: list[tuple[np.ndarray, ...]] = []

    def add(
        self,
        step: Step,
        mask: np.ndarray,
        payer: np.ndarray | int,
        amount: np.ndarray | int,
        reason: Reason,
        direction: Direction,
        payee: np.ndarray | int = NOBODY,
        hidden: bool = False,
    ) -> None:
        """Record, for every deal where `mask` holds, `amount` moving from `payer` (to `payee`)."""
        n = len(self._deal_id)
        mask = np.asarray(mask, dtype=bool)
        amount = np.broadcast_to(np.asarray(amount, dtype=np.int64), (n,))
        if (amount[mask] < 0).any():
            raise NegativeTransfer(f"negative {reason.name} transfer")
        keep = mask & (amount > 0)
        k = int(keep.sum())
        if k == 0:
            return
        self._parts.append(
            (
                np.full(k, int(step), dtype=np.int64),
                self._deal_id[keep],
                np.broadcast_to(np.asarray(payer, dtype=np.int64), (n,))[keep],
                np.broadcast_to(np.asarray(payee, dtype=np.int64), (n,))[keep],
                amount[keep],
                np.full(k, int(reason), dtype=np.int64),
                np.full(k, int(direction), dtype=np.int64),
                np.full(k, hidden, dtype=bool),
            )
        )

    def build(self) -> Transfers:
        if not self._parts:
            return Transfers.empty()
        cols = [np.concatenate(c) for c in zip(*self._parts, strict=True)]
        if (np.diff(cols[0]) < 0).any():  # hooks appended out of step order
            order = np.argsort(cols[0], kind="stable")
            cols = [c[order] for c in cols]
        return Transfers(*cols)
