"""Exact money: integer base units, rates in basis points, one rounding rule (floor), named pool accounts."""

from __future__ import annotations

from enum import IntEnum

import numpy as np

BPS = 10_000  # 100% in basis points


def mul_bps(amount: np.ndarray | int, rate_bps: np.ndarray | int) -> np.ndarray | int:
    """`amount * rate / 10_000`, floored. Multiply first so no precision is lost before the one rounding."""
    return (np.asarray(amount, dtype=np.int64) * np.asarray(rate_bps, dtype=np.int64)) // BPS


class Pool(IntEnum):
    """Accounts that belong to no agent. Their ids follow the agents': account = n_agents + Pool."""

    Burn = 0  # value destroyed (sent to an unspendable address on chain)
    Protocol = 1  # protocol treasury
    Compute = 2  # the outside world paid for electricity and hardware: compute costs end here
    Jackpot = 3  # taxes collected for jackpot payouts


N_POOLS = len(Pool)
