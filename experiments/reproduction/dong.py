"""Dong et al. (CCS 2017): the Prisoner's, Colluder's and Traitor's contracts' payoffs, the deposit above which
honesty strictly dominates and the side payments that keep a follower loyal, from payoffs measured per node and
round in the twin (the repeated game: `experiments.reproduction.repeated`).

Each run lets every node sign the cartel; the row player is a replica, its action what it posted (C: the agreed
wrong result, H: the correct one; under the Traitor's contract a deviator also reports). Payoffs are exact (nothing
random reaches them), so their intervals are points."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from experiments.analysis.analytic import Dong
from experiments.reproduction.common import ProfitLog, Result, load, run, sim_config
from experiments.reproduction.estimate import Estimate, mean
from experiments.reproduction.terms import terms
from mechanisms.actions import Actions

GAME = "dong"
Cells = dict[tuple[str, str], Estimate]


def contract(preset: Mapping[str, Any], colluders: bool, traitors: bool) -> dict[str, Any]:
    """The preset's config with the Colluder's contract on or off and the Traitor's contract as given."""
    return sim_config(
        preset,
        preset["measure"]["seed"],
        mechanism={"collusion_contracts": {"enabled": colluders, "traitors": traitors}},
    )


def measure_cells(cfg: Mapping[str, Any], rounds: int, report: bool) -> Cells:
    """Mean payoff per node and round keyed (who, a0, a1): who is "0" (replica 0, the ringleader) or "1" (the
    follower), a0 and a1 what replicas 0 and 1 posted ("C" the agreed wrong result, "H" the correct one)."""

    def act(actions: Actions, _: int) -> None:
        actions.nodes.collude[:] = True  # everyone signs; cheaters post the cartel's fake, honest nodes deviate
        actions.nodes.report[:] = report & (actions.nodes.cheat_rate == 0)

    log = ProfitLog()
    run(cfg, rounds, act=act, observe=log)
    samples: dict[tuple[str, str, str], list[float]] = {}
    for result, profit in zip(log.rounds, log.profit, strict=True):
        d = result.deals
        for g in np.unique(d.group):
            rows = np.flatnonzero(d.group == g)
            if len(rows) != 2:
                continue
            rows = rows[np.argsort(d.replica[rows])]
            a0, a1 = ("C" if d.cheated[r] else "H" for r in rows)
            for who, r in zip(("0", "1"), rows, strict=True):
                samples.setdefault((who, a0, a1), []).append(float(profit[r]))
    return {k: mean(np.array(v)) for k, v in samples.items()}  # type: ignore[misc]


def difference(a: Estimate, b: Estimate) -> Estimate:
    """a - b for exact (or independent, conservatively added) intervals."""
    return Estimate(a.value - b.value, a.lo - b.hi, a.hi - b.lo)


def shift(x: float, e: Estimate) -> Estimate:
    """x - e."""
    return Estimate(x - e.value, x - e.hi, x - e.lo)


def reproduce(small: bool = False) -> list[Result]:
    preset = load(GAME, small)
    rounds, paper = preset["measure"]["rounds"], preset["paper"]
    cc = preset["mechanism"]["collusion_contracts"]
    t = terms(sim_config(preset, 0))
    dong = Dong(t.price, t.compute_cost, t.deposit, t.fee, cc["side_payment"], cc["collusion_deposit"])
    rows: list[Result] = []

    prisoners = measure_cells(contract(preset, False, False), rounds, report=False)
    table = dong.prisoners()
    for (a0, a1), (payoff, _) in table.items():
        rows.append(
            Result(
                GAME,
                paper,
                f"Prisoner's contract: payoff of a cloud playing {a0} against {a1}",
                payoff,
                prisoners[("0", a0, a1)],
            )
        )
    temptation, reward = prisoners[("0", "H", "C")], prisoners[("0", "C", "C")]
    rows.append(
        Result(
            GAME,
            paper,
            "Prisoner's contract: deposit above which honesty strictly dominates (c + ch)",
            dong.honesty_deposit(),
            shift(t.deposit, difference(temptation, reward)),
        )
    )

    colluders = measure_cells(contract(preset, True, False), rounds, report=False)
    loyal, deviate = colluders[("1", "C", "C")], colluders[("1", "C", "H")]
    rows.append(
        Result(
            GAME,
            paper,
            "Colluder's contract: side payment above which the follower stays loyal",
            dong.loyalty_side_payment(),
            shift(dong.side_payment, difference(loyal, deviate)),
        )
    )
    traitors = measure_cells(contract(preset, True, True), rounds, report=True)
    loyal, betray = traitors[("1", "C", "C")], traitors[("1", "C", "H")]
    rows.append(
        Result(
            GAME,
            paper,
            "Traitor's contract: side payment a follower needs to stay loyal (d - c - ch)",
            dong.traitor_side_payment(),
            shift(dong.side_payment, difference(loyal, betray)),
        )
    )

    return rows
