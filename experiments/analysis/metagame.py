"""The empirical meta-game: a strategy library per role, simulated profile by profile into payoff tables, and the
tables' equilibria by OpenSpiel's evolutionary tools (replicator dynamics, alpha-rank).

Each role is a population; a pure profile has every agent of a role play the same library strategy (index 0 of
each role is the honest profile's strategy). The payoff of a role in a profile is its agents' mean utility per
round (see `experiments.analysis.runner`), averaged over seeds. Mixed states are read multilinearly from the pure
profiles, as for any normal-form meta-game.

For the dynamics, each population's payoffs are divided by their range, so that `alpha` and the integration step
mean the same thing for every configuration. The honest profile's basin is the share of starting
states, drawn uniformly from the product of simplices, from which replicator dynamics end with at least
`1 - tolerance` of each `basin_roles` population on its honest strategy (by default the nodes: no cheating
survives).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from open_spiel.python.egt import alpharank, dynamics, utils

from experiments.analysis.library import ROLES, Behaviour, parse_library
from experiments.analysis.runner import Assignment, Scenario, role_sizes, run
from mechanisms.config import require, require_int


@dataclass(frozen=True)
class MetagameConfig:
    """`study.metagame`: strategies per role (first = the profile's own), seeds and the dynamics' settings."""

    strategies: dict[str, Any] = field(default_factory=dict)  # {role: [behaviour spec, ...]} (library format)
    seeds: tuple[int, ...] = (0, 1)
    rounds: int | None = None  # None: the study's
    basin_samples: int = 200
    basin_time: float = 40.0  # integration time of each replicator trajectory (normalized payoffs)
    dt: float = 0.1
    tolerance: float = 0.05
    basin_roles: tuple[str, ...] = ("node",)
    alpha: float = 20.0  # alpha-rank selection intensity (normalized payoffs)
    population: int = 50  # alpha-rank finite population size m
    portrait: dict[str, Any] = field(default_factory=lambda: {"node": [0, 1], "client": [0, 2]})  # 2 x 2 subgame

    def portrait_keep(self, table: PayoffTable) -> dict[str, list[int]]:
        """Strategy indices of the phase portrait's subgame: two per pictured role, the profile's for the rest."""
        keep = {r: [0] for r in table.roles}
        keep.update({r: list(v) for r, v in self.portrait.items() if r in keep})
        return keep

    def validate(self, path: str) -> None:
        self.behaviours(path)
        require(len(self.seeds) >= 1, f"{path}.seeds", self.seeds, "at least one seed")
        require_int(self.basin_samples, f"{path}.basin_samples", 1, 10**6)
        require(self.dt > 0 and self.basin_time >= self.dt, f"{path}.dt", self.dt, "0 < dt <= basin_time")
        require(0 < self.tolerance < 1, f"{path}.tolerance", self.tolerance, "in (0, 1)")
        require(set(self.basin_roles) <= set(ROLES), f"{path}.basin_roles", self.basin_roles, f"roles from {ROLES}")
        require(self.alpha > 0, f"{path}.alpha", self.alpha, "> 0")
        require_int(self.population, f"{path}.population", 2, 10**6)
        ok = (
            set(self.portrait) <= set(ROLES)
            and len(self.portrait) == 2
            and all(len(v) == 2 for v in self.portrait.values())
        )
        require(ok, f"{path}.portrait", self.portrait, "two roles with two strategy indices each")

    def behaviours(self, path: str = "study.metagame") -> dict[str, list[Behaviour]]:
        """Strategies of the roles that have any (the others keep the profile's actions)."""
        lib = parse_library(self.strategies, f"{path}.strategies")
        out = {role: b for role, b in lib.items() if b}
        require(bool(out), f"{path}.strategies", self.strategies, "strategies for at least one role")
        return out


@dataclass
class PayoffTable:
    """Mean payoff per agent and round of each role (population) in each pure profile, with standard errors."""

    roles: tuple[str, ...]
    labels: dict[str, list[str]]
    mean: np.ndarray  # (populations, k_0, k_1, ...)
    sem: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.mean.shape[1:]

    def normalized(self) -> np.ndarray:
        """Each population's payoffs divided by their range (max - min): the same selection intensity for every
        population and configuration. Replicator paths and alpha-rank only compare payoffs within a population, so
        this rescales time per population and leaves the rest points alone."""
        spread = np.array([np.ptp(self.mean[p]) for p in range(len(self.roles))])
        spread[spread == 0] = 1.0
        return self.mean / spread.reshape((-1,) + (1,) * len(self.shape))

    def frame(self) -> pd.DataFrame:
        """One row per pure profile: each role's strategy and payoff (+ standard error)."""
        rows = []
        for profile in itertools.product(*(range(k) for k in self.shape)):
            row: dict[str, Any] = {r: self.labels[r][i] for r, i in zip(self.roles, profile, strict=True)}
            for p, r in enumerate(self.roles):
                row[f"payoff_{r}"] = float(self.mean[(p, *profile)])
                row[f"sem_{r}"] = float(self.sem[(p, *profile)])
            rows.append(row)
        return pd.DataFrame(rows)

    def to_json(self) -> dict[str, Any]:
        return {"roles": list(self.roles), "labels": self.labels, "mean": self.mean.tolist(), "sem": self.sem.tolist()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PayoffTable:
        return cls(
            tuple(data["roles"]),
            {k: list(v) for k, v in data["labels"].items()},
            np.asarray(data["mean"]),
            np.asarray(data["sem"]),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json()) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> PayoffTable:
        return cls.from_json(json.loads(Path(path).read_text()))

    def subgame(self, keep: Mapping[str, Sequence[int]]) -> PayoffTable:
        """The table restricted to some strategies of some roles (roles cut to one strategy are dropped)."""
        index = tuple(list(keep.get(r, range(len(self.labels[r])))) for r in self.roles)
        mean, sem = self.mean, self.sem
        for axis, idx in enumerate(index):
            mean, sem = np.take(mean, idx, axis=axis + 1), np.take(sem, idx, axis=axis + 1)
        drop = [p for p, idx in enumerate(index) if len(idx) == 1]
        kept = [p for p in range(len(self.roles)) if p not in drop]
        mean = mean[kept].reshape((len(kept), *[len(index[p]) for p in kept]))
        sem = sem[kept].reshape(mean.shape)
        roles = tuple(self.roles[p] for p in kept)
        return PayoffTable(
            roles, {r: [self.labels[r][i] for i in index[self.roles.index(r)]] for r in roles}, mean, sem
        )


def payoff_table(
    scenario: Scenario, strategies: Mapping[str, Sequence[Behaviour]], seeds: Sequence[int]
) -> PayoffTable:
    """Simulate every pure profile of the library (all agents of a role play its strategy) for every seed."""
    roles = tuple(r for r in ROLES if strategies.get(r))
    sizes = role_sizes(scenario)
    shape = tuple(len(strategies[r]) for r in roles)
    samples = np.zeros((len(seeds), len(roles), *shape))
    for profile in itertools.product(*(range(k) for k in shape)):
        plays = [Assignment(np.arange(sizes[r]), strategies[r][i]) for r, i in zip(roles, profile, strict=True)]
        for s, seed in enumerate(seeds):
            utility = run(scenario, seed, plays).utility
            for p, r in enumerate(roles):
                samples[(s, p, *profile)] = utility[r].mean()
    sem = samples.std(axis=0, ddof=1) / np.sqrt(len(seeds)) if len(seeds) > 1 else np.zeros(samples.shape[1:])
    return PayoffTable(roles, {r: [b.name for b in strategies[r]] for r in roles}, samples.mean(axis=0), sem)


def alpha_rank(table: PayoffTable, alpha: float, population: int) -> pd.DataFrame:
    """Alpha-rank stationary mass of every pure profile (OpenSpiel), highest first."""
    payoffs = table.normalized()
    with np.errstate(over="ignore", invalid="ignore"):
        _, _, pi, _, num_strats = alpharank.compute(
            [payoffs[p] for p in range(len(table.roles))], m=population, alpha=alpha
        )
    pi = np.clip(pi, 0.0, None)  # the eigenvector's round-off can leave -1e-17
    pi = pi / pi.sum()
    rows = []
    for pid, mass in enumerate(pi):
        profile = utils.get_strat_profile_from_id(num_strats, pid)
        rows.append(
            {
                **{r: table.labels[r][int(i)] for r, i in zip(table.roles, profile, strict=True)},
                "profile": " / ".join(table.labels[r][int(i)] for r, i in zip(table.roles, profile, strict=True)),
                "mass": float(mass),
            }
        )
    return pd.DataFrame(rows).sort_values("mass", ascending=False, ignore_index=True)


def replicator_field(table: PayoffTable) -> dynamics.MultiPopulationDynamics:
    """OpenSpiel's multi-population replicator dynamics on the normalized table."""
    return dynamics.MultiPopulationDynamics(table.normalized(), dynamics.replicator)


def trajectory_end(
    field_: dynamics.MultiPopulationDynamics, start: np.ndarray, time: float, dt: float, shape: Sequence[int]
) -> np.ndarray:
    """Euler-integrate the dynamics from `start` (concatenated population states), staying on the simplices."""
    x = start.copy()
    cuts = np.cumsum(shape)[:-1]
    for _ in range(round(time / dt)):
        x = np.clip(x + dt * field_(x), 0.0, None)
        x = np.concatenate([p / p.sum() for p in np.split(x, cuts)])
    return x


@dataclass
class Basin:
    """Where replicator dynamics go from uniformly drawn starts."""

    share: float  # share of starts ending at the honest profile (basin_roles honest)
    samples: int
    ends: np.ndarray  # (samples, sum of k): end states
    attractors: pd.DataFrame  # per end profile (each population's most played strategy): share of starts, purity


def honest_basin(table: PayoffTable, config: MetagameConfig, seed: int = 0) -> Basin:
    """Sample starts from the product of simplices, run the replicator, classify the end states."""
    rng = np.random.default_rng([seed, 23])
    shape = table.shape
    field_ = replicator_field(table)
    ends = np.array(
        [
            trajectory_end(
                field_, np.concatenate([rng.dirichlet(np.ones(k)) for k in shape]), config.basin_time, config.dt, shape
            )
            for _ in range(config.basin_samples)
        ]
    )
    offsets = np.concatenate([[0], np.cumsum(shape)[:-1]])
    honest = np.ones(len(ends), dtype=bool)
    for p, r in enumerate(table.roles):
        if r in config.basin_roles:
            honest &= ends[:, offsets[p]] >= 1 - config.tolerance
    parts = [ends[:, o : o + k] for o, k in zip(offsets, shape, strict=True)]
    top = np.stack([x.argmax(axis=1) for x in parts], axis=1)  # each population's most played strategy
    keys, inverse = np.unique(top, axis=0, return_inverse=True)
    rows = []
    for i, key in enumerate(keys):
        ends_i = inverse.ravel() == i
        row: dict[str, Any] = {r: table.labels[r][int(key[p])] for p, r in enumerate(table.roles)}
        row |= {f"share_{r}": float(parts[p][ends_i, key[p]].mean()) for p, r in enumerate(table.roles)}
        rows.append(row | {"starts": float(ends_i.mean())})
    attractors = pd.DataFrame(rows).sort_values("starts", ascending=False, ignore_index=True)
    return Basin(float(honest.mean()), len(ends), ends, attractors)


def pure_equilibria(table: PayoffTable, slack: float = 0.0) -> list[tuple[str, ...]]:
    """Pure profiles where no population gains more than `slack` by switching strategy (on the table's means)."""
    out = []
    for profile in itertools.product(*(range(k) for k in table.shape)):
        stable = True
        for p in range(len(table.roles)):
            line = list(profile)
            line[p] = slice(None)
            if table.mean[(p, *line)].max() > table.mean[(p, *profile)] + slack:
                stable = False
                break
        if stable:
            out.append(tuple(table.labels[r][i] for r, i in zip(table.roles, profile, strict=True)))
    return out
