"""The inspection game with client damage and a share of the slashed deposit: the mixed equilibrium, reached by
fictitious play (`agents.fictitious`) and measured as the time average of the rates the agents played."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from agents.fictitious import FictitiousPlay, InspectionPayoffs
from experiments.analysis.analytic import MixedInspection, mixed_inspection
from experiments.reproduction.common import Result, load, run, sim_config
from experiments.reproduction.estimate import mean
from experiments.reproduction.terms import Terms, terms
from sim.engine import RoundResult


def payoffs(t: Terms, damage: float, temperature: float) -> InspectionPayoffs:
    """Each side's stage payoffs under the preset's terms (what the agents know of their own game)."""
    f = float(t.forfeit)
    proof = t.detection
    value = proof * (damage + f * t.price + t.client_share * t.deposit)
    return InspectionPayoffs(saved=t.compute_cost, loss=proof * (t.deposit + f * t.price), value=value,
                             cost=t.fee + t.verification_cost, temperature=temperature)


def closed_form(t: Terms, damage: float) -> MixedInspection:
    return mixed_inspection(t.price, t.compute_cost, t.multiplier, t.fee + t.verification_cost, damage,
                            t.client_share, t.forfeit, t.detection)


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
    rates = np.array(played[preset["measure"]["burn_in"]:])
    return float(rates[:, 0].mean()), float(rates[:, 1].mean())


def measure_mixed(game: str, claim_prefix: str, preset: Mapping[str, Any], game_payoffs: InspectionPayoffs,
                  eq: MixedInspection) -> list[Result]:
    """Fictitious play over the preset's seeds against the mixed equilibrium `eq`."""
    runs = np.array([play(preset, s, game_payoffs) for s in preset["measure"]["seeds"]])
    paper = preset["paper"]
    return [
        Result(game, paper, f"{claim_prefix}: client's check rate q* (fictitious play, time average)",
               eq.check_rate, mean(runs[:, 0])),
        Result(game, paper, f"{claim_prefix}: node's cheat rate r* (fictitious play, time average)",
               eq.cheat_rate, mean(runs[:, 1])),
    ]


def reproduce(small: bool = False) -> list[Result]:
    preset = load("inspection", small)
    t, meas = terms(sim_config(preset, 0)), preset["measure"]
    game = payoffs(t, meas["damage"], meas["temperature"])
    return measure_mixed("inspection", "mixed equilibrium", preset, game, closed_form(t, meas["damage"]))
