"""Deviation and coalition gains from the honest profile, with confidence intervals over seeds.

Deviation gain of a behaviour for a role: a share of that role's agents (the deviators, the same rows in every run
of a seed) switch to the behaviour while everybody else keeps the profile; the gain is the deviators' mean utility
per round minus what the same agents earned in the profile run with the same seed (common random numbers). The
best deviation of a role is the library entry with the highest mean gain. Because the library is finite, the best
gain found is a *lower bound* on what a best response could gain; a learned best response (see
`experiments.analysis.library`) only ever raises it.

Coalition gain: the members of a coalition (agents of one or several roles) act together; their summed utility
change, divided by the number of members, is the gain per member.

Intervals: Student-t over the per-seed gains (each seed: new market, draws and deviators).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from experiments.analysis.library import ROLES, Behaviour, Coalition, pick_rows
from experiments.analysis.runner import Assignment, RunResult, Scenario, role_sizes, run
from mechanisms.config import require

DEVIATORS_STREAM, COALITION_STREAM = 7, 11  # seed-sequence keys for choosing rows (apart from the run's streams)


@dataclass(frozen=True)
class Estimate:
    """Mean over seeds with a two-sided Student-t interval (equal bounds when every seed agrees)."""

    mean: float
    lo: float
    hi: float
    per_seed: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float], confidence: float = 0.95) -> Estimate:
        x = np.asarray(samples, dtype=float)
        require(len(x) >= 2, "study.seeds", len(x), "at least 2 seeds (an interval needs two samples)")
        mean, sd = float(x.mean()), float(x.std(ddof=1))
        half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1)) * sd / np.sqrt(len(x))
        return cls(mean, mean - half, mean + half, tuple(float(v) for v in x))


@dataclass(frozen=True)
class Gain:
    """Utility gain per member and round over the honest profile (a lower bound on the best response's gain)."""

    kind: str  # "deviation" or "coalition"
    role: str  # the deviating role, or the coalition's roles joined by "+"
    name: str
    members: int  # deviators (or coalition members) per seed
    estimate: Estimate


@dataclass(frozen=True)
class SecurityRule:
    """Which gains must be non-positive for a configuration to count as secure.

    Clients' check rate is a commitment in the inspection game (a client that breaks it saves fees whenever nodes
    are honest: the verifier's dilemma), so by default unilateral client deviations are reported, not required."""

    roles: tuple[str, ...] = ("node", "mediator")
    coalitions: bool = True
    tolerance: float = 0.0  # a gain whose upper bound is at most this counts as non-positive

    def validate(self, path: str) -> None:
        require(set(self.roles) <= set(ROLES), f"{path}.roles", list(self.roles), f"roles from {ROLES}")

    def covers(self, gain: Gain) -> bool:
        return gain.role in self.roles if gain.kind == "deviation" else self.coalitions


@dataclass
class IncentiveStudy:
    """Gains of behaviours and coalitions in one scenario; the profile runs are made once per seed and shared."""

    scenario: Scenario
    seeds: Sequence[int]
    deviator_share: float = 0.25
    confidence: float = 0.95
    _baselines: dict[int, RunResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(0 < self.deviator_share <= 1, "study.deviator_share", self.deviator_share, "in (0, 1]")
        self.sizes = role_sizes(self.scenario)

    def baseline(self, seed: int) -> RunResult:
        if seed not in self._baselines:
            self._baselines[seed] = run(self.scenario, seed)
        return self._baselines[seed]

    def deviators(self, role: str, seed: int) -> np.ndarray:
        n = self.sizes[role]
        rng = np.random.default_rng([seed, DEVIATORS_STREAM, ROLES.index(role)])
        return pick_rows(n, max(1, round(self.deviator_share * n)), rng)

    def _gain(self, seed: int, assignments: Sequence[Assignment]) -> float:
        dev, base = run(self.scenario, seed, assignments), self.baseline(seed)
        diffs = [dev.utility[a.role][a.rows] - base.utility[a.role][a.rows] for a in assignments]
        return float(np.concatenate(diffs).mean())

    def deviation(self, behaviour: Behaviour) -> Gain:
        samples = [self._gain(s, [Assignment(self.deviators(behaviour.role, s), behaviour)]) for s in self.seeds]
        members = len(self.deviators(behaviour.role, self.seeds[0]))
        return Gain("deviation", behaviour.role, behaviour.name, members, Estimate.of(samples, self.confidence))

    def coalition_rows(self, coalition: Coalition, seed: int) -> list[Assignment]:
        out = []
        for role, member in coalition.members:
            rng = np.random.default_rng([seed, COALITION_STREAM, ROLES.index(role)])
            out.append(Assignment(pick_rows(self.sizes[role], member.size(self.sizes[role]), rng), member.behaviour))
        return out

    def coalition(self, coalition: Coalition) -> Gain:
        samples = [self._gain(s, self.coalition_rows(coalition, s)) for s in self.seeds]
        members = sum(len(a.rows) for a in self.coalition_rows(coalition, self.seeds[0]))
        roles = "+".join(role for role, _ in coalition.members)
        return Gain("coalition", roles, coalition.name, members, Estimate.of(samples, self.confidence))

    def gains(self, library: Mapping[str, Sequence[Behaviour]], coalitions: Iterable[Coalition] = ()) -> list[Gain]:
        """Every library behaviour (per role) and every coalition."""
        out = [self.deviation(b) for role in ROLES for b in library.get(role, ())]
        return out + [self.coalition(c) for c in coalitions]

    def profile_cost(self) -> dict[str, float | None]:
        """Cost metrics of the profile itself, averaged over seeds."""
        costs = [self.baseline(s).cost for s in self.seeds]
        return {
            k: (None if any(c[k] is None for c in costs) else float(np.mean([c[k] for c in costs]))) for k in costs[0]
        }


def best(gains: Iterable[Gain], kind: str = "deviation", role: str | None = None) -> Gain | None:
    """The entry with the highest mean gain among `kind` (and `role`), or None."""
    pool = [g for g in gains if g.kind == kind and (role is None or g.role == role)]
    return max(pool, key=lambda g: g.estimate.mean, default=None)


def security(gains: Sequence[Gain], rule: SecurityRule) -> dict[str, object]:
    """The worst covered gain by mean (`max_gain`, its interval, its name) and whether every covered gain is
    non-positive at the study's confidence (`secure`: no covered upper bound above the tolerance; the entry that
    decides it is `decisive`, by `violation` above the tolerance). `deviation_gain` = max(0, max_gain): zero where
    honesty is an equilibrium."""
    covered = [g for g in gains if rule.covers(g)]
    if not covered:
        return {
            "max_gain": 0.0,
            "max_gain_lo": 0.0,
            "max_gain_hi": 0.0,
            "worst": "",
            "secure": True,
            "decisive": "",
            "violation": 0.0,
            "deviation_gain": 0.0,
        }
    worst = max(covered, key=lambda g: g.estimate.mean)
    decisive = max(covered, key=lambda g: g.estimate.hi)
    return {
        "max_gain": worst.estimate.mean,
        "max_gain_lo": worst.estimate.lo,
        "max_gain_hi": worst.estimate.hi,
        "worst": f"{worst.role}: {worst.name}",
        "secure": bool(decisive.estimate.hi <= rule.tolerance),
        "decisive": f"{decisive.role}: {decisive.name}",
        "violation": max(0.0, decisive.estimate.hi - rule.tolerance),
        "deviation_gain": max(0.0, worst.estimate.mean),
    }


def gains_frame(gains: Iterable[Gain]) -> pd.DataFrame:
    """One row per deviation / coalition: gain per member and round with its interval (lower bounds)."""
    return pd.DataFrame(
        [
            {
                "kind": g.kind,
                "role": g.role,
                "name": g.name,
                "members": g.members,
                "gain": g.estimate.mean,
                "ci_lo": g.estimate.lo,
                "ci_hi": g.estimate.hi,
                "seeds": len(g.estimate.per_seed),
            }
            for g in gains
        ],
        columns=["kind", "role", "name", "members", "gain", "ci_lo", "ci_hi", "seeds"],
    )
