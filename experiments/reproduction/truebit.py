"""Truebit's jackpot and verifiers: the jackpot's steady state, the payout per forced error, and the number of
verifiers at which verifying breaks even, measured with independent verifiers (`mechanisms.verifiers`) claiming
forced errors from the jackpot (`tax_jackpot` with `pay_for: forced_errors`, `claimants: verifiers`).

The jackpot pays floor(pool x fraction) / claims per claim, floored, so each round leaves up to claims - 1 base
units behind: the jackpot's interval is widened by that deterministic bound (mean claims / fraction) and the
payout's by one unit per claim of a forced error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from experiments.analysis.analytic import Truebit
from experiments.reproduction.common import Result, load, run, sim_config
from experiments.reproduction.estimate import Estimate, mean, zero_crossing
from experiments.reproduction.terms import terms
from mechanisms.money import BPS, Pool
from mechanisms.protocol import Reason
from sim.engine import RoundResult

GAME = "truebit"


def observe_run(preset: Mapping[str, Any], seed: int, verifiers: int | None = None) -> dict[str, np.ndarray]:
    """Per round after the burn-in: the jackpot at the round's start, the amount it paid, its claims, the forced
    errors it paid for, the tasks, and each verifier's profit (change of balance)."""
    out: dict[str, list[Any]] = {k: [] for k in ("jackpot", "paid", "claims", "forced", "tasks", "verifier")}
    sections = {} if verifiers is None else {"mechanism": {"verifiers": {"verifiers": verifiers}}}
    cfg = sim_config(preset, seed, **sections)
    n = cfg["mechanism"]["verifiers"]["verifiers"]

    before: dict[str, np.ndarray] = {}  # balances at the round's start = the previous round's end

    def observe(result: RoundResult, sim: Any) -> None:
        d, t = result.deals, result.transfers
        facts = sim.market.facts
        jackpot = facts.pool_base + Pool.Jackpot
        accounts = facts.first_staker + np.arange(n)
        # the round context is a view of the live ledger, so the round's opening balances are kept here
        opening = before.get("balance", facts.initial_balances())
        before["balance"] = sim.engine.ledger.balance.copy()
        start = opening[accounts]
        out["jackpot"].append(int(opening[jackpot]))
        paid = (t.reason == Reason.Jackpot) & (t.payer == jackpot)
        out["paid"].append(int(t.amount[paid].sum()))
        out["claims"].append(int(paid.sum()))
        out["forced"].append(int((d.extra["verifiers.found"].any(axis=1) & d.forced_error).sum()) if paid.any() else 0)
        out["tasks"].append(len(d))
        out["verifier"].append(sim.engine.ledger.balance[accounts] - start)

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
        verification_cost=preset["mechanism"]["verifiers"]["verification_cost"],
        p_claims=1 - (1 - rho) ** n,
    )


def break_even(preset: Mapping[str, Any]) -> Estimate:
    """The number of verifiers at which a verifier's profit per task is zero: profit per task = tax / n - cost is
    linear in 1/n, so the zero of the fitted line in 1/n, inverted (one sample per round and verifier count)."""
    xs, ys = [], []
    for k, count in enumerate(preset["measure"]["verifier_counts"]):
        r = observe_run(preset, 1000 + k, count)
        xs.append(np.full(len(r["tasks"]), 1.0 / count))
        ys.append(r["verifier"].mean(axis=1) / r["tasks"])
    inv = zero_crossing(np.concatenate(xs), np.concatenate(ys))
    return Estimate(1 / inv.value, 1 / inv.hi, 1 / inv.lo)


def reproduce(small: bool = False) -> list[Result]:
    preset = load(GAME, small)
    tb, paper = model(preset), preset["paper"]
    runs = [observe_run(preset, s) for s in preset["measure"]["seeds"]]
    claims = float(np.mean([r["claims"].mean() for r in runs]))
    jackpot = mean(np.array([r["jackpot"].mean() for r in runs])).widened(claims / tb.fraction)
    payout = mean(np.array([r["paid"].sum() / r["forced"].sum() for r in runs])).widened(
        claims / max(np.mean([r["forced"].mean() for r in runs]), 1)
    )
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
            "verifiers at which verifying breaks even (zero of a verifier's profit per task)",
            tb.break_even_verifiers(),
            break_even(preset),
        ),
    ]
