"""The inspection game with client damage and a share of the slashed deposit: the mixed equilibrium's rates, each
measured as the zero of the other side's gain (the node's gain from cheating over committed check rates, the
client's gain from checking over fixed cheat rates, damage included), and fictitious play (`agents.fictitious`)
converging to them, measured as the time average of the rates the agents played."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from agents.fictitious import FictitiousPlay, InspectionPayoffs
from experiments.analysis.analytic import MixedInspection, mixed_inspection
from experiments.reproduction.common import ProfitLog, Result, load, run, sim_config
from experiments.reproduction.estimate import Estimate, gain_difference, mean, zero_crossing
from experiments.reproduction.terms import Terms, terms
from sim.engine import RoundResult


def payoffs(t: Terms, damage: float, temperature: float) -> InspectionPayoffs:
    """Each side's stage payoffs under the preset's terms (what the agents know of their own game)."""
    f = float(t.forfeit)
    proof = t.detection
    value = proof * (damage + f * t.price + t.client_share * t.deposit)
    return InspectionPayoffs(
        saved=t.compute_cost,
        loss=proof * (t.deposit + f * t.price),
        value=value,
        cost=t.fee + t.verification_cost,
        temperature=temperature,
    )


def closed_form(t: Terms, damage: float) -> MixedInspection:
    return mixed_inspection(
        t.price,
        t.compute_cost,
        t.multiplier,
        t.fee + t.verification_cost,
        damage,
        t.client_share,
        t.forfeit,
        t.detection,
    )


def play(preset: Mapping[str, Any], seed: int, game: InspectionPayoffs) -> tuple[float, float]:
    """One run of fictitious play; the time averages (after the burn-in) of the check and cheat rates played."""
    cfg = sim_config(preset, seed)
    m = cfg["market"]
    fp = FictitiousPlay(game, m["n_clients"], m["n_nodes"], m["n_clients"])
    played: list[tuple[float, float]] = []

    def observe(result: RoundResult, _: Any) -> None:
        fp.observe(result.deals)
        played.append((float(result.deals.checked.mean()), float(result.deals.cheated.mean())))

    run(cfg, preset["measure"]["rounds"], act=lambda actions, _: fp.act(actions), observe=observe)
    rates = np.array(played[preset["measure"]["burn_in"] :])
    return float(rates[:, 0].mean()), float(rates[:, 1].mean())


def measure_mixed(
    game: str, claim_prefix: str, preset: Mapping[str, Any], game_payoffs: InspectionPayoffs, eq: MixedInspection
) -> list[Result]:
    """Fictitious play over the preset's seeds against the mixed equilibrium `eq`. Each agent learns from its own
    deals, so its belief is noisy; a side whose equilibrium rate is below 1/2 then over-reacts by a bias that shrinks
    as O(1/sqrt(rounds)), so these rows are judged within `measure.fp_tolerance` of the equilibrium rather than by
    their interval (which the bias can exceed)."""
    runs = np.array([play(preset, s, game_payoffs) for s in preset["measure"]["seeds"]])
    paper, tol = preset["paper"], preset["measure"]["fp_tolerance"]
    what = f"(fictitious play, time average; within {tol} of the equilibrium)"
    return [
        Result(
            game, paper, f"{claim_prefix}: fictitious play approaches q* {what}", eq.check_rate, mean(runs[:, 0]), tol
        ),
        Result(
            game, paper, f"{claim_prefix}: fictitious play approaches r* {what}", eq.cheat_rate, mean(runs[:, 1]), tol
        ),
    ]


def cheat_gain_line(preset: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(committed check rate, an always-cheat node's profit minus the honest nodes' mean) per cheater's job."""
    xs, ys = [], []
    meas = preset["measure"]
    for i, q in enumerate(meas["check_rates"]):
        cfg = sim_config(
            preset,
            i,
            agents={
                "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 1.0}],
                "clients": [{"strategy": "checker", "q": q}],
            },
        )
        log = ProfitLog()
        sim = run(cfg, meas["indifference_rounds"], observe=log)
        node, profit = log.samples()
        cheater = sim.population.labels("nodes")[node] == "cheater"
        xs.append(np.full(int(cheater.sum()), q))
        ys.append(profit[cheater] - profit[~cheater].mean())
    return np.concatenate(xs), np.concatenate(ys)


def client_check_gain(preset: Mapping[str, Any]) -> Estimate:
    """The cheat rate at which a client's gain from checking every result over never checking vanishes, with
    utility = change of wealth - damage x fakes accepted, over the preset's fixed cheat rates."""
    meas = preset["measure"]
    checkers, others = [], []
    for i, r in enumerate(meas["cheat_rates"]):
        cfg = sim_config(
            preset,
            100 + i,
            agents={
                "nodes": [{"strategy": "cheater", "rate": r}],
                "clients": [{"strategy": "checker", "q": 1.0}, {"strategy": "never_check"}],
            },
        )
        log = ProfitLog("client")
        sim = run(cfg, meas["indifference_rounds"], observe=log)
        client, profit = log.samples()
        fake_paid = np.concatenate([res.deals.paid & res.deals.wrong() for res in log.rounds])
        utility = profit - meas["damage"] * fake_paid
        checker = sim.population.labels("clients")[client] == "checker"
        checkers.append(utility[checker])
        others.append(utility[~checker])
    return gain_difference(meas["cheat_rates"], checkers, others)


def indifference(game: str, claim_prefix: str, preset: Mapping[str, Any], eq: MixedInspection) -> list[Result]:
    """Each side's equilibrium rate as the zero of the other side's measured gain."""
    paper = preset["paper"]
    return [
        Result(
            game,
            paper,
            f"{claim_prefix}: client's check rate q* (zero of the node's gain from cheating)",
            eq.check_rate,
            zero_crossing(*cheat_gain_line(preset)),
        ),
        Result(
            game,
            paper,
            f"{claim_prefix}: node's cheat rate r* (zero of the client's gain from checking)",
            eq.cheat_rate,
            client_check_gain(preset),
        ),
    ]


def reproduce(small: bool = False) -> list[Result]:
    preset = load("inspection", small)
    t, meas = terms(sim_config(preset, 0)), preset["measure"]
    game = payoffs(t, meas["damage"], meas["temperature"])
    eq = closed_form(t, meas["damage"])
    return indifference("inspection", "mixed equilibrium", preset, eq) + measure_mixed(
        "inspection", "mixed equilibrium", preset, game, eq
    )
