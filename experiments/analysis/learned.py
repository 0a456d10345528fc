"""Learned deviations: RLlib best responses and trained coalitions as entries of the strategy library.

A best response of a role is trained with `experiments.train` (PPO by default): the deviators (the study's
deviator rows of its first seed) are the env's focal agents and everybody else plays the honest profile, i.e. the
frozen honest population. The trained module then becomes a `LearnedBehaviour`, a library entry that rebuilds the
env's observations for its rows from the engine's rounds (`marl.episode.record_round` and
`marl.observations.observation_matrix`, the very functions `MarketEnv` uses) and samples its choices with numpy.
`assess` measures it exactly like the scripted deviations: the same seeds, deviator rows and honest baseline, a
Student-t interval over seeds. A learned gain is a
lower bound too (training finds *a* good response, not provably the best one).

A learned coalition: k focal agents (one or several roles; one module per role) trained with `env.shared_reward`
(every member receives the coalition's summed reward / k), measured as a `Coalition` whose members call the trained
modules; its gain is per member.

Ray: training uses the running Ray session or starts a local one (`ray.*` of the train config); RLlib and torch are
imported only when something is trained.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from experiments.analysis.incentives import COALITION_STREAM, DEVIATORS_STREAM
from experiments.analysis.library import ROLES, Coalition, Member, pick_rows
from experiments.analysis.runner import Scenario, role_sizes
from marl.env import MarketEnv
from marl.episode import Episode, record_round
from marl.heads import ROLE_GROUP
from marl.observations import observation_matrix
from mechanisms.actions import Actions
from mechanisms.config import require, require_int
from sim.engine import BatchEngine, RoundResult

TRAIN_YAML = Path(__file__).resolve().parents[2] / "configs" / "train.yaml"


@dataclass(frozen=True)
class LearnedConfig:
    """`study.learned`: which learned deviations `assess` trains and measures (off by default: it needs RLlib)."""

    enabled: bool = False
    roles: tuple[str, ...] = ("node",)  # one best response per role (deviators = the study's deviator share)
    # trained coalitions: {name: ..., <role>: count, ...}; e.g. {name: learned 2-node coalition, node: 2}
    coalitions: tuple[dict[str, Any], ...] = ()
    iterations: int = 15  # PPO iterations per training
    seed: int = 0  # training seed (market, draws and RLlib)
    explore: bool = True  # sample the policy's actions when measured (false: its most likely action)
    env: dict[str, Any] = field(default_factory=dict)  # overrides of train.yaml's env section (rounds = study's)
    algo: dict[str, Any] = field(default_factory=dict)  # overrides of train.yaml's algo section (mapping: role)
    run_dir: str | None = None  # keep the trainings here (null: a temporary directory)

    def validate(self, path: str) -> None:
        require(isinstance(self.enabled, bool), f"{path}.enabled", self.enabled, "true or false")
        require(set(self.roles) <= set(ROLES), f"{path}.roles", list(self.roles), f"roles from {ROLES}")
        require_int(self.iterations, f"{path}.iterations", 1, 10**6)
        for i, spec in enumerate(self.coalitions):
            counts = {k: v for k, v in spec.items() if k != "name"}
            require(
                "name" in spec and counts and set(counts) <= set(ROLES),
                f"{path}.coalitions[{i}]",
                spec,
                "{name: ..., <role>: count, ...} with roles from " + str(ROLES),
            )
            for role, k in counts.items():
                require_int(k, f"{path}.coalitions[{i}].{role}", 1, 10**7)


class LearnedBehaviour:
    """A trained RLlib module playing `rows` of `role`, with the observations `MarketEnv` would have given them."""

    def __init__(self, role: str, name: str, module: Any, env: MarketEnv, seed: int = 0, explore: bool = True) -> None:
        from marl.rllib import split_logits

        self.role, self.name, self.module, self.cfg = role, name, module, env.cfg
        self.heads = env.heads[role]
        agent = next(a for a in env.possible_agents if env.role_of[a] == role)  # the env of a training with `role`
        self.widths = split_logits(env.action_space(agent))
        self.seed, self.explore = seed, explore
        self._ep: Episode | None = None
        self._rng: np.random.Generator | None = None
        self._first: dict[str, int] = {}

    def _start(self, rows: np.ndarray, engine: BatchEngine) -> None:
        market = engine.market
        n = market.facts.first_mediator + market.config.n_mediators
        wealth = engine.ledger.balance[:n] + engine.ledger.escrow[:n]
        self._ep = Episode.start(0, engine, None, wealth)
        self._first = {"client": 0, "node": market.facts.first_node, "mediator": market.facts.first_mediator}
        # deterministic per run: the rows differ between seeds (common random numbers across repeated assessments)
        self._rng = np.random.default_rng([self.seed, ROLES.index(self.role), *(int(r) for r in rows)])

    def act(self, actions: Actions, rows: np.ndarray, round_index: int, engine: BatchEngine) -> None:
        import torch

        from marl.rllib import sample_categorical

        if round_index == 0 or self._ep is None or self._ep.engine is not engine:
            self._start(rows, engine)
        obs = observation_matrix(self._ep, self.cfg, self.role, self._first[self.role] + rows, self._first["node"])
        with torch.no_grad():
            logits = self.module.forward_inference({"obs": torch.from_numpy(obs)})["action_dist_inputs"]
        choice = sample_categorical(logits.numpy(), self.widths, self._rng if self.explore else None)
        group = getattr(actions, ROLE_GROUP[self.role])
        for k, head in enumerate(self.heads):
            head.write(group, rows, choice[:, k])

    def observe(self, result: RoundResult, engine: BatchEngine) -> None:
        if self._ep is not None and self._ep.engine is engine:
            record_round(self._ep, result, self.cfg, self._first["mediator"])


def deviator_rows(sizes: Mapping[str, int], role: str, seed: int, share: float) -> np.ndarray:
    """The study's deviator rows of `role` for `seed` (as `IncentiveStudy.deviators`)."""
    n = sizes[role]
    return pick_rows(n, max(1, round(share * n)), np.random.default_rng([seed, DEVIATORS_STREAM, ROLES.index(role)]))


def coalition_member_rows(sizes: Mapping[str, int], role: str, seed: int, k: int) -> np.ndarray:
    """The rows `IncentiveStudy.coalition_rows` gives a member of `k` agents of `role` for `seed`."""
    return pick_rows(
        sizes[role], min(k, sizes[role]), np.random.default_rng([seed, COALITION_STREAM, ROLES.index(role)])
    )


def train_config(
    scenario: Scenario, learned: LearnedConfig, focal: Mapping[str, Sequence[int]], shared_reward: bool = False
) -> dict[str, Any]:
    """An `experiments.train` config: the scenario's market, mechanism and honest profile, `focal` rows per role
    learning (one module per role), train.yaml's env and algo defaults with the `learned` overrides."""
    base = OmegaConf.load(TRAIN_YAML)
    env = {
        **OmegaConf.to_container(base.env),
        "rounds": scenario.rounds,
        **learned.env,
        "focal": {role: [int(r) for r in focal.get(role, ())] or 0 for role in ROLES},
        "shared_reward": shared_reward,
    }
    algo = {**OmegaConf.to_container(base.algo), **learned.algo, "mapping": "role"}
    return {
        "seed": learned.seed,
        "market": dict(scenario.market),
        "mechanism": dict(scenario.mechanism),
        "agents": dict(scenario.agents),
        "env": env,
        "algo": algo,
        "train": {"iterations": learned.iterations, "checkpoint_every": learned.iterations, "progress": False},
    }


@dataclass(frozen=True)
class LearnedBehaviourParts:
    module: Any  # the restored RLModule of a role
    env: MarketEnv  # the training's env (heads, action spaces, observation settings)


def train_modules(cfg: Mapping[str, Any], run_dir: Path) -> tuple[dict[str, LearnedBehaviourParts], Any]:
    """Train `cfg` into `run_dir`; per role its restored module and the training's env; and the metrics table."""
    from experiments.train import parse_run, train
    from marl.rllib import LearnedPolicy

    result = train(cfg, run_dir, log=lambda line: None)
    env = MarketEnv(parse_run(cfg).env)
    policy = LearnedPolicy.from_checkpoint(result.checkpoint, "role", env)
    return {role: LearnedBehaviourParts(policy.modules[role], env) for role in policy.modules}, result.metrics


def best_response(
    scenario: Scenario, role: str, learned: LearnedConfig, seeds: Sequence[int], share: float, run_dir: Path
) -> LearnedBehaviour:
    """Train the deviators of `role` (rows of the first seed) against the frozen honest profile."""
    rows = deviator_rows(role_sizes(scenario), role, seeds[0], share)
    parts, _ = train_modules(train_config(scenario, learned, {role: rows}), run_dir)
    name = f"learned: best response (PPO, {learned.iterations} it)"
    return LearnedBehaviour(role, name, parts[role].module, parts[role].env, learned.seed, learned.explore)


def learned_coalition(
    scenario: Scenario, spec: Mapping[str, Any], learned: LearnedConfig, seeds: Sequence[int], run_dir: Path
) -> Coalition:
    """Train a coalition (`{name, <role>: count}`) on its shared reward; the `Coalition` of the trained members."""
    sizes = role_sizes(scenario)
    counts = {role: int(k) for role, k in spec.items() if role != "name"}
    focal = {role: coalition_member_rows(sizes, role, seeds[0], k) for role, k in counts.items()}
    parts, _ = train_modules(train_config(scenario, learned, focal, shared_reward=True), run_dir)
    members = tuple(
        (
            role,
            Member(
                LearnedBehaviour(
                    role, f"{spec['name']} ({role})", parts[role].module, parts[role].env, learned.seed, learned.explore
                ),
                count=k,
            ),
        )
        for role, k in counts.items()
    )
    return Coalition(f"learned: {spec['name']} (PPO, {learned.iterations} it)", members)


def learned_entries(
    scenario: Scenario, learned: LearnedConfig, seeds: Sequence[int], share: float
) -> tuple[list[LearnedBehaviour], list[Coalition]]:
    """Every learned best response and coalition of `study.learned` (nothing when disabled)."""
    if not learned.enabled:
        return [], []
    with tempfile.TemporaryDirectory(prefix="learned_") as tmp:
        root = Path(learned.run_dir) if learned.run_dir else Path(tmp)
        tag = scenario.name or "scenario"
        behaviours = [
            best_response(scenario, role, learned, seeds, share, root / tag / f"br_{role}") for role in learned.roles
        ]
        coalitions = [
            learned_coalition(scenario, spec, learned, seeds, root / tag / f"coalition_{i}")
            for i, spec in enumerate(learned.coalitions)
        ]
    return behaviours, coalitions
