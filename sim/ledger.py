"""The ledger (balances, escrow, pools) and the public event log (what a chain would show)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mechanisms.errors import InvariantViolation
from mechanisms.money import exact_sum
from mechanisms.protocol import OFF_CHAIN_REASONS, Direction, Step
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
        """Apply transfers step by step, checking solvency after each step."""
        for step in np.unique(t.step):
            sel = t.step == step
            payer, payee, amount, direction = t.payer[sel], t.payee[sel], t.amount[sel], t.direction[sel]
            from_balance = (direction == Direction.PaidIn) | (direction == Direction.Spent)
            to_own_escrow = direction == Direction.PaidIn
            to_own_balance = direction == Direction.Refunded
            to_payee = (direction == Direction.PaidOut) | (direction == Direction.Slashed) | (
                direction == Direction.Spent)
            np.subtract.at(self.balance, payer[from_balance], amount[from_balance])
            np.subtract.at(self.escrow, payer[~from_balance], amount[~from_balance])
            np.add.at(self.escrow, payer[to_own_escrow], amount[to_own_escrow])
            np.add.at(self.balance, payer[to_own_balance], amount[to_own_balance])
            np.add.at(self.balance, payee[to_payee], amount[to_payee])
            touched = np.concatenate([payer, payee[to_payee]])
            if (self.balance[touched] < 0).any() or (self.escrow[touched] < 0).any():
                bad = touched[(self.balance[touched] < 0) | (self.escrow[touched] < 0)][0]
                raise InsolventTransfer(
                    f"step {Step(int(step)).name}: account {bad} balance {self.balance[bad]} escrow "
                    f"{self.escrow[bad]}")


ANONYMOUS = -1  # account shown for the parties of a hidden transfer


class EventLog:
    """Append-only public record: every state a deal enters, every on-chain transfer (no bribes, no compute; the
    parties of hidden transfers shown as ANONYMOUS) and the attributable votes of mediators.

    Kept as per-round column chunks per table; `drain()` hands them to a writer so long runs do not grow in memory.
    """

    TABLES: ClassVar[dict[str, tuple[str, ...]]] = {
        "states": ("round", "deal_id", "state"),
        "transfers": ("round", "deal_id", "account", "counterparty", "amount", "reason", "direction"),
        "votes": ("round", "deal_id", "mediator", "accept"),
    }

    def __init__(self) -> None:
        self.chunks: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in self.TABLES}

    @property
    def states(self) -> list[dict[str, np.ndarray]]:
        return self.chunks["states"]

    @property
    def transfers(self) -> list[dict[str, np.ndarray]]:
        return self.chunks["transfers"]

    @property
    def votes(self) -> list[dict[str, np.ndarray]]:
        return self.chunks["votes"]

    def record(self, round_index: int, deal_id: np.ndarray, visited: np.ndarray, t: Transfers,
               votes: list[dict[str, np.ndarray]] | None = None) -> None:
        """Log entry into each visited state (bit mask per deal), the public transfers and the attributable votes
        of a round."""
        bits = np.arange(int(visited.max(initial=0)).bit_length(), dtype=np.int64)
        deal_rows, state = np.nonzero((visited[:, None] >> bits[None, :]) & 1)
        self.states.append({"round": np.full(len(deal_rows), round_index, dtype=np.int64),
                            "deal_id": deal_id[deal_rows], "state": state.astype(np.int64)})
        public = ~np.isin(t.reason, [int(r) for r in OFF_CHAIN_REASONS])
        hidden = t.hidden[public]
        self.transfers.append({"round": np.full(int(public.sum()), round_index, dtype=np.int64),
                               "deal_id": t.deal_id[public],
                               "account": np.where(hidden, ANONYMOUS, t.payer[public]),
                               "counterparty": np.where(hidden, ANONYMOUS, t.payee[public]),
                               "amount": t.amount[public], "reason": t.reason[public],
                               "direction": t.direction[public]})
        for v in votes or []:
            self.votes.append({"round": np.full(len(v["deal_id"]), round_index, dtype=np.int64), **v})

    def drain(self) -> dict[str, list[dict[str, np.ndarray]]]:
        """Hand over and forget the chunks recorded so far, per table."""
        chunks, self.chunks = self.chunks, {name: [] for name in self.TABLES}
        return chunks
