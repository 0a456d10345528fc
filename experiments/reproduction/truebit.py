"""Truebit's jackpot: its steady state, the payout per forced error, and the number of verifiers at which
verification breaks even, measured on the twin's jackpot (`tax_jackpot` with `pay_for: forced_errors`).

The jackpot pays floor(pool x fraction) / claims per claim, floored, so each round leaves up to claims - 1 base
units behind: the intervals are widened by that deterministic bound (mean claims / fraction on the jackpot, one
unit on a payout)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from experiments.analysis.analytic import Truebit
from experiments.reproduction.common import Result, load, run, sim_config
from experiments.reproduction.estimate import Estimate, mean
from experiments.reproduction.terms import terms
from mechanisms.money import BPS, Pool
from mechanisms.protocol import Reason
from sim.engine import RoundResult

GAME = "truebit"


def observe_run(preset: Mapping[str, Any], seed: int) -> dict[str, np.ndarray]:
    """Per round: the jackpot at the round's start, the amount paid, the forced errors claimed, the deals."""
    out: dict[str, list[int]] = {"jackpot": [], "paid": [], "claims": [], "deals": [], "forced": []}
    cfg = sim_config(preset, seed)

    def observe(result: RoundResult, sim: Any) -> None:
        d, t = result.deals, result.transfers
        jackpot = sim.market.facts.pool_base + Pool.Jackpot
        out["jackpot"].append(int(d.context.balance[jackpot]))
        out["paid"].append(int(t.amount[t.reason == Reason.Jackpot].sum()))
        out["claims"].append(int(((t.reason == Reason.Jackpot) & (t.payer == jackpot)).sum()))
        out["deals"].append(len(d))
        out["forced"].append(int(d.forced_error.sum()))

    run(cfg, preset["measure"]["rounds"], observe=observe)
    burn = preset["measure"]["burn_in"]
    return {k: np.array(v[burn:]) for k, v in out.items()}


def model(preset: Mapping[str, Any]) -> Truebit:
    cfg = sim_config(preset, 0)
    t, jackpot = terms(cfg), preset["mechanism"]["tax_jackpot"]
    n, rho = cfg["market"]["n_nodes"], jackpot["forced_error_rate"]
    return Truebit(
        tasks=n,
        tax=t.price * jackpot["tax_bps"] / BPS,
        forced_rate=rho,
        fraction=jackpot["fraction_bps"] / BPS,
        verification_cost=t.verification_cost,
        p_claims=1 - (1 - rho) ** n,
    )


def reproduce(small: bool = False) -> list[Result]:
    preset = load(GAME, small)
    tb, paper = model(preset), preset["paper"]
    runs = [observe_run(preset, s) for s in preset["measure"]["seeds"]]
    claims = float(np.mean([r["claims"].mean() for r in runs]))
    jackpot = mean(np.array([r["jackpot"].mean() for r in runs])).widened(claims / tb.fraction)
    payout = mean(np.array([r["paid"].sum() / r["claims"].sum() for r in runs])).widened(1.0)
    rho = mean(np.array([r["forced"].sum() / r["deals"].sum() for r in runs]))
    cost = tb.verification_cost
    verifiers = Estimate(rho.value * payout.value / cost, rho.lo * payout.lo / cost, rho.hi * payout.hi / cost)
    return [
        Result(
            GAME, paper, "steady-state jackpot J* = tasks x tax / (P(claims) x fraction)", tb.steady_jackpot(), jackpot
        ),
        Result(
            GAME,
            paper,
            "payout per forced error = tax / forced-error rate (paid out / forced errors found)",
            tb.payout_per_forced_error(),
            payout,
        ),
        Result(
            GAME,
            paper,
            "verifiers at which verification breaks even (forced-error rate x payout / cost)",
            tb.break_even_verifiers(),
            verifiers,
        ),
    ]
