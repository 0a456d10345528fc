"""Per-deal reason sums, the one definition the deal table and the reference model share."""

from __future__ import annotations

import numpy as np
import pytest

from mechanisms.protocol import Direction, Reason, Step
from mechanisms.transfers import TransferBuilder


def test_reason_sums_add_each_deals_amounts_per_reason() -> None:
    out = TransferBuilder(np.array([4, 7, 9]))
    every = np.ones(3, dtype=bool)
    out.add(Step.Agree, every, 0, np.array([10, 20, 30]), Reason.PaymentCollateral, Direction.PaidIn)
    out.add(Step.Settle, every, 0, np.array([10, 0, 5]), Reason.PaymentCollateral, Direction.Refunded)
    out.add(Step.Settle, np.array([False, True, False]), 0, 20, Reason.JobPayment, Direction.PaidOut, 1)
    sums = out.build().reason_sums(np.array([4, 7, 9]))
    assert sums.shape == (3, len(Reason))
    assert sums[:, Reason.PaymentCollateral].tolist() == [20, 20, 35]
    assert sums[:, Reason.JobPayment].tolist() == [0, 20, 0]
    assert sums.sum() == 20 + 20 + 35 + 20


@pytest.mark.parametrize("deals", [np.array([4, 9]), np.array([], dtype=np.int64)])
def test_reason_sums_refuse_transfers_of_other_deals(deals: np.ndarray) -> None:
    out = TransferBuilder(np.array([4, 7]))
    out.add(Step.Agree, np.ones(2, dtype=bool), 0, 5, Reason.PaymentCollateral, Direction.PaidIn)
    with pytest.raises(ValueError, match="transfers reference deals outside the given ones"):
        out.build().reason_sums(deals)
