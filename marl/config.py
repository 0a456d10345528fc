"""The env's config: the builder's sections (seed, market, mechanism, agents; see `twin.build`) plus `env`.

Everything is validated when the env is constructed, before any episode runs; errors are `ConfigError`s naming the
field and the allowed values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.repeated import STRATEGIES as REPEATED
from marl.heads import HEADS, ROLES
from mechanisms.config import from_mapping, require, require_int
from mechanisms.money import MAX_AMOUNT
from twin.build import SECTIONS, ParsedConfig, check_keys, parse

ENV_KEYS = (*SECTIONS, "env")
#: Largest scale or observation bound: observations are float32, so their bounds must be finite float32 numbers.
MAX_SCALE = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class FocalConfig:
    """Learning agents per role: a count (the role's first rows) or a list of row indices within the role."""

    node: int | tuple[int, ...] = 0
    client: int | tuple[int, ...] = 0
    mediator: int | tuple[int, ...] = 0


@dataclass(frozen=True)
class ActionConfig:
    """Action heads per role, in order (names from `marl.heads.HEADS`)."""

    node: tuple[str, ...] = ("cheat", "bribe")
    client: tuple[str, ...] = ("check",)
    mediator: tuple[str, ...] = ("vote",)


@dataclass(frozen=True)
class EnvConfig:
    rounds: int = 20  # rounds per episode (the repeated game's length)
    discount: float = 0.99  # the agents' discount factor per round (train uses it as the RL gamma)
    # true: an episode is a window of an endless game (values are bootstrapped at the cut; round_fraction and
    # wealth_change observe 0, since the window's position and start are no part of the game's state)
    truncate: bool = False
    focal: FocalConfig = field(default_factory=FocalConfig)
    actions: ActionConfig = field(default_factory=ActionConfig)
    bribe_levels: tuple[int, ...] = (0, 10, 20, 40)  # bribes a node may offer (base units; 0 = none)
    threshold_levels: tuple[int, ...] = (10, 20, 40)  # smallest bribe a corruptible mediator accepts
    # Loss a mediator expects per bribe taken (a stake or reputation slash no mechanism models yet). It lowers the
    # mediator's reward, not its ledger balance, and is reported separately as `penalty`.
    bribe_penalty: int = 0
    # The client's economics (utility, not ledger money): what a result it accepted is worth to it when correct, and
    # what it loses when the accepted result was fake. Both enter only the clients' rewards, per deal accepted.
    client_value: int = 0
    client_damage: int = 0
    reward_scale: float = 1.0  # reward = reward_scale x (profit - penalty + client value - client damage)
    # true: the focal agents are one coalition; each receives the coalition's summed reward / k (k focal agents),
    # so a shared policy maximizes the members' total. Ledger profits and the episode counters stay per agent.
    shared_reward: bool = False
    money_scale: float = 100.0  # base units per observation unit
    obs_clip: float = 10.0  # observations are clipped to [-obs_clip, obs_clip]
    # Repeated games on fixed replica pairs (agents.repeated): true adds `last_partner_cartel` to the nodes'
    # observations, whether the replica that shared the node's last job posted the cartel's result (public once
    # revealed; 1 before any round: nobody has deviated yet). `repeated`: one agents.repeated strategy per node row
    # (grim, tit_for_tat, collude, honest) played instead of the node's scripted strategy; a focal node's policy
    # overrides its entry. Empty: off.
    partner_action: bool = False
    repeated: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        require_int(self.rounds, f"{path}.rounds", 1, 10**7)
        require(
            _number(self.discount) and 0.0 <= self.discount <= 1.0,
            f"{path}.discount",
            self.discount,
            "a number in [0, 1]",
        )
        require(isinstance(self.truncate, bool), f"{path}.truncate", self.truncate, "true or false")
        require(isinstance(self.shared_reward, bool), f"{path}.shared_reward", self.shared_reward, "true or false")
        require(isinstance(self.partner_action, bool), f"{path}.partner_action", self.partner_action, "true or false")
        for i, name in enumerate(self.repeated):
            require(name in REPEATED, f"{path}.repeated[{i}]", name, f"one of {list(REPEATED)}")
        require(len(self.bribe_levels) > 0, f"{path}.bribe_levels", self.bribe_levels, "at least one level")
        for name in ("bribe_levels", "threshold_levels"):
            for i, v in enumerate(getattr(self, name)):
                require_int(v, f"{path}.{name}[{i}]", 0 if name == "bribe_levels" else 1, MAX_AMOUNT)
        for name in ("bribe_penalty", "client_value", "client_damage"):
            require_int(getattr(self, name), f"{path}.{name}", 0, MAX_AMOUNT)
        for name in ("reward_scale", "money_scale", "obs_clip"):
            value = getattr(self, name)
            require(
                _number(value) and 0 < value <= MAX_SCALE,
                f"{path}.{name}",
                value,
                f"a positive number up to {MAX_SCALE:.3g} (float32's largest finite value)",
            )
        for role in ROLES:
            heads = getattr(self.actions, role)
            require(
                len(heads) > 0 and len(set(heads)) == len(heads),
                f"{path}.actions.{role}",
                list(heads),
                f"a non-empty list of distinct names from {sorted(HEADS[role])}",
            )
            for i, name in enumerate(heads):
                require(name in HEADS[role], f"{path}.actions.{role}[{i}]", name, f"one of {sorted(HEADS[role])}")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def parse_env(cfg: Mapping[str, Any]) -> tuple[ParsedConfig, EnvConfig]:
    """Validate a whole env config: the builder's sections (seed, market, mechanism, agents) plus `env`."""
    require(isinstance(cfg, Mapping), "config", cfg, "a mapping")
    check_keys(cfg, ENV_KEYS)
    parsed = parse(builder_sections(cfg))
    env = cfg.get("env") or {}
    require(isinstance(env, Mapping), "env", env, "a mapping")
    env_cfg = from_mapping(EnvConfig, env, "env")
    n_nodes = parsed.market.n_nodes
    require(
        len(env_cfg.repeated) in (0, n_nodes),
        "env.repeated",
        list(env_cfg.repeated),
        f"an empty list (off) or one strategy per node ({n_nodes})",
    )
    return parsed, env_cfg


def builder_sections(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k in SECTIONS}


def focal_rows(spec: int | tuple[int, ...], size: int, path: str) -> np.ndarray:
    """Row indices within a role from a count or an explicit list."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        require_int(spec, path, 0, size)
        return np.arange(spec, dtype=np.int64)
    rows = np.asarray(spec, dtype=np.int64)
    ok = all(isinstance(r, int) and not isinstance(r, bool) for r in spec) and len(set(spec)) == len(spec)
    require(
        ok and bool(np.all((rows >= 0) & (rows < size))),
        path,
        list(spec),
        f"a count in [0, {size}] or distinct row indices in [0, {size})",
    )
    return np.sort(rows)
