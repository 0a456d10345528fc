"""The strategy library: behaviours that take over some agents' actions, alone (a deviation) or together (a coalition).

A behaviour overwrites the rows it is given in the round's `Actions` after the frozen population has acted, so the
same object serves as a unilateral deviation (a few rows), a coalition member (rows of several roles) or a
meta-game strategy (every row of a role). Scripted behaviours wrap a strategy of `agents.scripted` plus the
collusion flags no scripted strategy sets (collude, accuse, report, whitewash).

Hook for learned policies: anything with `role`, `name` and `act(actions, rows, round_index, engine)` is a
`Behaviour`; an optional `observe(result, engine)` is called after every round (with the round's `RoundResult`), so
a policy can keep the same observation features as `marl.env.MarketEnv`. A trained RLlib best response (e.g. an
`marl.rllib.LearnedPolicy` restored from a checkpoint of `experiments.train` with the deviators as focal agents)
becomes one more library entry: build its observations for `rows` in `act`, write its choices into those rows of
`actions`, and pass it in `extra` of `experiments.analysis.assess.assess` (or as a coalition member, or a meta-game
strategy); it is then measured exactly like the scripted ones, on the same seeds and deviator rows. A coalition
trained with one shared policy is a `Coalition` whose members are behaviours calling that policy
(`extra_coalitions` of `assess`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from agents.scripted import STRATEGIES, Strategy
from mechanisms.actions import Actions
from mechanisms.config import ConfigError, from_mapping, require
from sim.engine import BatchEngine, RoundResult
from sim.records import strategy_label

ROLES = ("node", "client", "mediator")
ACTIONS_OF = {"node": "nodes", "client": "clients", "mediator": "mediators"}
#: Boolean action flags a behaviour may set, per role (see mechanisms.actions).
FLAGS = {"node": ("collude", "report", "whitewash"), "client": ("accuse",), "mediator": ("collude", "report")}


class Behaviour(Protocol):
    """Writes the actions of `rows` (indices within the role) for one round."""

    role: str
    name: str

    def act(self, actions: Actions, rows: np.ndarray, round_index: int, engine: BatchEngine) -> None: ...


class Observer(Protocol):
    """Optional second half of a stateful behaviour: sees every round's outcome after the engine settles it."""

    def observe(self, result: RoundResult, engine: BatchEngine) -> None: ...


@dataclass(frozen=True)
class ScriptedBehaviour:
    """A scripted strategy (or the profile's own action when `strategy` is None) plus collusion flags."""

    role: str
    strategy: Strategy | None
    flags: tuple[tuple[str, bool], ...] = ()
    label: str | None = None

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        parts = [strategy_label(self.strategy)] if self.strategy is not None else []
        parts += [flag if on else f"no_{flag}" for flag, on in self.flags]
        return "+".join(parts) or "profile"

    def act(self, actions: Actions, rows: np.ndarray, round_index: int, engine: BatchEngine) -> None:
        out = getattr(actions, ACTIONS_OF[self.role])
        if self.strategy is not None:
            self.strategy.act(rows, out, round_index)
        for flag, on in self.flags:
            getattr(out, flag)[rows] = on


def parse_behaviour(spec: Mapping[str, Any], role: str, path: str) -> ScriptedBehaviour:
    """`{strategy: cheater, rate: 1.0, collude: true, name: ...}`; without `strategy` the profile's action stays."""
    require(role in ROLES, f"{path}.role", role, f"one of {ROLES}")
    require(isinstance(spec, Mapping), path, spec, "a mapping like {strategy: cheater, rate: 1.0}")
    entry = dict(spec)
    label = entry.pop("name", None)
    flags = tuple((f, entry.pop(f)) for f in FLAGS[role] if f in entry)
    for flag, on in flags:
        require(isinstance(on, bool), f"{path}.{flag}", on, "true or false")
    strategy = None
    name = entry.pop("strategy", None)
    if name is not None:
        known = STRATEGIES[role]
        require(name in known, f"{path}.strategy", name, f"one of {sorted(known)}")
        strategy = from_mapping(known[name], entry, path)
    elif entry:
        raise ConfigError(f"{path}: unknown field(s) {sorted(entry)}; allowed: strategy, name, {list(FLAGS[role])}")
    return ScriptedBehaviour(role, strategy, flags, label)


def parse_library(specs: Mapping[str, Sequence[Mapping[str, Any]]] | None, path: str) -> dict[str, list[Behaviour]]:
    """`{node: [spec, ...], client: [...], mediator: [...]}` -> behaviours per role (missing roles: none)."""
    specs = specs or {}
    unknown = sorted(set(specs) - set(ROLES))
    if unknown:
        raise ConfigError(f"{path}: unknown role(s) {unknown}; allowed: {list(ROLES)}")
    return {
        role: [parse_behaviour(s, role, f"{path}.{role}[{i}]") for i, s in enumerate(specs.get(role) or [])]
        for role in ROLES
    }


@dataclass(frozen=True)
class Member:
    """A coalition's agents of one role: `count` agents, or `share` of the role (at least one)."""

    behaviour: Behaviour
    share: float | None = None
    count: int | None = None

    def size(self, n: int) -> int:
        k = self.count if self.count is not None else max(1, round((self.share or 0.0) * n))
        return min(int(k), n)


@dataclass(frozen=True)
class Coalition:
    """Agents of one or more roles acting together; their gains are summed and reported per member."""

    name: str
    members: tuple[tuple[str, Member], ...]


def parse_coalition(spec: Mapping[str, Any], path: str) -> Coalition:
    """`{name: ..., node: {share: 0.5, strategy: cheater, collude: true}, mediator: {count: 1, collude: true}}`."""
    require(isinstance(spec, Mapping) and "name" in spec, path, spec, "a mapping with a name and role members")
    members = []
    for role, member in spec.items():
        if role == "name":
            continue
        require(role in ROLES, f"{path}.{role}", role, f"a role: one of {ROLES}")
        member = dict(member)
        share, count = member.pop("share", None), member.pop("count", None)
        require(
            (share is None) != (count is None),
            f"{path}.{role}",
            {"share": share, "count": count},
            "exactly one of share (fraction of the role) or count",
        )
        if share is not None:
            require(isinstance(share, (int, float)) and 0 < share <= 1, f"{path}.{role}.share", share, "in (0, 1]")
        if count is not None:
            require(isinstance(count, int) and count >= 1, f"{path}.{role}.count", count, "an integer >= 1")
        members.append((role, Member(parse_behaviour(member, role, f"{path}.{role}"), share, count)))
    require(bool(members), path, spec, "at least one role member")
    return Coalition(str(spec["name"]), tuple(members))


def pick_rows(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct rows of n, sorted (the same for a given generator state: common random numbers across runs)."""
    return np.sort(rng.choice(n, size=min(k, n), replace=False))
