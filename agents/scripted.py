"""Scripted strategies: fixed behaviour per role, registered by name for configs.

Each strategy writes its agents' rows of the role's action arrays. Learned policies (marl.rllib) fill the same
arrays from observations, so the two are interchangeable in a population.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import numpy as np

from mechanisms.actions import ClientActions, MediatorActions, NodeActions
from mechanisms.config import Probability, Range
from mechanisms.deals import NEVER
from mechanisms.money import MAX_AMOUNT, Amount


class Strategy(ABC):
    """A behaviour for the agents (row indices within the role) assigned to it."""

    role: ClassVar[str]
    name: ClassVar[str]

    @abstractmethod
    def act(self, rows: np.ndarray, out: Any, round_index: int) -> None:
        """Write decisions for `rows` into the role's action arrays `out`."""


@dataclass(frozen=True)
class HonestNode(Strategy):
    role = "node"
    name = "honest"

    def act(self, rows: np.ndarray, out: NodeActions, round_index: int) -> None:
        out.cheat_rate[rows] = 0.0
        out.bribe[rows] = 0


@dataclass(frozen=True)
class CheatingNode(Strategy):
    """Posts a fake result with probability `rate` (1.0 = always cheat); offers `bribe` if caught checking."""

    role = "node"
    name = "cheater"
    rate: Probability = 1.0
    bribe: Amount = 0

    def act(self, rows: np.ndarray, out: NodeActions, round_index: int) -> None:
        out.cheat_rate[rows] = self.rate
        out.bribe[rows] = self.bribe


@dataclass(frozen=True)
class CopyingNode(CheatingNode):
    """Skips the work like `cheater` and waits to post after the other replicas of its job (the timing attack):
    without commit-reveal it copies the result they posted."""

    name = "copier"

    def act(self, rows: np.ndarray, out: NodeActions, round_index: int) -> None:
        super().act(rows, out, round_index)
        out.wait[rows] = True


@dataclass(frozen=True)
class WhitewashingNode(CheatingNode):
    """Cheats like `cheater` and takes a fresh identity every `period` rounds (rounds 0, period, 2 x period, ...),
    so its public record, and any reputation built on it, never shows more than `period` rounds of failures."""

    name = "whitewasher"
    period: Annotated[int, Range(1, 10**9)] = 1

    def act(self, rows: np.ndarray, out: NodeActions, round_index: int) -> None:
        super().act(rows, out, round_index)
        out.whitewash[rows] = round_index % self.period == 0


@dataclass(frozen=True)
class CheckingClient(Strategy):
    """Checks each result with committed probability `q` (0 = never checks)."""

    role = "client"
    name = "checker"
    q: Probability = 0.1

    def act(self, rows: np.ndarray, out: ClientActions, round_index: int) -> None:
        out.check_rate[rows] = self.q


@dataclass(frozen=True)
class NeverCheckingClient(Strategy):
    role = "client"
    name = "never_check"

    def act(self, rows: np.ndarray, out: ClientActions, round_index: int) -> None:
        out.check_rate[rows] = 0.0


@dataclass(frozen=True)
class HonestMediator(Strategy):
    role = "mediator"
    name = "honest"

    def act(self, rows: np.ndarray, out: MediatorActions, round_index: int) -> None:
        out.bribe_threshold[rows] = NEVER


@dataclass(frozen=True)
class BribableMediator(Strategy):
    """Votes with a briber whose bribe is at least `threshold`; with `report` it takes the bribe and proves it when
    the mechanism pays for the proof (whistleblowing's `mediators`: the briber's result is rejected and the mediator
    collects a reward from the slashed deposit)."""

    role = "mediator"
    name = "bribable"
    threshold: Annotated[int, Range(1, MAX_AMOUNT)] = 1
    # named in a strategy's label only when set (labels of runs without it stay as they were)
    report: bool = field(default=False, metadata={"label": "when_set"})

    def act(self, rows: np.ndarray, out: MediatorActions, round_index: int) -> None:
        out.bribe_threshold[rows] = self.threshold
        out.report[rows] = self.report


STRATEGIES: dict[str, dict[str, type[Strategy]]] = {}
for _cls in (
    HonestNode,
    CheatingNode,
    CopyingNode,
    WhitewashingNode,
    CheckingClient,
    NeverCheckingClient,
    HonestMediator,
    BribableMediator,
):
    STRATEGIES.setdefault(_cls.role, {})[_cls.name] = _cls
