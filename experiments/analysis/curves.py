"""Gains along one or two parameters: the measured threshold curve, the two-parameter heatmap, the cartel-size curve.

Parameters are dotted config paths (`agents.clients.0.q`, `mechanism.lilypad_v2.results_multiplier_bps`), so any
knob of the market, the mechanism or the honest profile can be swept. The best deviation at each point is the best
node behaviour of the study's library (a lower bound, as everywhere).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from experiments.analysis.analytic import inspection_game
from experiments.analysis.assess import StudyConfig
from experiments.analysis.incentives import Gain, IncentiveStudy
from experiments.analysis.library import Coalition, parse_coalition
from experiments.analysis.runner import Scenario, run


def best_node_gain(scenario: Scenario, study: StudyConfig) -> Gain:
    """The best node deviation of the library at this configuration."""
    inc = IncentiveStudy(scenario, study.seeds, study.deviator_share, study.confidence)
    return max((inc.deviation(b) for b in study.behaviours()["node"]), key=lambda g: g.estimate.mean)


def gain_curve(scenario: Scenario, path: str, values: Sequence[Any], study: StudyConfig) -> pd.DataFrame:
    """Best node deviation gain at each value of `path`, beside the inspection game's prediction for always-cheat
    (None where the model does not apply)."""
    rows = []
    for v in values:
        point = scenario.with_value(path, v)
        g = best_node_gain(point, study)
        game = inspection_game(point.config(0))
        rows.append(
            {
                "value": v,
                "gain": g.estimate.mean,
                "ci_lo": g.estimate.lo,
                "ci_hi": g.estimate.hi,
                "best": g.name,
                "analytic": None if game is None or game.q is None else game.gain(game.q),
                "threshold": None if game is None else game.threshold,
            }
        )
    return pd.DataFrame(rows)


def gain_grid(
    scenario: Scenario,
    x: tuple[str, Sequence[Any]],
    y: tuple[str, Sequence[Any]],
    study: StudyConfig,
    mixed_agents: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Best node deviation gain on a grid of two parameters, and fake results accepted per job when the agents
    play `mixed_agents` (a fixed-behaviour population, e.g. configs/agents/default) at the same point."""
    rows = []
    for yv in y[1]:
        for xv in x[1]:
            point = scenario.with_value(x[0], xv).with_value(y[0], yv)
            g = best_node_gain(point, study)
            row = {"x": xv, "y": yv, "gain": g.estimate.mean, "ci_lo": g.estimate.lo, "ci_hi": g.estimate.hi}
            game = inspection_game(point.config(0))
            row["threshold"] = None if game is None else game.threshold
            if mixed_agents is not None:
                mixed = (
                    Scenario(
                        point.market,
                        point.mechanism,
                        mixed_agents,
                        point.rounds,
                        point.value_multiple,
                        point.capital_rate,
                    )
                    .with_value(x[0], xv)
                    .with_value(y[0], yv)
                )
                row["fake_accepted_per_job"] = float(
                    np.mean([run(mixed, s).cost["fake_accepted_per_job"] or 0.0 for s in study.seeds])
                )
            rows.append(row)
    return pd.DataFrame(rows)


def cartel_curve(
    scenario: Scenario, member: Mapping[str, Any], shares: Sequence[float], study: StudyConfig
) -> pd.DataFrame:
    """Gain per member of a node cartel (`member`: a node behaviour spec) as the cartel grows: when do cartels pay."""
    inc = IncentiveStudy(scenario, study.seeds, study.deviator_share, study.confidence)
    rows = []
    for share in shares:
        coalition: Coalition = parse_coalition(
            {"name": f"cartel {share:.0%}", "node": {"share": share, **member}}, "cartel_curve"
        )
        g = inc.coalition(coalition)
        rows.append(
            {
                "share": share,
                "members": g.members,
                "gain": g.estimate.mean,
                "ci_lo": g.estimate.lo,
                "ci_hi": g.estimate.hi,
            }
        )
    return pd.DataFrame(rows)
