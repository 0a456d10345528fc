"""One mechanism configuration in, one row of incentive and cost metrics out: what every entry point ranks.

The `study` config section (configs/study/*.yaml) says how to measure: rounds, seeds, the share of deviators, the
strategy library and coalitions, the security rule, the meta-game, the client's value of a result and the price of
locked capital. `assess` runs the honest profile and every deviation and coalition on the same seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from experiments.analysis.cost import METRICS
from experiments.analysis.incentives import Gain, IncentiveStudy, SecurityRule, best, gains_frame, security
from experiments.analysis.learned import LearnedConfig, learned_entries
from experiments.analysis.library import ROLES, Behaviour, Coalition, parse_coalition, parse_library
from experiments.analysis.metagame import MetagameConfig
from experiments.analysis.runner import Scenario
from mechanisms.config import from_mapping, require, require_int

LEARNED = "learned"  # name prefix of learned entries (experiments.analysis.learned)


@dataclass(frozen=True)
class StudyConfig:
    """How to measure a configuration (the `study` section)."""

    rounds: int = 20
    seeds: tuple[int, ...] = (0, 1, 2)
    deviator_share: float = 0.25
    confidence: float = 0.95
    value_multiple: float = 1.0  # a client's value of a correct result, x its job cost
    capital_rate: float = 1e-4  # cost of one unit of value locked for one block
    library: dict[str, Any] = field(default_factory=dict)  # {role: [behaviour spec, ...]}
    coalitions: tuple[dict[str, Any], ...] = ()
    security: SecurityRule = field(default_factory=SecurityRule)
    metagame: MetagameConfig = field(default_factory=MetagameConfig)
    learned: LearnedConfig = field(default_factory=LearnedConfig)  # RLlib best responses and trained coalitions

    def validate(self, path: str) -> None:
        require_int(self.rounds, f"{path}.rounds", 1, 10**6)
        require(
            len(self.seeds) >= 2 and len(set(self.seeds)) == len(self.seeds),
            f"{path}.seeds",
            self.seeds,
            "at least two distinct seeds (intervals need two samples)",
        )
        require(0 < self.deviator_share <= 1, f"{path}.deviator_share", self.deviator_share, "in (0, 1]")
        require(0 < self.confidence < 1, f"{path}.confidence", self.confidence, "in (0, 1)")
        self.behaviours(path)
        self.parsed_coalitions(path)

    def behaviours(self, path: str = "study") -> dict[str, list[Behaviour]]:
        return parse_library(self.library, f"{path}.library")

    def parsed_coalitions(self, path: str = "study") -> list[Coalition]:
        return [parse_coalition(c, f"{path}.coalitions[{i}]") for i, c in enumerate(self.coalitions)]


def parse_study(cfg: Mapping[str, Any] | None) -> StudyConfig:
    return from_mapping(StudyConfig, cfg, "study")


def make_scenario(cfg: Mapping[str, Any], study: StudyConfig, name: str = "") -> Scenario:
    """The scenario of a simulate-style config (market, mechanism, agents = the honest profile)."""
    return Scenario(
        cfg.get("market") or {},
        cfg.get("mechanism") or {},
        cfg.get("agents") or {},
        study.rounds,
        study.value_multiple,
        study.capital_rate,
        name,
    )


@dataclass
class Assessment:
    name: str
    gains: list[Gain]
    security: dict[str, Any]
    cost: dict[str, float | None]

    def row(self) -> dict[str, Any]:
        """The flat row of the ranked table: security first, then cost, then the best deviation of each role."""
        out: dict[str, Any] = {"mechanism": self.name, **self.security, **{k: self.cost.get(k) for k in METRICS}}
        for role in ROLES:
            g = best(self.gains, "deviation", role)
            out[f"best_{role}_deviation"] = g.name if g else ""
            out[f"{role}_gain"] = g.estimate.mean if g else None
        g = best(self.gains, "coalition")
        out["best_coalition"] = g.name if g else ""
        out["coalition_gain"] = g.estimate.mean if g else None
        learned = [g for g in self.gains if g.name.startswith(LEARNED)]
        for role in ROLES:  # learned vs scripted: the learned entries' own columns, when there are any
            g = best(learned, "deviation", role)
            if g is not None:
                out[f"learned_{role}_gain"], out[f"learned_{role}_gain_lo"] = g.estimate.mean, g.estimate.lo
        g = best(learned, "coalition")
        if g is not None:
            out["learned_coalition_gain"] = g.estimate.mean
        return out

    def gains_table(self) -> pd.DataFrame:
        return gains_frame(self.gains).assign(mechanism=self.name)


def assess(
    scenario: Scenario, study: StudyConfig, extra: Sequence[Behaviour] = (), extra_coalitions: Sequence[Coalition] = ()
) -> Assessment:
    """Deviation gains (library + `extra`, e.g. learned best responses), coalition gains, security and costs.
    With `study.learned.enabled`, best responses and coalitions are trained first (RLlib) and join `extra`."""
    inc = IncentiveStudy(scenario, study.seeds, study.deviator_share, study.confidence)
    library = study.behaviours()
    trained, trained_coalitions = learned_entries(scenario, study.learned, study.seeds, study.deviator_share)
    extra, extra_coalitions = [*extra, *trained], [*extra_coalitions, *trained_coalitions]
    for b in extra:
        library[b.role].append(b)
    gains = inc.gains(library, [*study.parsed_coalitions(), *extra_coalitions])
    return Assessment(scenario.name, gains, security(gains, study.security), inc.profile_cost())


def rank(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Secure configurations first, cheapest first; then the insecure ones, least exploitable (smallest worst
    gain) first, ties by cost."""
    df = pd.DataFrame(list(rows))
    secure = df["secure"].astype(bool)
    key = np.where(secure, df["cost_per_correct_result"].astype(float), df["max_gain"].astype(float))
    df = df.assign(_key=key, _cost=df["cost_per_correct_result"].astype(float))
    df = df.sort_values(
        ["secure", "_key", "_cost"], ascending=[False, True, True], ignore_index=True, na_position="last"
    ).drop(columns=["_key", "_cost"])
    df.insert(0, "rank", range(1, len(df) + 1))
    return df
