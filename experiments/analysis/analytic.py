"""The inspection game: the closed-form benchmark the measured gains are drawn against.

A node paid p per job that costs it c to compute posts results collateral m x p. A client checks with committed
probability q; an honest mediator catches every fake it sees; a caught cheater loses the collateral and, with
`forfeit_payment`, the payment. Per job:

    honest: p - c        always cheat: p - q (m + f) p        (f = 1 if the payment is forfeited, else 0)
    gain of cheating at rate r:  r (c - q (m + f) p),  positive iff  q < q* = c / ((m + f) p)

(price 10, cost 6, multiplier 2, forfeit: q* = 0.2). The model holds for a market where it can be read off the
config: one module at one price, every job matched every round (one job per node and round), nobody late, nobody
restricted by allowlists or trust, and a stack of the base mechanism alone, optionally with a fixed check policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mechanisms.config import ConfigError
from mechanisms.money import BPS
from twin.build import parse

RESOURCES = ("cpu", "gpu", "vram", "ram", "disk")
#: `${inspection_threshold:}` in a Hydra config: q* of the config's own market, mechanism and agents (see
#: `register_resolver`), so a plotted threshold is never typed by hand.
RESOLVER = "inspection_threshold"


@dataclass(frozen=True)
class InspectionGame:
    price: float  # job cost p (price x instructions)
    compute_cost: float  # c
    multiplier: float  # m
    forfeit_payment: bool
    q: float | None  # the check probability of the configuration, when it has a single one

    @property
    def threshold(self) -> float:
        """q*: cheating pays iff the check probability is below it."""
        return threshold(self.price, self.compute_cost, self.multiplier, self.forfeit_payment)

    def gain(self, q: float, rate: float = 1.0) -> float:
        """Expected gain per job (= per round here) of cheating at `rate` over honesty."""
        return cheat_gain(q, self.price, self.compute_cost, self.multiplier, self.forfeit_payment, rate)


def threshold(price: float, compute_cost: float, multiplier: float, forfeit_payment: bool = True) -> float:
    return compute_cost / ((multiplier + float(forfeit_payment)) * price)


def cheat_gain(
    q: float, price: float, compute_cost: float, multiplier: float, forfeit_payment: bool = True, rate: float = 1.0
) -> float:
    return rate * (compute_cost - q * (multiplier + float(forfeit_payment)) * price)


def inspection_game(cfg: Mapping[str, Any]) -> InspectionGame | None:
    """The inspection game a simulate-style config (market, mechanism, agents) reduces to, or None."""
    parsed = parse({k: cfg[k] for k in ("market", "mechanism", "agents") if k in cfg})
    m = parsed.market
    r = m.response
    ok = (
        len(m.modules) == 1
        and m.node_price[0] == m.node_price[1]
        and m.client_max_price[0] >= m.node_price[1]
        and m.client_activity == 1.0
        and m.node_activity == 1.0
        and m.n_clients >= m.n_nodes
        and all(v == 0 for v in (r.client_agree, r.node_agree, r.node_submit, r.client_judge, r.mediator))
        and all(not a for a in m.allowlists)
        and all(not t for t in m.trust_profiles)
        and all(getattr(box, k) >= getattr(m.modules[0], k) for box in m.machines for k in RESOURCES)
    )
    active = {mech.name: mech.config for mech in parsed.stack.active}
    base = active.pop("lilypad_v2", None)
    policy = active.pop("check_policy", None)
    if not ok or base is None or active or (policy is not None and policy.mode != "fixed"):
        return None
    module = m.modules[0]
    if policy is not None:
        q: float | None = float(policy.q)
    else:
        rates = {getattr(s, "q", 0.0) for s, _ in parsed.population.assignment["clients"]}
        q = float(rates.pop()) if len(rates) == 1 else None
    return InspectionGame(
        float(m.node_price[0] * module.instructions),
        float(module.compute_cost),
        base.results_multiplier_bps / BPS,
        base.forfeit_payment,
        q,
    )


def config_threshold(*, _root_: DictConfig) -> float | None:
    """The resolver's value: q* of the inspection game the whole config reduces to, None where it does not (or
    where the config is invalid: the app's own validation then names the field)."""
    sections = {
        k: OmegaConf.to_container(_root_[k], resolve=True) for k in ("market", "mechanism", "agents") if k in _root_
    }
    try:
        game = inspection_game(sections)
    except ConfigError:
        return None
    return None if game is None else game.threshold


def register_resolver() -> None:
    """Make `${inspection_threshold:}` resolvable (idempotent); apps whose configs use it call this at import."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, config_threshold)
