"""What every reproduced game shares: its preset (configs/reproduce/<game>.yaml), runs of the twin built from it,
per-job profits, and the result rows the README table is made of."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from experiments.reproduction.estimate import Estimate
from mechanisms.actions import Actions
from mechanisms.config import ConfigError
from sim.engine import RoundResult
from twin.build import Components, build

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PRESETS = CONFIGS / "reproduce"
SIM_KEYS = ("seed", "market", "mechanism", "agents")


@dataclass(frozen=True)
class Result:
    """One reproduced claim: the closed form from the paper's model and the twin's measurement."""

    game: str
    paper: str
    claim: str
    closed_form: float
    measured: Estimate
    tolerance: float | None = None  # for a learning process that approaches the closed form with a known bias
    # for a qualitative claim (a learner discovers the best response): the interval must lie wholly on the closed
    # form's side of this value
    side: float | None = None

    @property
    def agrees(self) -> bool:
        """The interval covers the closed form (with a tolerance: the value lies within it of the form; with a side:
        the interval lies wholly on the form's side of it)."""
        if self.side is not None:
            return self.measured.lo > self.side if self.closed_form > self.side else self.measured.hi < self.side
        if self.tolerance is not None:
            return abs(self.measured.value - self.closed_form) <= self.tolerance
        return self.measured.covers(self.closed_form)


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base`, recursively for mappings."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def load(game: str, small: bool = False) -> dict[str, Any]:
    """The game's preset; `small` applies its `small:` section (the sizes the tests run)."""
    path = PRESETS / f"{game}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PRESETS.glob("*.yaml"))
        raise ConfigError(f"game={game!r} is invalid: allowed one of {known}")
    preset = yaml.safe_load(path.read_text())
    small_part = preset.pop("small", {}) or {}
    if small:
        preset = merge(preset, small_part)
    market_preset = preset.pop("market_preset", None)
    if market_preset is not None:
        base = yaml.safe_load((CONFIGS / "market" / f"{market_preset}.yaml").read_text())
        preset["market"] = merge(base, preset.get("market") or {})
    return preset


def sim_config(preset: Mapping[str, Any], seed: int, **sections: Any) -> dict[str, Any]:
    """The twin's config: the preset's market, mechanism and agents, overridden per section by `sections`."""
    cfg = {k: copy.deepcopy(preset[k]) for k in SIM_KEYS if k in preset}
    cfg["seed"] = seed
    return merge(cfg, sections)


Actor = Callable[[Actions, int], None]


def run(
    cfg: Mapping[str, Any],
    rounds: int,
    act: Actor | None = None,
    observe: Callable[[RoundResult, Components], None] | None = None,
) -> Components:
    """Build the twin from `cfg` and play `rounds` rounds; `act` edits each round's actions before it is played,
    `observe` sees each settled round."""
    sim = build(cfg)
    for i in range(rounds):
        actions = sim.population.actions(i)
        if act is not None:
            act(actions, i)
        result = sim.engine.step(actions)
        if observe is not None:
            observe(result, sim)
    return sim


class ProfitLog:
    """Per-deal profit of the deal's node (or client): its change of balance + escrow over the round (in the presets
    a node gets at most one job and a client buys one job per round), with the party's index within its role."""

    def __init__(self, role: str = "node") -> None:
        self.role = role
        self.wealth: np.ndarray | None = None
        self.node: list[np.ndarray] = []
        self.profit: list[np.ndarray] = []
        self.rounds: list[RoundResult] = []

    def __call__(self, result: RoundResult, sim: Components) -> None:
        ledger = sim.engine.ledger
        now = ledger.balance + ledger.escrow
        # before the first round: the initial balances
        before = sim.market.facts.initial_balances() if self.wealth is None else self.wealth
        party = result.deals.node if self.role == "node" else result.deals.client
        self.node.append(party - (sim.market.facts.first_node if self.role == "node" else 0))
        self.profit.append((now - before)[party])
        self.rounds.append(result)
        self.wealth = now.copy()

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(party index, profit) over every logged deal."""
        return np.concatenate(self.node), np.concatenate(self.profit)
