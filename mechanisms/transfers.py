"""Transfers: every movement of value, with a reason, a direction and the step of the round it happens in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mechanisms.errors import InvariantViolation
from mechanisms.protocol import Direction, Reason, Step

NOBODY = -1  # payee of a PaidIn or Refunded transfer (value stays with the payer)


class NegativeTransfer(InvariantViolation, ValueError):
    """A hook asked for a negative amount: value would flow backwards (a bug in the hook's arithmetic)."""


COLUMNS = ("step", "deal_id", "payer", "payee", "amount", "reason", "direction", "hidden")
#: Column types of built transfers: the enum codes (step, reason, direction) are small, so a round's transfers (about
#: ten per deal) take 36 bytes a row rather than 64.
DTYPES: dict[str, type] = {
    "step": np.int8,
    "deal_id": np.int64,
    "payer": np.int64,
    "payee": np.int64,
    "amount": np.int64,
    "reason": np.int8,
    "direction": np.int8,
    "hidden": np.bool_,
}


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
        return cls(*(np.zeros(0, dtype=DTYPES[c]) for c in COLUMNS))

    @classmethod
    def concat(cls, parts: list[Transfers]) -> Transfers:
        """Transfers of several batches in order (empty columns for none)."""
        parts = [t for t in parts if len(t)]
        if len(parts) <= 1:
            return parts[0] if parts else cls.empty()
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
        if len(self) and (
            len(deal_id) == 0 or not np.array_equal(deal_id[np.minimum(row, len(deal_id) - 1)], self.deal_id)
        ):
            raise ValueError("transfers reference deals outside the given ones")
        return row

    def reason_sums(self, deal_id: np.ndarray) -> np.ndarray:
        """Exact int64 sum of `amount` per deal of `deal_id` (ascending) and per `Reason`, all directions: shape
        (len(deal_id), len(Reason)). The one definition of a deal's per-reason amounts (deal table, reference)."""
        sums = np.zeros((len(deal_id), len(Reason)), dtype=np.int64)
        np.add.at(sums, (self.deal_rows(deal_id), self.reason), self.amount)
        return sums


@dataclass(frozen=True)
class _Fixed:
    """A per-deal array no hook writes (a match column), read at the part's rows only when the batch is built."""

    source: np.ndarray


Value = np.ndarray | int | _Fixed


@dataclass
class _Part:
    """The transfers of one `TransferBuilder.add` (deal rows `rows`): per column, the values at those rows (gathered
    when added, as hook data may change later in the hook chain), a `_Fixed` array, or one value for all rows."""

    step: int
    rows: np.ndarray
    payer: Value
    payee: Value
    amount: Value
    reason: int
    direction: int
    hidden: bool

    def __len__(self) -> int:
        return len(self.rows)


class TransferBuilder:
    """Collects transfers hook by hook; zero amounts are dropped.

    `fixed` names arrays that no hook writes (the batch's match columns, see `DealBatch.fixed_columns`): a payer,
    payee or amount given as one of them is read once, straight into the built columns, instead of being copied
    at `add` and again at `build`."""

    def __init__(self, deal_id: np.ndarray, fixed: Sequence[np.ndarray] = ()) -> None:
        self._deal_id = deal_id
        self._fixed = tuple(fixed)
        self._fixed_ids = {id(f) for f in self._fixed}
        self._parts: list[_Part] = []

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
        mask = _per_deal(np.asarray(mask, dtype=bool), n)
        amount_values = np.asarray(amount, dtype=np.int64)
        if amount_values.ndim == 0:
            if amount_values < 0 and mask.any():
                raise NegativeTransfer(f"negative {reason.name} transfer")
            if amount_values == 0:
                return
            rows = np.flatnonzero(mask)
        else:
            amount_values = _per_deal(amount_values, n)
            if ((amount_values < 0) & mask).any():
                raise NegativeTransfer(f"negative {reason.name} transfer")
            rows = np.flatnonzero(mask & (amount_values > 0))
        if len(rows) == 0:
            return
        self._parts.append(
            _Part(
                int(step),
                rows,
                self._value(payer, rows),
                self._value(payee, rows),
                self._value(amount, rows),
                int(reason),
                int(direction),
                hidden,
            )
        )

    def _value(self, value: np.ndarray | int, rows: np.ndarray) -> Value:
        if isinstance(value, (int, np.integer)):
            return int(value)
        if id(value) in self._fixed_ids:  # (the arrays live as long as the builder holds `_fixed`)
            return _Fixed(value)
        value = np.asarray(value, dtype=np.int64)
        return int(value) if value.ndim == 0 else _per_deal(value, len(self._deal_id))[rows]

    def build(self) -> Transfers:
        """The transfers in step order (stable: append order within a step), built column by column, each part's
        values released as they are copied so a round's transfers are held about once, not twice."""
        parts = sorted(self._parts, key=lambda p: p.step)  # whole parts move: one step each
        self._parts = []
        ends = np.cumsum([len(p) for p in parts], dtype=np.int64)
        starts = ends - np.array([len(p) for p in parts], dtype=np.int64)
        total = int(ends[-1]) if len(parts) else 0
        cols = {}
        for name in COLUMNS:
            col = np.empty(total, dtype=DTYPES[name])
            for p, a, b in zip(parts, starts.tolist(), ends.tolist(), strict=True):
                value = _Fixed(self._deal_id) if name == "deal_id" else getattr(p, name)
                if isinstance(value, _Fixed):
                    np.take(value.source, p.rows, out=col[a:b], mode="clip")  # rows are in range: no buffering
                else:
                    col[a:b] = value
                    if isinstance(value, np.ndarray):
                        setattr(p, name, None)
            cols[name] = col
        return Transfers(**cols)


def _per_deal(values: np.ndarray, n: int) -> np.ndarray:
    """`values` as one entry per deal (a single value repeated, without copying)."""
    return values if values.shape == (n,) else np.broadcast_to(values, (n,))
