"""The protocol tables: 11 states, the legal transitions, terminal states, paths and visited masks.

Expected values are written out by hand from the Lilypad v2 state machine, not read back from the module.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mechanisms.protocol import (
    LEGAL,
    PATH,
    TERMINAL,
    TRANSITIONS,
    VISITED_MASK,
    DealState,
    IllegalTransition,
    check_transitions,
)

S = DealState
STATE_NAMES = [
    "DealNegotiating",
    "DealAgreed",
    "ResultsSubmitted",
    "ResultsAccepted",
    "ResultsChecked",
    "MediationAccepted",
    "MediationRejected",
    "TimeoutAgree",
    "TimeoutSubmitResults",
    "TimeoutJudgeResults",
    "TimeoutMediateResults",
]
EXPECTED_EDGES = {
    ("DealNegotiating", "DealAgreed"),
    ("DealNegotiating", "TimeoutAgree"),
    ("DealAgreed", "ResultsSubmitted"),
    ("DealAgreed", "TimeoutSubmitResults"),
    ("ResultsSubmitted", "ResultsAccepted"),
    ("ResultsSubmitted", "ResultsChecked"),
    ("ResultsSubmitted", "TimeoutJudgeResults"),
    ("ResultsChecked", "MediationAccepted"),
    ("ResultsChecked", "MediationRejected"),
    ("ResultsChecked", "TimeoutMediateResults"),
}
EXPECTED_TERMINAL = {
    "ResultsAccepted",
    "MediationAccepted",
    "MediationRejected",
    "TimeoutAgree",
    "TimeoutSubmitResults",
    "TimeoutJudgeResults",
    "TimeoutMediateResults",
}
EXPECTED_PATHS = {
    "TimeoutAgree": ["DealNegotiating", "TimeoutAgree"],
    "TimeoutSubmitResults": ["DealNegotiating", "DealAgreed", "TimeoutSubmitResults"],
    "TimeoutJudgeResults": ["DealNegotiating", "DealAgreed", "ResultsSubmitted", "TimeoutJudgeResults"],
    "ResultsAccepted": ["DealNegotiating", "DealAgreed", "ResultsSubmitted", "ResultsAccepted"],
    "TimeoutMediateResults": [
        "DealNegotiating",
        "DealAgreed",
        "ResultsSubmitted",
        "ResultsChecked",
        "TimeoutMediateResults",
    ],
    "MediationAccepted": ["DealNegotiating", "DealAgreed", "ResultsSubmitted", "ResultsChecked", "MediationAccepted"],
    "MediationRejected": ["DealNegotiating", "DealAgreed", "ResultsSubmitted", "ResultsChecked", "MediationRejected"],
}
# bit i <-> state value i, values 0..10 in the order of STATE_NAMES
EXPECTED_MASKS = {
    "TimeoutAgree": 0b00010000001,
    "TimeoutSubmitResults": 0b00100000011,
    "TimeoutJudgeResults": 0b01000000111,
    "ResultsAccepted": 0b00000001111,
    "TimeoutMediateResults": 0b10000010111,
    "MediationAccepted": 0b00000110111,
    "MediationRejected": 0b00001010111,
}


def test_eleven_states_with_fixed_values() -> None:
    assert [s.name for s in DealState] == STATE_NAMES
    assert [int(s) for s in DealState] == list(range(11))


def test_transition_table_is_exactly_the_lilypad_graph() -> None:
    edges = {(src.name, dst.name) for src, dsts in TRANSITIONS.items() for dst in dsts}
    assert edges == EXPECTED_EDGES
    for src, dsts in TRANSITIONS.items():
        assert len(set(dsts)) == len(dsts), f"duplicate edge out of {src.name}"


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(STATE_NAMES, STATE_NAMES)))
def test_every_pair_checked(src: str, dst: str) -> None:
    """All 121 (src, dst) pairs: legal ones pass, every other one raises naming both states."""
    s, d = np.array([S[src]]), np.array([S[dst]])
    assert bool(LEGAL[S[src], S[dst]]) == ((src, dst) in EXPECTED_EDGES)
    if (src, dst) in EXPECTED_EDGES:
        check_transitions(s, d)
    else:
        with pytest.raises(IllegalTransition, match=f"{src} -> {dst}"):
            check_transitions(s, d)


def test_batch_is_rejected_if_any_move_is_illegal() -> None:
    legal = np.array([[S[a], S[b]] for a, b in sorted(EXPECTED_EDGES)])
    check_transitions(legal[:, 0], legal[:, 1])  # all ten legal edges at once
    check_transitions(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))  # an empty batch
    bad = np.vstack([legal, [[S.ResultsAccepted, S.ResultsChecked]], legal])
    with pytest.raises(IllegalTransition, match="ResultsAccepted -> ResultsChecked"):
        check_transitions(bad[:, 0], bad[:, 1])


def test_no_self_loops_and_no_way_back_to_negotiating() -> None:
    for s in DealState:
        with pytest.raises(IllegalTransition):
            check_transitions(np.array([s]), np.array([s]))
        with pytest.raises(IllegalTransition):
            check_transitions(np.array([s]), np.array([S.DealNegotiating]))


def test_terminal_states() -> None:
    assert {s.name for s in TERMINAL} == EXPECTED_TERMINAL
    for t in TERMINAL:
        assert t not in TRANSITIONS
        assert not LEGAL[t].any(), f"{t.name} has an outgoing edge"
    # every non-terminal state can move on
    for s in set(DealState) - TERMINAL:
        assert LEGAL[s].any()


def test_paths_are_legal_walks_to_each_terminal_state() -> None:
    assert {t.name for t in PATH} == EXPECTED_TERMINAL
    for t, path in PATH.items():
        assert [s.name for s in path] == EXPECTED_PATHS[t.name]
        check_transitions(np.array(path[:-1]), np.array(path[1:]))


def test_visited_mask_matches_paths() -> None:
    assert VISITED_MASK.shape == (11,)
    for name in STATE_NAMES:
        assert int(VISITED_MASK[S[name]]) == EXPECTED_MASKS.get(name, 0)
    for t, path in PATH.items():
        assert int(VISITED_MASK[t]) == sum(1 << int(s) for s in path)


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError):
        LEGAL[0, 0] = True
    with pytest.raises(ValueError):
        VISITED_MASK[0] = 1
