"""The repeated Prisoner's contract on a fixed pair: the discount factor above which grim-trigger collusion is
sustainable, measured from the payoffs the twin settles when the pair plays it out (`agents.repeated`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import brentq

from agents.repeated import RepeatedPlay
from experiments.analysis.analytic import Dong, grim_trigger_discount
from experiments.reproduction.common import ProfitLog, Result, load, run, sim_config
from experiments.reproduction.estimate import Estimate
from experiments.reproduction.terms import terms

GAME = "repeated"
XTOL = 1e-9  # the root finder's tolerance: the payoffs are exact, so this is the measured interval


def payoff_stream(preset: Mapping[str, Any], strategies: Sequence[str]) -> np.ndarray:
    """Cloud 0's payoff in each round when the pair plays `strategies`."""
    cfg = sim_config(preset, preset["measure"]["seed"])
    play = RepeatedPlay(strategies, cfg["market"]["n_clients"])
    log = ProfitLog()
    run(
        cfg,
        preset["measure"]["rounds"],
        act=lambda actions, _: play.act(actions),
        observe=lambda result, sim: (log(result, sim), play.observe(result.deals)),
    )
    node, profit = log.samples()
    return profit[node == 0].astype(float)


def indifference_discount(collusion: np.ndarray, deviation: np.ndarray) -> float:
    """The delta at which sum_t delta^t (collusion_t - deviation_t) = 0 (deviation pays below it)."""
    diff = collusion - deviation

    def value(delta: float) -> float:
        return float(np.polyval(diff[::-1], delta))

    return float(brentq(value, 1e-9, 1 - 1e-9, xtol=XTOL / 10))


def reproduce(small: bool = False) -> list[Result]:
    preset = load(GAME, small)
    meas = preset["measure"]
    t = terms(sim_config(preset, 0))
    dong = Dong(t.price, t.compute_cost, t.deposit, t.fee)
    collusion = payoff_stream(preset, meas["collusion"])
    deviation = payoff_stream(preset, meas["deviation"])
    root = indifference_discount(collusion, deviation)
    return [
        Result(
            GAME,
            preset["paper"],
            "grim trigger on a fixed pair: discount factor above which collusion is sustainable (played out)",
            grim_trigger_discount(dong),
            Estimate(root, root - XTOL, root + XTOL),
        )
    ]
