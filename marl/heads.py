"""Action heads: how a learning agent's discrete choices become fields of its role's action arrays.

Each role has an ordered list of heads (`env.actions.<role>`); a head is one discrete choice that sets one field of
the role's action arrays (`mechanisms.actions`) to one of a few values (`HEADS`). One head gives a `Discrete`
space, several a `MultiDiscrete`. Writing into the very arrays the scripted strategies fill makes a learned policy
and a strategy interchangeable row by row (docs/architecture.md, "Strategies and policies share one interface"). A
decision the engine gains later (a cartel vote, an accusation) is one more `HEADS` entry naming its
`mechanisms.actions` field; heads whose field the engine's actions lack are refused at construction.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium
import numpy as np

from mechanisms.actions import Actions
from mechanisms.config import require
from mechanisms.deals import NEVER

if TYPE_CHECKING:
    from marl.config import EnvConfig

ROLES = ("node", "client", "mediator")
#: Attribute of `Actions` holding each role's arrays (also the population's group name).
ROLE_GROUP = {"node": "nodes", "client": "clients", "mediator": "mediators"}


@dataclass(frozen=True)
class Head:
    """One discrete decision: choice i sets `Actions.<group>.<field>` of the agent's row to `values[i]`."""

    name: str
    field: str
    values: np.ndarray

    @property
    def n(self) -> int:
        return len(self.values)

    def write(self, group: Any, rows: np.ndarray, choice: np.ndarray) -> None:
        getattr(group, self.field)[rows] = self.values[choice]


def _binary(dtype: type) -> Callable[[EnvConfig], np.ndarray]:
    return lambda cfg: np.array([0, 1], dtype=dtype)


#: role -> head name -> (field of the role's actions, choice values from the env config). Choice 0 is always the
#: honest / passive behaviour.
HEADS: dict[str, dict[str, tuple[str, Callable[[EnvConfig], np.ndarray]]]] = {
    "node": {
        "cheat": ("cheat_rate", _binary(np.float64)),  # post a fake result on this round's job
        "bribe": ("bribe", lambda cfg: np.asarray(cfg.bribe_levels, dtype=np.int64)),  # offered if checked
        "collude": ("collude", _binary(bool)),  # a fake result is the cartel's shared one
        "whitewash": ("whitewash", _binary(bool)),  # start over under a fresh identity
        "report": ("report", _binary(bool)),  # prove the cartel's fake it posted (whistleblowing)
    },
    "client": {
        "check": ("check_rate", _binary(np.float64)),  # send this round's result to mediation
        "accuse": ("accuse", _binary(bool)),  # ask colluding mediators to reject a correct result
    },
    "mediator": {
        # 0 = vote honestly (never take a bribe); i >= 1: take any bribe >= threshold_levels[i - 1]
        "vote": ("bribe_threshold", lambda cfg: np.array([NEVER, *cfg.threshold_levels], dtype=np.int64)),
        "collude": ("collude", _binary(bool)),  # vote with the cartel
        "report": ("report", _binary(bool)),  # prove a bribe it took (whistleblowing)
    },
}


def role_heads(role: str, cfg: EnvConfig) -> list[Head]:
    """The role's heads in the configured order; a head whose field `Actions` lacks is a config error."""
    group_cls = typing.get_type_hints(Actions)[ROLE_GROUP[role]]
    fields = {f.name for f in dataclasses.fields(group_cls)}
    heads = []
    for i, name in enumerate(getattr(cfg.actions, role)):
        field_name, values = HEADS[role][name]
        require(
            field_name in fields,
            f"env.actions.{role}[{i}]",
            name,
            f"a head whose field the engine supports (mechanisms.actions has no `{field_name}` yet)",
        )
        heads.append(Head(name, field_name, values(cfg)))
    return heads


def space_of(heads: list[Head]) -> gymnasium.Space:
    """`Discrete` for one head, `MultiDiscrete` (one entry per head, in order) for several."""
    if len(heads) == 1:
        return gymnasium.spaces.Discrete(heads[0].n)
    return gymnasium.spaces.MultiDiscrete([h.n for h in heads])
