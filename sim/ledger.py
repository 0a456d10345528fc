"""The ledger (balances, escrow, pools) and the public event log (what a chain would show)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numba import njit

from mechanisms.errors import InvariantViolation
from mechanisms.money import exact_sum
from mechanisms.protocol import OFF_CHAIN_REASONS, Direction, Reason, Step
from mechanisms.transfers import Transfers


class InsolventTransfer(InvariantViolation, RuntimeError):
    """Applying transfers would leave a balance or an escrow negative: a bug in a mechanism or the engine."""


class Ledger:
    """Free balance and escrow per account (agents then pools), int64 base units."""

    def __init__(self, balances: np.ndarray) -> None:
        self.balance = np.asarray(balances, dtype=np.int64).copy()
        self.escrow = np.zeros_like(self.balance)
        self.total()  # all value fits int64, so (value being conserved) every balance, escrow and sum of them does

    def total(self) -> int:
        """All value in the system, exactly; constant for the whole run."""
        return exact_sum(np.concatenate([self.balance, self.escrow]))

    def apply(self, t: Transfers) -> None:
        """Apply transfers step by step, checking solvency after each step (one compiled pass over the rows)."""
        cols = [np.ascontiguousarray(getattr(t, c)) for c in ("step", "payer", "payee", "amount", "direction")]
        if len(t) and (cols[0][1:] < cols[0][:-1]).any():  # steps apply in order; within a step, order does not matter
            order = np.argsort(cols[0], kind="stable")
            cols = [c[order] for c in cols]
        trusted = bool(self.balance.min(initial=0) >= 0 and self.escrow.min(initial=0) >= 0)
        step, bad = _apply(self.balance, self.escrow, *cols, trusted)
        if bad >= 0:
            raise InsolventTransfer(
                f"step {Step(int(step)).name}: account {bad} balance {self.balance[bad]} escrow {self.escrow[bad]}"
            )


def _direction_table(*directions: Direction) -> np.ndarray:
    table = np.zeros(len(Direction), dtype=np.bool_)
    table[[int(d) for d in directions]] = True
    return table


#: Per direction: the payer's free balance pays (else its escrow); the value lands in the payer's own escrow, in
#: its own balance, or in the payee's balance.
FROM_BALANCE = _direction_table(Direction.PaidIn, Direction.Spent)
TO_OWN_ESCROW = _direction_table(Direction.PaidIn)
TO_OWN_BALANCE = _direction_table(Direction.Refunded)
TO_PAYEE = _direction_table(Direction.PaidOut, Direction.Slashed, Direction.Spent)


@njit(cache=True)
def _apply(balance, escrow, step, payer, payee, amount, direction, trusted):  # pragma: no cover - compiled
    """Apply each run of one step, then check the accounts it touched (payers, then the payees that received
    value); returns (step, account) of the first account left negative, or (-1, -1).

    With `trusted` (no account negative before), a step whose every subtraction left a non-negative value cannot
    end with a negative account (later additions only raise it), so its touched accounts are checked only when
    some subtraction went below zero on the way."""
    n = len(step)
    i = 0
    while i < n:
        j = i
        dipped = not trusted
        while j < n and step[j] == step[i]:
            j += 1
        for k in range(i, j):
            d, a, p = direction[k], amount[k], payer[k]
            if FROM_BALANCE[d]:
                balance[p] -= a
                dipped |= balance[p] < 0
            else:
                escrow[p] -= a
                dipped |= escrow[p] < 0
            if TO_OWN_ESCROW[d]:
                escrow[p] += a
            elif TO_OWN_BALANCE[d]:
                balance[p] += a
            elif TO_PAYEE[d]:
                balance[payee[k]] += a
        if dipped:
            for k in range(i, j):
                if balance[payer[k]] < 0 or escrow[payer[k]] < 0:
                    return step[i], payer[k]
            for k in range(i, j):
                q = payee[k]
                if TO_PAYEE[direction[k]] and (balance[q] < 0 or escrow[q] < 0):
                    return step[i], q
        i = j
    return -1, -1


ANONYMOUS = -1  # account shown for the parties of a hidden transfer


_PUBLIC_REASON = np.ones(max(int(r) for r in Reason) + 1, dtype=bool)
_PUBLIC_REASON[[int(r) for r in OFF_CHAIN_REASONS]] = False

Chunks = dict[str, list[dict[str, np.ndarray]]]


@dataclass(frozen=True)
class _Round:
    """What `EventLog.record` was given for one round, turned into table chunks only when someone reads them."""

    round: int
    deal_id: np.ndarray
    visited: np.ndarray
    transfers: Transfers
    votes: list[dict[str, np.ndarray]]

    def chunk(self, table: str) -> list[dict[str, np.ndarray]]:
        if table == "states":
            deal_rows, state = _entered_states(self.visited)
            return [
                {
                    "round": np.full(len(deal_rows), self.round, dtype=np.int64),
                    "deal_id": self.deal_id[deal_rows],
                    "state": state,
                }
            ]
        if table == "transfers":
            t = self.transfers
            public = _PUBLIC_REASON[t.reason]
            hidden = t.hidden[public]
            return [
                {
                    "round": np.full(int(public.sum()), self.round, dtype=np.int64),
                    "deal_id": t.deal_id[public],
                    "account": np.where(hidden, ANONYMOUS, t.payer[public]),
                    "counterparty": np.where(hidden, ANONYMOUS, t.payee[public]),
                    "amount": t.amount[public],
                    "reason": t.reason[public].astype(np.int64),
                    "direction": t.direction[public].astype(np.int64),
                }
            ]
        return [{"round": np.full(len(v["deal_id"]), self.round, dtype=np.int64), **v} for v in self.votes]


class LazyChunks(Mapping[str, list[dict[str, np.ndarray]]]):
    """Table name -> chunks, built from the recorded rounds when a table is read (a caller that drops the log builds
    nothing)."""

    def __init__(self, tables: Iterable[str]) -> None:
        self.rounds: list[_Round] = []
        self._built: Chunks = {name: [] for name in tables}
        self._upto = dict.fromkeys(self._built, 0)  # rounds already built into each table

    def __getitem__(self, table: str) -> list[dict[str, np.ndarray]]:
        built = self._built[table]
        for r in self.rounds[self._upto[table] :]:
            built += r.chunk(table)
        self._upto[table] = len(self.rounds)
        return built

    def __iter__(self) -> Iterator[str]:
        return iter(self._built)

    def __len__(self) -> int:
        return len(self._built)


class EventLog:
    """Append-only public record: every state a deal enters, every on-chain transfer (no bribes, no compute; the
    parties of hidden transfers shown as ANONYMOUS) and the attributable votes of mediators.

    Kept per round as the engine's arrays and turned into per-table column chunks when read; `drain()` hands them
    to a writer so long runs do not grow in memory, and a caller that drops them pays nothing for the tables.
    """

    TABLES: ClassVar[dict[str, tuple[str, ...]]] = {
        "states": ("round", "deal_id", "state"),
        "transfers": ("round", "deal_id", "account", "counterparty", "amount", "reason", "direction"),
        "votes": ("round", "deal_id", "mediator", "accept"),
    }

    def __init__(self) -> None:
        self.chunks = LazyChunks(self.TABLES)

    @property
    def states(self) -> list[dict[str, np.ndarray]]:
        return self.chunks["states"]

    @property
    def transfers(self) -> list[dict[str, np.ndarray]]:
        return self.chunks["transfers"]

    @property
    def votes(self) -> list[dict[str, np.ndarray]]:
        return self.chunks["votes"]

    def record(
        self,
        round_index: int,
        deal_id: np.ndarray,
        visited: np.ndarray,
        t: Transfers,
        votes: list[dict[str, np.ndarray]] | None = None,
    ) -> None:
        """Log entry into each visited state (bit mask per deal), the public transfers and the attributable votes
        of a round."""
        self.chunks.rounds.append(_Round(round_index, deal_id, visited, t, list(votes or [])))

    def drain(self) -> Mapping[str, list[dict[str, np.ndarray]]]:
        """Hand over and forget the chunks recorded so far, per table."""
        chunks, self.chunks = self.chunks, LazyChunks(self.TABLES)
        return chunks


@njit(cache=True)
def _entered_states(visited: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """(deal row, state) for every state each deal entered (bit set in its mask), deal by deal, states ascending."""
    n = 0
    for v in visited:
        while v:
            n += v & 1
            v >>= 1
    rows = np.empty(n, dtype=np.int64)
    states = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(len(visited)):
        v, b = visited[i], 0
        while v:
            if v & 1:
                rows[k], states[k] = i, b
                k += 1
            v >>= 1
            b += 1
    return rows, states
