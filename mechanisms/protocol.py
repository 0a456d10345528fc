"""The protocol's vocabulary, defined once: deal states, legal transitions, payment reasons and directions.

The simulator, the live adapter and the contracts all read these tables; nothing else may spell a state or a
reason. Values are small integers so they fit numpy arrays and Solidity enums alike.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from mechanisms.errors import InvariantViolation


class DealState(IntEnum):
    """The 11 states of a Lilypad v2 deal."""

    DealNegotiating = 0
    DealAgreed = 1
    ResultsSubmitted = 2
    ResultsAccepted = 3
    ResultsChecked = 4
    MediationAccepted = 5
    MediationRejected = 6
    TimeoutAgree = 7
    TimeoutSubmitResults = 8
    TimeoutJudgeResults = 9
    TimeoutMediateResults = 10


S = DealState

#: Every legal move of the deal state machine; anything else is rejected.
TRANSITIONS: dict[DealState, tuple[DealState, ...]] = {
    S.DealNegotiating: (S.DealAgreed, S.TimeoutAgree),
    S.DealAgreed: (S.ResultsSubmitted, S.TimeoutSubmitResults),
    S.ResultsSubmitted: (S.ResultsAccepted, S.ResultsChecked, S.TimeoutJudgeResults),
    S.ResultsChecked: (S.MediationAccepted, S.MediationRejected, S.TimeoutMediateResults),
}

TERMINAL: frozenset[DealState] = frozenset(s for s in DealState if s not in TRANSITIONS)

#: LEGAL[a, b] is True iff a -> b is a legal transition (array form for batch checks).
LEGAL = np.zeros((len(DealState), len(DealState)), dtype=bool)
for _src, _dsts in TRANSITIONS.items():
    LEGAL[_src, list(_dsts)] = True
LEGAL.setflags(write=False)


def _path_to(target: DealState) -> tuple[DealState, ...]:
    """The unique path from DealNegotiating to `target` (the state graph is a tree)."""
    parents = {dst: src for src, dsts in TRANSITIONS.items() for dst in dsts}
    path = [target]
    while path[-1] != S.DealNegotiating:
        path.append(parents[path[-1]])
    return tuple(reversed(path))


#: The states a deal visits on its way to each terminal state.
PATH: dict[DealState, tuple[DealState, ...]] = {t: _path_to(t) for t in TERMINAL}
#: Bit mask of visited states per terminal state (bit i = DealState i visited).
VISITED_MASK = np.zeros(len(DealState), dtype=np.int64)
for _t, _p in PATH.items():
    VISITED_MASK[_t] = sum(1 << int(s) for s in _p)
VISITED_MASK.setflags(write=False)


class IllegalTransition(InvariantViolation, ValueError):
    """A deal was asked to move along an edge the protocol does not have."""


def check_transitions(src: np.ndarray, dst: np.ndarray) -> None:
    """Reject the whole batch if any src -> dst move is illegal (batch of one in the live stack)."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    bad = ~LEGAL[src, dst]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise IllegalTransition(
            f"illegal deal transition {DealState(src[i]).name} -> {DealState(dst[i]).name}; "
            f"allowed: {[s.name for s in TRANSITIONS.get(DealState(src[i]), ())]}"
        )


class Reason(IntEnum):
    """Why value moved. Every transfer carries exactly one."""

    PaymentCollateral = 0
    JudgeTimeoutCollateral = 1
    SubmitTimeoutCollateral = 2
    ResultsCollateral = 3
    JobPayment = 4
    MediationFee = 5
    ComputeCost = 6
    Bribe = 7
    Tax = 8
    Jackpot = 9
    Stake = 10
    Reward = 11
    StorageCost = 12


class Direction(IntEnum):
    """How value moved between an account's free balance, its escrow and another account."""

    PaidIn = 0  # payer balance -> payer escrow
    PaidOut = 1  # payer escrow -> payee balance
    Refunded = 2  # payer escrow -> payer balance
    Slashed = 3  # payer escrow -> payee balance (a penalty)
    Spent = 4  # payer balance -> payee balance, outside escrow (compute cost, off-chain side payments)


#: Reasons that never appear on the public record (they happen off-chain).
OFF_CHAIN_REASONS: frozenset[Reason] = frozenset({Reason.ComputeCost, Reason.Bribe})


class Step(IntEnum):
    """Order in which a round's transfers are applied; the ledger checks solvency after each step."""

    Agree = 0
    Submit = 1
    Judge = 2
    Mediate = 3
    Settle = 4
    Round = 5  # once per round, after every deal settled (payouts shared among the round's claims)
