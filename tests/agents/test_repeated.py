"""History-dependent strategies on a fixed pair: grim trigger punishes forever, tit-for-tat mirrors, and each reads
only its partner's posted result."""

from __future__ import annotations

import numpy as np
import pytest

from agents.repeated import RepeatedPlay
from mechanisms.actions import Actions, ClientActions, MediatorActions, NodeActions
from mechanisms.config import ConfigError
from mechanisms.deals import CARTEL_FAKE, CORRECT, DealBatch

FIRST_NODE = 1


def pair(results: list[int]) -> DealBatch:
    """One job bought from nodes 0 and 1 (accounts 1 and 2), with their posted results."""
    d = DealBatch(
        deal_id=np.arange(2),
        client=np.zeros(2, dtype=np.int64),
        node=np.array([1, 2]),
        job=np.arange(2),
        module=np.zeros(2, dtype=np.int64),
        price=np.full(2, 10),
        instructions=np.ones(2, dtype=np.int64),
        job_cost=np.full(2, 10),
        compute_cost=np.full(2, 6),
        mutual_mediators=np.ones(2, dtype=np.int64),
        mediator_accounts=np.array([3]),
        mediator_threshold=np.zeros(1, dtype=np.int64),
        pool_base=4,
        group=np.zeros(2, dtype=np.int64),
        replica=np.arange(2),
    )
    d.submitted[:] = True
    d.result = np.array(results)
    return d


def played(play: RepeatedPlay) -> list[bool]:
    a = Actions(NodeActions.default(2), ClientActions.default(1), MediatorActions.default(1))
    play.act(a)
    assert (a.nodes.cheat_rate == np.where(a.nodes.collude, 1.0, 0.0)).all()
    return a.nodes.collude.tolist()


def test_grim_trigger_punishes_forever_and_tit_for_tat_mirrors() -> None:
    play = RepeatedPlay(["grim", "tit_for_tat"], FIRST_NODE)
    assert played(play) == [True, True]  # both start by colluding
    play.observe(pair([CARTEL_FAKE, CORRECT]))  # node 1 deviated
    assert played(play) == [False, True]  # grim punishes; tit-for-tat saw its partner collude
    play.observe(pair([CORRECT, CARTEL_FAKE]))
    assert played(play) == [False, False]  # tit-for-tat mirrors the punishment
    play.observe(pair([CORRECT, CORRECT]))
    play.observe(pair([CARTEL_FAKE, CARTEL_FAKE]))
    assert played(play) == [False, True]  # grim never forgives; tit-for-tat forgives at once


def test_fixed_strategies_and_bad_names() -> None:
    play = RepeatedPlay(["collude", "honest"], FIRST_NODE)
    play.observe(pair([CARTEL_FAKE, CORRECT]))
    assert played(play) == [True, False]
    with pytest.raises(ConfigError, match=r"strategies\[1\]"):
        RepeatedPlay(["grim", "nice"], FIRST_NODE)
