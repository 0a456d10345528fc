"""The bribable mediator: the mediator's expected loss above which no node offers a bribe, measured as the zero of
the bribing cheater's gain over honest work across mediators' losses (every node bribes exactly the loss)."""

from __future__ import annotations

import numpy as np

from experiments.analysis.analytic import bribe_loss_threshold
from experiments.reproduction.common import ProfitLog, Result, load, run, sim_config
from experiments.reproduction.estimate import zero_crossing
from experiments.reproduction.terms import terms

GAME = "bribe"


def reproduce(small: bool = False) -> list[Result]:
    preset = load(GAME, small)
    meas = preset["measure"]
    q = preset["agents"]["clients"][0]["q"]
    xs, ys = [], []
    for i, loss in enumerate(meas["losses"]):
        cfg = sim_config(
            preset,
            i,
            agents={
                "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 1.0, "bribe": loss}],
                "mediators": [{"strategy": "bribable", "threshold": loss}],
            },
        )
        log = ProfitLog()
        sim = run(cfg, meas["rounds"], observe=log)
        node, profit = log.samples()
        cheater = sim.population.labels("nodes")[node] == "cheater"
        xs.append(np.full(int(cheater.sum()), float(loss)))
        ys.append(profit[cheater] - profit[~cheater].mean())
    t = terms(sim_config(preset, 0))
    closed = bribe_loss_threshold(t.price, t.compute_cost, t.multiplier, q, t.forfeit)
    return [
        Result(
            GAME,
            preset["paper"],
            "mediator's expected loss above which no bribe is offered",
            closed,
            zero_crossing(np.concatenate(xs), np.concatenate(ys)),
        )
    ]
