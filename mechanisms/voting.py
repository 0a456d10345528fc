"""How one mediator votes on a posted result, given its behaviour this round (shared by all mediation rules)."""

from __future__ import annotations

import numpy as np

from mechanisms.deals import CARTEL_FAKE, DealBatch

#: The hook data `mediator_votes` reads (for the `judge` declarations of the mechanisms that call it).
VOTE_COLUMNS = ("mediator_collude", "mediator_threshold", "result", "cheated", "bribe", "accused")


def mediator_votes(deals: DealBatch, mediator: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vote of mediator index `mediator[i]` on deal i: (accepts the result, took the node's bribe).

    An honest mediator re-runs the job and accepts iff the result is correct. A colluding mediator accepts the
    cartel's shared fake and rejects a correct result its colluding client accuses. A bribable one accepts a fake
    result when the cheating node's bribe reaches its threshold.
    """
    idx = np.clip(mediator, 0, None)
    colluding = deals.mediator_collude[idx]
    correct = ~deals.wrong()
    bribed = deals.cheated & ~correct & (deals.bribe > 0) & (deals.bribe >= deals.mediator_threshold[idx])
    for_cartel = colluding & (deals.result == CARTEL_FAKE)
    against_correct = colluding & deals.accused & correct
    accept = np.where(for_cartel, True, np.where(against_correct, False, correct | bribed))
    return accept, bribed & ~for_cartel
