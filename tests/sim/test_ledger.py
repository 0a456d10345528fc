"""The compiled ledger against the plain statement of its rule, and its solvency check step by step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mechanisms.protocol import Direction, Reason, Step
from mechanisms.transfers import NOBODY, Transfers
from sim.ledger import EventLog, InsolventTransfer, Ledger

D = Direction


def plain_apply(balance: np.ndarray, escrow: np.ndarray, t: Transfers) -> tuple[int, int] | None:
    """The rule as numpy states it: each step's rows at once, then every touched account (payers, then paid
    payees) must be non-negative; (step, account) of the first that is not."""
    for step in np.unique(t.step):
        sel = t.step == step
        payer, payee, amount, d = t.payer[sel], t.payee[sel], t.amount[sel], t.direction[sel]
        from_balance = (d == D.PaidIn) | (d == D.Spent)
        to_payee = (d == D.PaidOut) | (d == D.Slashed) | (d == D.Spent)
        np.subtract.at(balance, payer[from_balance], amount[from_balance])
        np.subtract.at(escrow, payer[~from_balance], amount[~from_balance])
        np.add.at(escrow, payer[d == D.PaidIn], amount[d == D.PaidIn])
        np.add.at(balance, payer[d == D.Refunded], amount[d == D.Refunded])
        np.add.at(balance, payee[to_payee], amount[to_payee])
        touched = np.concatenate([payer, payee[to_payee]])
        bad = touched[(balance[touched] < 0) | (escrow[touched] < 0)]
        if len(bad):
            return int(step), int(bad[0])
    return None


def transfers(rows: list[tuple[int, int, int, int, int]]) -> Transfers:
    """(step, payer, payee, amount, direction) rows; deal 0, one reason."""
    cols = np.array(rows, dtype=np.int64).reshape(-1, 5).T
    n = cols.shape[1]
    return Transfers(
        cols[0],
        np.zeros(n, dtype=np.int64),
        cols[1],
        cols[2],
        cols[3],
        np.full(n, int(Reason.JobPayment)),
        cols[4],
        np.zeros(n, dtype=bool),
    )


ROW = st.tuples(
    st.integers(0, 5),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 30),
    st.sampled_from([int(d) for d in Direction]),
)


@given(st.lists(ROW, max_size=25), st.lists(st.integers(-3, 40), min_size=4, max_size=4), st.booleans())
def test_ledger_matches_the_plain_rule(rows: list[tuple[int, ...]], start: list[int], shuffled: bool) -> None:
    rows = sorted(rows, key=lambda r: r[0]) if not shuffled else rows
    t = transfers(rows)
    ledger = Ledger(np.zeros(4, dtype=np.int64))
    ledger.balance[:], ledger.escrow[:] = start, start[::-1]  # a negative start takes the ledger's careful path
    balance, escrow = ledger.balance.copy(), ledger.escrow.copy()
    expected = plain_apply(balance, escrow, t)
    if expected is None:
        ledger.apply(t)
    else:
        with pytest.raises(InsolventTransfer, match=f"step {Step(expected[0]).name}: account {expected[1]} "):
            ledger.apply(t)
    np.testing.assert_array_equal(ledger.balance, balance)
    np.testing.assert_array_equal(ledger.escrow, escrow)


def test_a_dip_within_a_step_is_not_an_overdraft() -> None:
    """Solvency is checked after each step: a refund later in the same step covers an earlier pay-in."""
    ledger = Ledger(np.array([5, 0]))
    ledger.escrow[0] = 10
    ledger.apply(transfers([(1, 0, NOBODY, 8, D.PaidIn), (1, 0, NOBODY, 10, D.Refunded)]))
    assert (ledger.balance[0], ledger.escrow[0]) == (7, 8)


def test_overdraft_names_the_step_and_account() -> None:
    ledger = Ledger(np.array([5, 0]))
    with pytest.raises(InsolventTransfer, match="step Submit: account 0 balance -1 escrow 0"):
        ledger.apply(transfers([(0, 0, 1, 5, D.Spent), (1, 0, 1, 1, D.Spent)]))


def test_event_log_tables_are_built_when_read() -> None:
    """Entered states come deal by deal in state order; off-chain reasons never reach the public table."""
    log = EventLog()
    t = transfers([(0, 0, NOBODY, 5, D.PaidIn), (4, 0, 1, 5, D.PaidOut)])
    t = Transfers(
        t.step,
        t.deal_id,
        t.payer,
        t.payee,
        t.amount,
        np.array([int(Reason.PaymentCollateral), int(Reason.Bribe)]),
        t.direction,
        t.hidden,
    )
    log.record(3, np.array([7, 8]), np.array([0b101, 0b1]), t)
    states = log.states
    assert states[0]["deal_id"].tolist() == [7, 7, 8] and states[0]["state"].tolist() == [0, 2, 0]
    assert log.transfers[0]["reason"].tolist() == [int(Reason.PaymentCollateral)]
    assert log.drain()["states"] is states and log.states == []
