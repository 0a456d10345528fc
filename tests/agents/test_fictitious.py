"""Fictitious play: beliefs are each agent's observed frequencies, responses are (smoothed) best responses, and bad
payoffs are refused naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from agents.fictitious import FictitiousPlay, InspectionPayoffs
from mechanisms.actions import Actions, ClientActions, MediatorActions, NodeActions
from mechanisms.config import ConfigError
from mechanisms.deals import CORRECT, FIRST_OWN_FAKE, DealBatch

GAME = InspectionPayoffs(saved=6, loss=30, value=40, cost=6)  # q* = 0.2, r* = 0.15


def actions() -> Actions:
    return Actions(NodeActions.default(2), ClientActions.default(2), MediatorActions.default(1))


def deals(checked: list[bool], fake: list[bool]) -> DealBatch:
    n = len(checked)
    d = DealBatch(
        deal_id=np.arange(n),
        client=np.arange(n) % 2,
        node=2 + np.arange(n) % 2,
        job=np.arange(n),
        module=np.zeros(n, dtype=np.int64),
        price=np.full(n, 10),
        instructions=np.ones(n, dtype=np.int64),
        job_cost=np.full(n, 10),
        compute_cost=np.full(n, 6),
        mutual_mediators=np.ones(n, dtype=np.int64),
        mediator_accounts=np.array([4]),
        mediator_threshold=np.zeros(1, dtype=np.int64),
        pool_base=5,
    )
    d.submitted[:] = True
    d.checked[:] = checked
    d.result = np.where(fake, FIRST_OWN_FAKE, CORRECT)
    return d


def test_priors_then_own_observations() -> None:
    fp = FictitiousPlay(GAME, n_clients=2, n_nodes=2, first_node=2)
    check, cheat = fp.beliefs()
    assert check.tolist() == [0.5, 0.5] and cheat.tolist() == [0.5, 0.5]
    fp.observe(deals([True, False, False, False], [False, True, False, True]))
    check, cheat = fp.beliefs()
    assert check.tolist() == [0.5, 0.0]  # node 0 was checked once in two results, node 1 never
    assert cheat.tolist() == [0.0, 1.0]  # client 0 received no fake, client 1 two


def test_best_responses() -> None:
    fp = FictitiousPlay(GAME, n_clients=2, n_nodes=2, first_node=2)
    fp.observe(deals([True, False, False, False], [False, True, False, True]))
    a = actions()
    fp.act(a)
    assert a.nodes.cheat_rate.tolist() == [0.0, 1.0]  # 6 - 0.5 x 30 < 0; 6 - 0 > 0
    assert a.clients.check_rate.tolist() == [0.0, 1.0]  # 0 x 40 - 6 < 0; 1 x 40 - 6 > 0
    smooth = FictitiousPlay(InspectionPayoffs(6, 30, 40, 6, temperature=2.0), 2, 2, 2)
    smooth.act(a)  # priors 0.5: node gain -9, client gain 14
    assert a.nodes.cheat_rate == pytest.approx([1 / (1 + np.exp(4.5))] * 2)
    assert a.clients.check_rate == pytest.approx([1 / (1 + np.exp(-7))] * 2)


@pytest.mark.parametrize(("field", "value"), [("loss", -1), ("prior_check", 1.5), ("temperature", -0.1)])
def test_bad_payoffs_are_refused(field: str, value: float) -> None:
    params = {"saved": 6, "loss": 30, "value": 40, "cost": 6, field: value}
    with pytest.raises(ConfigError, match=f"fictitious_play.{field}"):
        FictitiousPlay(InspectionPayoffs(**params), 1, 1, 1)
