"""The mechanism interface: typed configs registered by name, lifecycle hooks on batches of deals, composition.

A mechanism is a set of hooks the deal lifecycle calls in a fixed order:

1. ``set_terms``        at agreement: escrow amounts, fee, deadlines, worst-case exposure per party;
2. ``choose_checks``    which judged results are sent to mediation (the check policy);
3. ``select_mediators`` for checked deals: who mediates (uses the deal's pre-drawn uniforms);
4. ``judge``            the verdict of a mediation, given each mediator's behaviour;
5. ``settle``           the transfers of every step of every deal, given its final state.

Hooks see a whole round of deals as arrays (a batch of one in the live stack). A stack applies its enabled
mechanisms in order; switching one off (``enabled: false``) gives the counterfactual without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mechanisms.config import ConfigError, from_mapping, require
from mechanisms.deals import DealBatch
from mechanisms.transfers import TransferBuilder, Transfers


@dataclass(frozen=True)
class MarketFacts:
    """What a mechanism may know of the market when validating its config (mechanisms never import sim)."""

    n_mediators: int
    max_compute_cost: int
    max_job_cost: int


class Mechanism:
    """Base class: every hook is a no-op, so a mechanism overrides only what it changes."""

    name: ClassVar[str]
    Config: ClassVar[type]
    #: uniforms per deal this mechanism consumes (the engine draws them up front with the round's other draws)
    draws_per_deal: ClassVar[int] = 0

    def __init__(self, config: Any) -> None:
        self.config = config
        self.draw_offset = 0  # first column of this mechanism's uniforms in DealBatch.extra["u"]

    def validate(self, facts: MarketFacts, path: str) -> None:
        """Cross-check the config against the market; raise ConfigError naming the field."""

    def set_terms(self, deals: DealBatch) -> None:
        """Fill or adjust the terms columns."""

    def choose_checks(self, deals: DealBatch) -> None:
        """Set `deals.checked` among `deals.judged`."""

    def select_mediators(self, deals: DealBatch) -> None:
        """Choose mediators for deals where `deals.checked`."""

    def judge(self, deals: DealBatch) -> None:
        """Set `deals.verdict_accept` for mediated deals."""

    def settle(self, deals: DealBatch, out: TransferBuilder) -> None:
        """Append this mechanism's transfers for every deal, given `deals.state`."""

    def uniforms(self, deals: DealBatch, k: int = 0) -> np.ndarray:
        """This mechanism's k-th pre-drawn uniform per deal."""
        return deals.extra["u"][:, self.draw_offset + k]


_REGISTRY: dict[str, type[Mechanism]] = {}


def register(cls: type[Mechanism]) -> type[Mechanism]:
    """Class decorator: make a mechanism available by its `name` in configs."""
    if cls.name in _REGISTRY:
        raise ValueError(f"mechanism {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[Mechanism]]:
    return dict(_REGISTRY)


class MechanismStack:
    """An ordered composition of mechanisms; disabled entries are kept (for reporting) but never called."""

    def __init__(self, mechanisms: Sequence[Mechanism], enabled: Sequence[bool]) -> None:
        self.mechanisms = list(mechanisms)
        self.enabled = list(enabled)
        offset = 0
        for m in self.active:
            m.draw_offset = offset
            offset += m.draws_per_deal
        self.draws_per_deal = offset

    @classmethod
    def from_config(cls, entries: Iterable[Mapping[str, Any]], path: str = "mechanism.stack") -> MechanismStack:
        """Build from `[{name: ..., enabled: true, <params>}, ...]`."""
        mechanisms, enabled = [], []
        for i, entry in enumerate(entries):
            entry = dict(entry)
            where = f"{path}[{i}]"
            name = entry.pop("name", None)
            require(name in _REGISTRY, f"{where}.name", name, f"one of {sorted(_REGISTRY)}")
            on = entry.pop("enabled", True)
            require(isinstance(on, bool), f"{where}.enabled", on, "true or false")
            mech_cls = _REGISTRY[name]
            mechanisms.append(mech_cls(from_mapping(mech_cls.Config, entry, where)))
            enabled.append(on)
        if not mechanisms:
            raise ConfigError(f"{path}=[] is invalid: allowed a non-empty list of mechanisms")
        return cls(mechanisms, enabled)

    @property
    def active(self) -> list[Mechanism]:
        return [m for m, on in zip(self.mechanisms, self.enabled, strict=True) if on]

    def validate(self, facts: MarketFacts, path: str = "mechanism.stack") -> None:
        for i, m in enumerate(self.mechanisms):
            if self.enabled[i]:
                m.validate(facts, f"{path}[{i}]")

    def set_terms(self, deals: DealBatch) -> None:
        for m in self.active:
            m.set_terms(deals)

    def choose_checks(self, deals: DealBatch) -> None:
        for m in self.active:
            m.choose_checks(deals)

    def select_mediators(self, deals: DealBatch) -> None:
        for m in self.active:
            m.select_mediators(deals)

    def judge(self, deals: DealBatch) -> None:
        for m in self.active:
            m.judge(deals)

    def settle(self, deals: DealBatch) -> Transfers:
        out = TransferBuilder(deals.deal_id)
        for m in self.active:
            m.settle(deals, out)
        return out.build()
