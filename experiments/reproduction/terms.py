"""The stage-game numbers a preset fixes (price, cost, deposit, fees, detection), read from its config with the
mechanisms' defaults, so closed forms and agents' payoffs use exactly what the twin settles with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mechanisms.money import BPS
from twin.build import parse


@dataclass(frozen=True)
class Terms:
    price: float  # p: job cost of the single module at the single price
    compute_cost: float  # c
    multiplier: float  # m: results collateral / job cost
    forfeit: bool  # a rejected node is not paid
    fee: float  # mediation fee per check (base + per instruction)
    verification_cost: float  # v: the client's own cost per check
    client_share: float  # s: share of the rejected node's deposit (after a loser-paid fee) reaching the client
    loser_pays: bool
    detection: float  # probability that mediation proves a wrong result
    nd_false_reject: float  # probability that mediation rejects a correct non-deterministic result

    @property
    def deposit(self) -> float:
        return self.multiplier * self.price


def terms(cfg: Mapping[str, Any]) -> Terms:
    """The terms of a single-module, single-price preset (sim config sections)."""
    parsed = parse(cfg)
    m = parsed.market
    module = m.modules[0]
    price = float(m.node_price[0] * module.instructions)
    base = parsed.stack.get("lilypad_v2").config  # type: ignore[union-attr]
    costs = parsed.stack.get("dispute_costs")
    verify = parsed.stack.get("imperfect_verification")
    fee = base.mediation_fee + (costs.config.fee_per_instruction * module.instructions if costs else 0)
    share = costs.config.client_share_bps / BPS if costs else 0.0
    if base.slash_to == "counterparty":
        share = 1.0
    return Terms(
        price=price,
        compute_cost=float(module.compute_cost),
        multiplier=base.results_multiplier_bps / BPS,
        forfeit=base.forfeit_payment,
        fee=float(fee),
        verification_cost=float(costs.config.verification_cost if costs else 0),
        client_share=share,
        loser_pays=bool(costs and costs.config.loser_pays),
        detection=float(verify.config.detection) if verify else 1.0,
        nd_false_reject=float(verify.config.nd_false_reject) if verify else 0.0,
    )
