"""Exact money: integer base units, rates in basis points, one rounding rule (floor), named pool accounts.

Money is int64 in the twin, and numpy int64 arithmetic wraps silently. Two guards keep it exact:
`mechanisms.bounds` refuses, before a run starts, any config whose worst-case amounts could leave int64, and
`mul_bps` (the one multiplication of money by a rate) raises `MoneyOverflow` rather than wrap.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated

import numpy as np

from mechanisms.config import Range

BPS = 10_000  # 100% in basis points
INT64_MAX = int(np.iinfo(np.int64).max)
#: The largest amount any one config field may hold (a balance, a fee, a collateral, a stake, a bribe). Sums and
#: products of such fields are bounded per config by `mechanisms.bounds`.
MAX_AMOUNT = 10**15

Amount = Annotated[int, Range(0, MAX_AMOUNT)]  # base units
Share = Annotated[int, Range(0, BPS)]  # basis points, at most 100%
Multiplier = Annotated[int, Range(0, 100 * BPS)]  # basis points, at most 100x


class MoneyOverflow(OverflowError):
    """An amount would leave int64: a config the bounds check should have refused, or a bug."""


def mul_bps(amount: np.ndarray | int, rate_bps: np.ndarray | int) -> np.ndarray | int:
    """`amount * rate / 10_000`, floored, exactly: the same value as multiplying first (no precision lost before
    the one rounding), and a `MoneyOverflow` instead of a wrapped result when the value leaves int64.

    Two Python ints are multiplied as Python ints (unbounded) and give a Python int. Arrays take numpy's multiply
    when the largest magnitudes allow it (the common case: one max and one min more), else the split
    `q * rate + (rem * rate) // BPS` with `amount = q * BPS + rem`, else Python ints element by element.
    """
    if isinstance(amount, int) and isinstance(rate_bps, int):
        return _fits(amount * rate_bps // BPS)
    a, r = np.asarray(amount, dtype=np.int64), np.asarray(rate_bps, dtype=np.int64)
    if a.size == 0 or r.size == 0:
        return a * r // BPS
    a_max, r_max = max(int(a.max()), -int(a.min())), max(int(r.max()), -int(r.min()))
    if a_max * r_max <= INT64_MAX:
        return a * r // BPS
    if max(a_max // BPS + 1, BPS) * r_max <= INT64_MAX:
        q, rem = np.divmod(a, BPS)
        return q * r + rem * r // BPS
    exact = a.astype(object) * r.astype(object) // BPS
    for value in (exact.max(), exact.min()):
        _fits(int(value))
    return exact.astype(np.int64)


def exact_sum(values: np.ndarray) -> int:
    """The sum of int64 amounts as a Python int, exactly (numpy's sum wraps), or `MoneyOverflow` if it leaves int64."""
    v = np.asarray(values, dtype=np.int64)
    if v.size == 0:
        return 0
    if max(int(v.max()), -int(v.min())) * v.size <= INT64_MAX:
        return int(v.sum())
    return _fits(sum(v.tolist()))


def _fits(value: int) -> int:
    if not -INT64_MAX <= value <= INT64_MAX:
        raise MoneyOverflow(f"amount {value} does not fit int64")
    return value


class Pool(IntEnum):
    """Accounts that belong to no agent. Their ids follow the agents': account = n_agents + Pool."""

    Burn = 0  # value destroyed (sent to an unspendable address on chain)
    Protocol = 1  # protocol treasury
    Compute = 2  # the outside world paid for electricity and hardware: compute costs end here
    Jackpot = 3  # taxes collected for jackpot payouts


N_POOLS = len(Pool)
