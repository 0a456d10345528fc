"""Run one strategy profile of a mechanism configuration and measure every agent's utility and the run's costs.

The frozen population acts first each round, then each `Assignment` overwrites its rows (deviators, coalition
members, a whole role in a meta-game profile). Runs with the same seed share the market and every pre-drawn
uniform (draws do not depend on actions), so a deviation and the honest profile are compared on common random
numbers: the paired difference removes the luck both runs share.

Utility per agent is the change of its wealth (balance + escrow) over the run, per round. A client also values
each job that delivered a correct result at `value_multiple` x the job's cost: the ledger sees what a client pays,
not what a fake result costs it. Stakers and pools are not players here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from experiments.analysis.cost import CostMeter, correct_per_job
from experiments.analysis.library import Behaviour
from mechanisms.config import require, require_int
from sim.market import Market
from twin.build import build, parse_market


@dataclass(frozen=True)
class Scenario:
    """A mechanism configuration to analyse: market, mechanism stack, the profile everybody plays (`agents`)."""

    market: Mapping[str, Any]
    mechanism: Mapping[str, Any]
    agents: Mapping[str, Any]
    rounds: int = 20
    value_multiple: float = 1.0
    capital_rate: float = 1e-4
    name: str = ""

    def __post_init__(self) -> None:
        require_int(self.rounds, "study.rounds", 1, 10**6)
        require(self.value_multiple >= 0, "study.value_multiple", self.value_multiple, "a number >= 0")
        require(self.capital_rate >= 0, "study.capital_rate", self.capital_rate, "a number >= 0")

    def config(self, seed: int) -> dict[str, Any]:
        """The simulate-style config mapping of one run."""
        return {"seed": seed, "market": self.market, "mechanism": self.mechanism, "agents": self.agents}

    def with_value(self, path: str, value: Any) -> Scenario:
        """A copy with one dotted field of market / mechanism / agents set (list indices as numbers), e.g.
        `agents.clients.0.q` or `mechanism.lilypad_v2.results_multiplier_bps`."""
        section, *keys = path.split(".")
        require(
            section in ("market", "mechanism", "agents") and keys,
            "path",
            path,
            "market.<...>, mechanism.<...> or agents.<...>",
        )
        tree = copy.deepcopy(dict(getattr(self, section)))
        node: Any = tree
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value
        return replace(self, **{section: tree})


@dataclass(frozen=True)
class Assignment:
    """`behaviour` plays the agents `rows` (indices within its role)."""

    rows: np.ndarray
    behaviour: Behaviour

    @property
    def role(self) -> str:
        return self.behaviour.role


@dataclass
class RunResult:
    """Utility per agent and round, per role (rows within the role), and the run's cost metrics."""

    utility: dict[str, np.ndarray]
    cost: dict[str, float | None]
    sizes: dict[str, int] = field(default_factory=dict)


def role_slices(market: Market) -> dict[str, slice]:
    f = market.facts
    return {
        "client": slice(0, f.first_node),
        "node": slice(f.first_node, f.first_mediator),
        "mediator": slice(f.first_mediator, f.first_staker),
    }


def role_sizes(scenario: Scenario) -> dict[str, int]:
    """Agents per role of the scenario's market (validated)."""
    m = parse_market(scenario.config(0))
    return {"client": m.n_clients, "node": m.n_nodes, "mediator": m.n_mediators}


def run(scenario: Scenario, seed: int, assignments: Sequence[Assignment] = ()) -> RunResult:
    """Simulate `scenario.rounds` rounds of the profile: population actions, then the assignments' overrides."""
    sim = build(scenario.config(seed))
    engine, market = sim.engine, sim.market
    ledger = engine.ledger
    wealth = ledger.balance + ledger.escrow
    start = wealth.copy()
    value = np.zeros(market.facts.n_accounts)
    meter = CostMeter(market, scenario.capital_rate)
    for i in range(scenario.rounds):
        actions = sim.population.actions(i)
        for a in assignments:
            a.behaviour.act(actions, a.rows, i, engine)
        standing = int(ledger.escrow.sum())  # between rounds only stakes stay in escrow
        result = engine.step(actions)
        for a in assignments:  # stateful behaviours (learned policies) update their observations
            observe = getattr(a.behaviour, "observe", None)
            if observe is not None:
                observe(result, engine)
        engine.events.drain()  # nobody reads the log here; keep memory flat
        after = ledger.balance + ledger.escrow
        meter.update(result, wealth, after, standing)
        wealth = after
        d = result.deals
        job, delivered = correct_per_job(d)
        first = np.unique(job, return_index=True)[1]  # one deal per job: its client and job cost
        np.add.at(value, d.client[first][delivered], scenario.value_multiple * d.job_cost[first][delivered])
    total = (wealth - start) + value
    slices = role_slices(market)
    utility = {role: total[s] / scenario.rounds for role, s in slices.items()}
    return RunResult(utility, meter.summary(), {role: s.stop - s.start for role, s in slices.items()})
