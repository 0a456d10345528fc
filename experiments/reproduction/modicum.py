"""MODiCuM (Eisele et al., DEBS 2020): Theorem 1's verification threshold, the mixed equilibrium of the 2020 model,
and the non-deterministic-job attack's threshold and optimal attack rate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from experiments.analysis.analytic import Modicum, NonDeterministicAttack
from experiments.reproduction.common import ProfitLog, Result, load, merge, run, sim_config
from experiments.reproduction.estimate import zero_crossing
from experiments.reproduction.inspection import client_check_gain, measure_mixed, payoffs
from experiments.reproduction.terms import Terms, terms
from mechanisms.config import require

GAME = "modicum"


def model(t: Terms, meas: Mapping[str, Any]) -> Modicum:
    """The paper's model under the preset's terms; the twin's detection must be detect x honest."""
    game = Modicum(
        t.price,
        t.compute_cost,
        t.deposit,
        t.verification_cost,
        t.fee,
        meas["detect"],
        meas["honest"],
        t.client_share,
        meas["damage"],
    )
    require(
        abs(game.proof - t.detection) < 1e-12,
        "mechanism.imperfect_verification.detection",
        t.detection,
        f"measure.detect x measure.honest = {game.proof}",
    )
    return game


def cheat_gain_line(preset: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(check rate, always-cheat profit minus the honest nodes' mean profit) per cheating node's job."""
    xs, ys = [], []
    meas = preset["measure"]
    for i, q in enumerate(meas["check_rates"]):
        cfg = sim_config(preset, i, agents={"clients": [{"strategy": "checker", "q": q}]})
        log = ProfitLog()
        sim = run(cfg, meas["rounds"], observe=log)
        node, profit = log.samples()
        cheater = sim.population.labels("nodes")[node] == "cheater"
        xs.append(np.full(int(cheater.sum()), q))
        ys.append(profit[cheater] - profit[~cheater].mean())
    return np.concatenate(xs), np.concatenate(ys)


def attack_line(preset: Mapping[str, Any], sweep: str) -> tuple[np.ndarray, np.ndarray]:
    """The non-deterministic attack on honest nodes. sweep="verdict": (wrong-verdict rate, the client's gain per
    dispute); sweep="rate": (attack rate, the node's profit per job)."""
    meas, attack = preset["measure"], merge(preset, preset["nd"])
    price = terms(sim_config(attack, 0)).price
    values = meas["nd_wrong_verdicts"] if sweep == "verdict" else meas["attack_rates"]
    xs, ys = [], []
    for i, x in enumerate(values):
        eps, rate = (x, 1.0) if sweep == "verdict" else (meas["nd_rate"], x)
        cfg = sim_config(
            attack,
            i,
            mechanism={"imperfect_verification": {"nd_false_reject": eps}},
            agents={"clients": [{"strategy": "checker", "q": rate}]},
        )
        log = ProfitLog("client" if sweep == "verdict" else "node")
        run(cfg, meas["nd_rounds"], observe=log)
        _, profit = log.samples()
        xs.append(np.full(len(profit), x))
        ys.append(profit + price if sweep == "verdict" else profit)  # a client that accepts pays the price
    return np.concatenate(xs), np.concatenate(ys)


def reproduce(small: bool = False) -> list[Result]:
    preset = load(GAME, small)
    meas, paper = preset["measure"], preset["paper"]
    t = terms(sim_config(preset, 0))
    game = model(t, meas)
    rows = [
        Result(
            GAME,
            paper,
            "Theorem 1: verification rate above which the provider is honest",
            game.min_verification_rate(),
            zero_crossing(*cheat_gain_line(preset)),
        )
    ]
    rows.append(
        Result(
            GAME,
            paper,
            "2020 mixed equilibrium: cheat rate r* (zero of the job creator's gain from verifying, damage included)",
            game.mixed().cheat_rate,
            client_check_gain(preset),
        )
    )
    fp_preset = merge(preset, {"measure": {"rounds": meas["fp_rounds"]}})
    rows += measure_mixed(
        GAME, "2020 mixed equilibrium", fp_preset, payoffs(t, meas["damage"], meas["temperature"]), game.mixed()
    )
    nd = terms(sim_config(merge(preset, preset["nd"]), 0))
    attack = NonDeterministicAttack(
        nd.price, nd.compute_cost, nd.deposit, nd.fee + nd.verification_cost, meas["nd_rate"], nd.client_share
    )
    rows += [
        Result(
            GAME,
            paper,
            "non-deterministic attack: wrong-verdict rate above which disputing correct results pays",
            attack.threshold(),
            zero_crossing(*attack_line(preset, "verdict")),
        ),
        Result(
            GAME,
            paper,
            f"non-deterministic attack: optimal attack rate at wrong-verdict rate {meas['nd_rate']}",
            attack.optimal_rate(),
            zero_crossing(*attack_line(preset, "rate")),
        ),
    ]
    return rows
