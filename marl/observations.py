"""What a learning agent observes: features cut from the public record plus the agent's own state, never another
agent's private choice (docs/architecture.md, "Observations come from the public record")."""

from __future__ import annotations

from collections.abc import Mapping

import gymnasium
import numpy as np

from marl.config import EnvConfig
from marl.counters import C, ratio
from marl.episode import Episode

COMMON_FEATURES = (
    "round_fraction",
    "wealth_change",
    "last_profit",
    "market_fill",
    "market_check_share",
    "market_reject_share",
)
#: Observation layout per role: the common features, then these. `last_` = the previous round (the agent's own
#: deals), `pub_` = the agent's own counters on the public record (sim.public_record; a whitewashed node starts over),
#: `cum_` = the agent's own episode totals.
ROLE_FEATURES = {
    "node": (
        "last_deal",
        "last_cheated",
        "last_checked",
        "last_rejected",
        "last_bribe_paid",
        "pub_jobs_per_round",
        "pub_check_rate",
        "pub_fail_rate",
    ),
    "client": ("last_deal", "last_checked", "last_rejected", "pub_jobs_per_round", "pub_check_rate", "cum_reject_rate"),
    "mediator": (
        "last_mediation_share",
        "last_bribe_offer_rate",
        "last_bribe_take_rate",
        "last_mean_bribe",
        "last_reject_rate",
        "pub_mediations_per_round",
        "cum_reject_rate",
        "cum_bribe_take_rate",
    ),
}


#: With `env.partner_action`, nodes also observe this: whether their replica partner posted the cartel's result last
#: round (a repeated game on fixed pairs, `agents.repeated`).
PARTNER_FEATURE = "last_partner_cartel"


def role_features(role: str, cfg: EnvConfig) -> tuple[str, ...]:
    """The role's own features in the configured env (ROLE_FEATURES, plus the partner's action for nodes)."""
    extra = (PARTNER_FEATURE,) if role == "node" and cfg.partner_action else ()
    return (*ROLE_FEATURES[role], *extra)


def _role_features(
    role: str,
    last: np.ndarray,
    cum: np.ndarray,
    pub: Mapping[str, np.ndarray],
    rounds: int,
    market_deals: int | np.ndarray,
    money_scale: float,
) -> list[np.ndarray]:
    """Columns of ROLE_FEATURES[role] for some accounts: `last`/`cum` are (len(COUNTERS), k) counts, `pub` the
    public record's counters of the same accounts."""
    if role == "node":
        return [
            last[C["deals"]],
            last[C["cheated"]],
            last[C["checked"]],
            last[C["rejected"]],
            last[C["bribes_taken"]],
            ratio(pub["jobs"], rounds),
            ratio(pub["checked"], pub["jobs"]),
            ratio(pub["failed"], pub["jobs"]),
        ]
    if role == "client":
        return [
            last[C["deals"]],
            last[C["checked"]],
            last[C["rejected"]],
            ratio(pub["client_jobs"], rounds),
            ratio(pub["client_checks"], pub["client_jobs"]),
            ratio(cum[C["rejected"]], cum[C["checked"]]),
        ]
    return [
        ratio(last[C["mediated"]], market_deals),
        ratio(last[C["bribes_offered"]], last[C["mediated"]]),
        ratio(last[C["bribes_taken"]], last[C["bribes_offered"]]),
        ratio(last[C["bribe_amount"]], last[C["bribes_offered"]]) / money_scale,
        ratio(last[C["rejected"]], last[C["mediated"]]),
        ratio(pub["mediations"], rounds),
        ratio(cum[C["rejected"]], cum[C["mediated"]]),
        ratio(cum[C["bribes_taken"]], cum[C["bribes_offered"]]),
    ]


def observation_matrix(
    ep: Episode,
    cfg: EnvConfig,
    role: str,
    acc: np.ndarray,
    first_node: int,
    market: np.ndarray | None = None,
    market_deals: np.ndarray | None = None,
) -> np.ndarray:
    """(len(acc), features) float32 observations of the accounts `acc` of `role` (layout COMMON_FEATURES +
    ROLE_FEATURES[role]) from the episode's state; `first_node` = number of clients. Markets settled together
    (`marl.vector`) give each row its own market's public shares (`market`, (len(acc), 3)) and deal count.

    Cast to float32 first and clipped to the float32 bounds of `observation_box` after, so every observation is
    inside the space to the last bit, whatever the config's scales (the features are finite by construction)."""
    k = len(acc)
    shares = np.broadcast_to(ep.market, (k, 3)) if market is None else market
    deals = int(ep.last[C["deals"], :first_node].sum()) if market_deals is None else market_deals
    common = [
        # a window of an endless game (env.truncate) has no position and no start: neither is part of its state
        np.full(k, 0.0 if cfg.truncate else ep.round / cfg.rounds),
        (ep.wealth[acc] - ep.wealth0[acc]) / cfg.money_scale * (not cfg.truncate),
        ep.profit[acc] / cfg.money_scale,
        *shares.T,
    ]
    pub = {name: counts[acc] for name, counts in ep.engine.record.counters.items()}
    cols = common + _role_features(role, ep.last[:, acc], ep.cum[:, acc], pub, max(ep.round, 1), deals, cfg.money_scale)
    if role == "node" and cfg.partner_action:
        history = getattr(ep, "history", None)
        if history is None:  # only MarketEnv keeps partners' histories
            raise ValueError("env.partner_action needs the partners' histories that marl.env.MarketEnv keeps")
        cols.append(history.partner_colluded[acc - first_node].astype(np.float64))
    bound = _bound(cfg)
    with np.errstate(over="ignore"):  # beyond float32's range is beyond the bound: the clip takes it to the bound
        values = np.column_stack(cols).astype(np.float32)
    return np.clip(values, -bound, bound)


def _bound(cfg: EnvConfig) -> np.float32:
    """`obs_clip` as a float32 (validation keeps it within float32's finite range)."""
    return np.float32(cfg.obs_clip)


def observation_box(role: str, cfg: EnvConfig) -> gymnasium.spaces.Box:
    """The role's observation space: one float32 entry per feature, in [-obs_clip, obs_clip] (float32 bounds)."""
    n = len(COMMON_FEATURES) + len(role_features(role, cfg))
    high = np.full(n, _bound(cfg), dtype=np.float32)
    return gymnasium.spaces.Box(-high, high, dtype=np.float32)
