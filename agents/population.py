"""Who plays what: strategies assigned to agents by config, and the round's joint actions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.scripted import STRATEGIES, Strategy
from mechanisms.actions import Actions, ClientActions, MediatorActions, NodeActions
from mechanisms.config import ConfigError, from_mapping, require

ROLES = ("clients", "nodes", "mediators")
ROLE_OF_GROUP = {"clients": "client", "nodes": "node", "mediators": "mediator"}


@dataclass(frozen=True)
class Group:
    """A share of a role's agents playing one strategy."""

    strategy: Strategy
    share: float


def parse_groups(entries: Sequence[Mapping[str, Any]], role: str, path: str) -> list[Group]:
    """`[{strategy: name, share: w, <strategy params>}, ...]` -> groups."""
    require(len(entries) > 0, path, list(entries), "at least one strategy entry")
    groups = []
    for i, entry in enumerate(entries):
        entry = dict(entry)
        where = f"{path}[{i}]"
        name = entry.pop("strategy", None)
        known = STRATEGIES[role]
        require(name in known, f"{where}.strategy", name, f"one of {sorted(known)}")
        share = entry.pop("share", 1.0)
        ok = isinstance(share, (int, float)) and not isinstance(share, bool) and 0 < share < math.inf
        require(ok, f"{where}.share", share, "a positive finite number")
        groups.append(Group(from_mapping(known[name], entry, where), float(share)))
    return groups


def split_counts(n: int, shares: Sequence[float]) -> list[int]:
    """Agents per group: floor of the share, the remainder handed out one each in group order."""
    total = sum(shares)
    counts = [int(np.floor(n * s / total)) for s in shares]
    for i in range(n - sum(counts)):
        counts[i % len(counts)] += 1
    return counts


class Population:
    """Strategy of every agent; produces the round's `Actions`. Rows are positions within the role."""

    def __init__(self, groups: Mapping[str, list[Group]], sizes: Mapping[str, int]) -> None:
        self.sizes = dict(sizes)
        self.assignment: dict[str, list[tuple[Strategy, np.ndarray]]] = {}
        for role in ROLES:
            counts = split_counts(self.sizes[role], [g.share for g in groups[role]])
            bounds = np.cumsum([0, *counts])
            self.assignment[role] = [
                (g.strategy, np.arange(bounds[i], bounds[i + 1])) for i, g in enumerate(groups[role])
            ]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], sizes: Mapping[str, int], path: str = "agents") -> Population:
        unknown = sorted(set(config) - set(ROLES))
        if unknown:
            raise ConfigError(f"{path}: unknown field(s) {unknown}; allowed: {list(ROLES)}")
        groups = {
            role: parse_groups(
                config.get(role, [{"strategy": "honest" if role != "clients" else "checker"}]),
                ROLE_OF_GROUP[role],
                f"{path}.{role}",
            )
            for role in ROLES
        }
        return cls(groups, sizes)

    def labels(self, role: str) -> np.ndarray:
        """Strategy name per agent of the role."""
        out = np.empty(self.sizes[role], dtype=object)
        for strategy, rows in self.assignment[role]:
            out[rows] = strategy.name
        return out

    def actions(self, round_index: int) -> Actions:
        acts = Actions(
            NodeActions.default(self.sizes["nodes"]),
            ClientActions.default(self.sizes["clients"]),
            MediatorActions.default(self.sizes["mediators"]),
        )
        for role, out in (("nodes", acts.nodes), ("clients", acts.clients), ("mediators", acts.mediators)):
            for strategy, rows in self.assignment[role]:
                strategy.act(rows, out, round_index)
        return acts
