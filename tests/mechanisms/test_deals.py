"""DealBatch rules defined once: which rejected node is at fault."""

from __future__ import annotations

import numpy as np

from mechanisms.deals import DealBatch
from mechanisms.protocol import DealState

S = DealState


def test_a_node_is_at_fault_only_for_its_own_rejected_result() -> None:
    n = 5
    zeros = np.zeros(n, dtype=np.int64)
    deals = DealBatch(
        deal_id=np.arange(n),
        client=zeros,
        node=zeros + 1,
        job=np.arange(n),
        module=zeros,
        price=zeros,
        instructions=zeros,
        job_cost=zeros,
        compute_cost=zeros,
        mutual_mediators=zeros,
        mediator_accounts=np.array([2]),
        mediator_threshold=np.array([0]),
        pool_base=3,
    )
    deals.state = np.array(
        [S.MediationRejected, S.MediationRejected, S.MediationRejected, S.MediationAccepted, S.TimeoutSubmitResults]
    )
    deals.forced_error = np.array([False, True, False, False, False])  # the protocol's own wrong result
    deals.excused = np.array([False, False, True, False, False])  # a whistleblower
    assert deals.node_at_fault().tolist() == [True, False, False, False, False]
