"""The arithmetic of one `lilypad_v2` round in bare numpy, with no engine around it: the engine's speed anchor.

It does only what a round must compute on the benchmark's market (`benchmarks/engine.py`: one module every node
serves, market prices, every mediator trusted by everyone, no collusion): pair jobs with offers (oldest job takes
the cheapest offer), the decisions (agreement, lateness, cheating, checks, the mediator, its vote), each party's
net settlement amount, and the balance update. No deal table, no transfers, no event log, no public record, no
state machine, no solvency checks. Its orders are the engine's linear-time ones (`sim.solver`), so the anchor
is as fast as bare numpy gets here. It reads the same draws and actions as the engine and must end on the same
balances, which the benchmark checks ("agree"): the anchor does the same arithmetic, not an easier one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mechanisms.actions import Actions
from mechanisms.lilypad_v2 import LilypadV2Config
from mechanisms.money import BPS, Pool
from sim.draws import E, RoundDraws, U
from sim.market import Market, ResponseTimes
from sim.solver import RADIX_KEYS, arrival_order


@dataclass(frozen=True)
class KernelMarket:
    """The few market facts the kernel reads (a single module; all mediators trusted by all)."""

    node_price: np.ndarray
    instructions: int
    compute_cost: int
    n_mediators: int
    first_node: int
    first_mediator: int
    pool_base: int
    terms: LilypadV2Config
    response: ResponseTimes

    @classmethod
    def of(cls, market: Market, terms: LilypadV2Config) -> KernelMarket:
        c, f = market.config, market.facts
        if len(c.modules) != 1 or c.fixed_price_share != 0 or c.trust_profiles != ((),) or c.allowlists != ((),):
            raise ValueError("the kernel covers one module, market prices, full trust and no allowlists")
        if int(np.ptp(market.node_price)) > RADIX_KEYS:
            raise ValueError("the kernel sorts prices as 16-bit keys")
        if terms.slash_to != "burn" or not terms.forfeit_payment:
            raise ValueError("the kernel covers slash_to=burn and forfeit_payment=true")
        return cls(
            market.node_price,
            int(market.module_instructions[0]),
            int(market.module_compute_cost[0]),
            c.n_mediators,
            f.first_node,
            f.first_mediator,
            f.pool_base,
            terms,
            c.response,
        )


def kernel_round(m: KernelMarket, balance: np.ndarray, draws: RoundDraws, actions: Actions) -> int:
    """Settle one round into `balance` (updated in place); returns the number of deals."""
    c, r = m.terms, m.response
    jobs = np.flatnonzero(draws.client_active)
    jobs = jobs[arrival_order(draws.job_arrival[jobs])]
    offers = np.flatnonzero(draws.node_active)
    offers = offers[arrival_order(draws.node_arrival[offers])]
    price = m.node_price[offers]
    offers = offers[np.argsort((price - price.min()).astype(np.int16), kind="stable")]  # cheapest, then oldest
    k = min(len(jobs), len(offers))
    client, node = jobs[:k], offers[:k]
    node_account = m.first_node + node
    u, e = draws.u[client], draws.e[client]

    job_cost = m.node_price[node] * m.instructions
    payment = job_cost * c.payment_collateral_bps // BPS
    results = job_cost * c.results_multiplier_bps // BPS
    bribe = actions.nodes.bribe[node]

    agreed = (balance[client] >= payment + c.judge_timeout_collateral + c.mediation_fee) & (
        e[:, E.client_agree] * r.client_agree <= c.deadline_agree
    )
    agreed &= (balance[node_account] >= c.submit_timeout_collateral + results + m.compute_cost + bribe) & (
        e[:, E.node_agree] * r.node_agree <= c.deadline_agree
    )
    submitted = agreed & (e[:, E.node_submit] * r.node_submit <= c.deadline_submit)
    cheated = submitted & (u[:, U.cheat] < actions.nodes.cheat_rate[node])
    judged = submitted & (e[:, E.client_judge] * r.client_judge <= c.deadline_judge)
    checked = judged & (u[:, len(U)] < actions.clients.check_rate[client])
    mediator = np.floor(u[:, len(U) + 1] * m.n_mediators).astype(np.int64)
    mediated = checked & (e[:, E.mediator] * r.mediator <= c.deadline_mediate)
    bribed = mediated & cheated & (bribe > 0) & (bribe >= actions.mediators.bribe_threshold[mediator])
    rejected = mediated & cheated & ~bribed
    paid = (judged & ~checked) | (submitted & ~judged) | (mediated & ~rejected)
    judge_late = submitted & ~judged
    submit_late = agreed & ~submitted
    node_works = submitted & ~cheated
    mediator_works = mediated & ~bribed

    pay = np.where(paid, job_cost, 0)
    balance[client] -= (
        pay + np.where(judge_late, c.judge_timeout_collateral, 0) + np.where(mediated, c.mediation_fee, 0)
    )
    balance[node_account] += (
        pay
        - np.where(node_works, m.compute_cost, 0)
        - np.where(submit_late, c.submit_timeout_collateral, 0)
        - np.where(rejected, results, 0)
        - np.where(bribed, bribe, 0)
    )
    np.add.at(
        balance,
        m.first_mediator + mediator[mediated],
        c.mediation_fee - np.where(mediator_works[mediated], m.compute_cost, 0) + bribe[mediated] * bribed[mediated],
    )
    balance[m.pool_base + Pool.Burn] += (
        c.judge_timeout_collateral * int(judge_late.sum())
        + c.submit_timeout_collateral * int(submit_late.sum())
        + int(results[rejected].sum())
    )
    balance[m.pool_base + Pool.Compute] += m.compute_cost * int(node_works.sum() + mediator_works.sum())
    return k
