"""What each role decides in a round: one array per decision, over all agents of the role.

Scripted strategies and learned policies both produce these, so a population can mix them freely. Rates are
turned into per-deal decisions by the engine with the round's pre-drawn uniforms (decision = u < rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from mechanisms.deals import NEVER


@dataclass
class NodeActions:
    cheat_rate: np.ndarray  # probability of posting a fake result on a job (float64 in [0, 1])
    bribe: np.ndarray  # offered to the mediator when a fake result is checked (int64 base units; 0 = none)
    collude: np.ndarray = None  # type: ignore[assignment]  # bool: a fake result is the cartel's shared one
    whitewash: np.ndarray = None  # type: ignore[assignment]  # bool: start over under a new identity
    report: np.ndarray = None  # type: ignore[assignment]  # bool: prove the cartel's fake it posted (whistleblow)
    wait: np.ndarray = None  # type: ignore[assignment]  # bool: post after the other replicas (copy without commits)

    def __post_init__(self) -> None:
        n = len(self.cheat_rate)
        for name in ("collude", "whitewash", "report", "wait"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(n, dtype=bool))

    @classmethod
    def default(cls, n: int) -> NodeActions:
        return cls(np.zeros(n), np.zeros(n, dtype=np.int64))


@dataclass
class ClientActions:
    check_rate: np.ndarray  # probability of asking for mediation on a result
    accuse: np.ndarray = None  # type: ignore[assignment]  # bool: ask colluding mediators to reject a correct result

    def __post_init__(self) -> None:
        self.accuse = np.zeros(len(self.check_rate), dtype=bool) if self.accuse is None else self.accuse

    @classmethod
    def default(cls, n: int) -> ClientActions:
        return cls(np.zeros(n))


@dataclass
class MediatorActions:
    bribe_threshold: np.ndarray  # smallest bribe accepted (int64; NEVER = incorruptible)
    collude: np.ndarray = None  # type: ignore[assignment]  # bool: vote with the cartel
    report: np.ndarray = None  # type: ignore[assignment]  # bool: prove a bribe it took (whistleblow)

    def __post_init__(self) -> None:
        n = len(self.bribe_threshold)
        for name in ("collude", "report"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(n, dtype=bool))

    @classmethod
    def default(cls, n: int) -> MediatorActions:
        return cls(np.full(n, NEVER, dtype=np.int64))


@dataclass
class Actions:
    nodes: NodeActions
    clients: ClientActions
    mediators: MediatorActions

    @classmethod
    def concat(cls, parts: Sequence[Actions]) -> Actions:
        """Several markets' actions as one (the markets' agents side by side, role by role, as `sim.union` lays
        them out)."""

        def joined(group: str, kind: type) -> Any:
            return kind(**{f.name: np.concatenate([getattr(getattr(p, group), f.name) for p in parts])
                           for f in fields(kind)})  # fmt: skip

        return cls(joined("nodes", NodeActions), joined("clients", ClientActions),
                   joined("mediators", MediatorActions))  # fmt: skip
