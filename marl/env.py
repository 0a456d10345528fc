"""A PettingZoo `ParallelEnv` over the batch engine: learning (focal) participants among scripted ones.

One env step is one engine round. Focal agents' discrete choices are written by their action heads (`marl.heads`)
into the same `Actions` arrays the scripted strategies of `agents.population` fill, so a learned policy and a
strategy are interchangeable row by row; every agent not listed as focal keeps its scripted strategy
(docs/architecture.md, "Strategies and policies share one interface"). Observations are cut from the round's public
outcome plus the agent's own state (`marl.observations`); the reward is the change of the agent's own wealth (free
balance + escrow), so compute costs, payments, slashes and bribes all count exactly as on the ledger.

An episode is a repeated game of `env.rounds` rounds on a fresh market and ledger drawn from the episode's seed.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from agents.repeated import RepeatedPlay
from marl.config import builder_sections, focal_rows, parse_env
from marl.counters import ROLE_COUNTERS, C, role_rates
from marl.episode import Episode, record_round
from marl.heads import ROLE_GROUP, ROLES, role_heads, space_of
from marl.observations import observation_box, observation_matrix
from mechanisms.actions import Actions
from sim.engine import RoundResult
from twin.build import build, parse

MAX_SEED = 2**63 - 1


class MarketEnv(ParallelEnv):
    """The market as a parallel multi-agent env; agent ids are `<role>_<row>` (row within the role)."""

    metadata: typing.ClassVar[dict[str, Any]] = {
        "name": "lilypad_market_v0",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(self, config: Mapping[str, Any], stream: tuple[int, ...] = ()) -> None:
        """`config`: seed, market, mechanism, agents (as for `twin.build`) and `env` (EnvConfig).

        `stream` separates parallel copies (e.g. RLlib's worker and vector index): each gets its own seed stream.
        """
        self.parsed, self.cfg = parse_env(config)
        self._sections = builder_sections(config)
        self.stream = tuple(int(s) for s in stream)
        m = self.parsed.market
        sizes = {"node": m.n_nodes, "client": m.n_clients, "mediator": m.n_mediators}
        self.rows = {
            role: focal_rows(getattr(self.cfg.focal, role), sizes[role], f"env.focal.{role}") for role in ROLES
        }
        self.heads = {role: role_heads(role, self.cfg) for role in ROLES}
        self.possible_agents = [f"{role}_{row}" for role in ROLES for row in self.rows[role]]
        self.agents: list[str] = []
        self.role_of = {a: a.rsplit("_", 1)[0] for a in self.possible_agents}
        self._obs_spaces = {role: observation_box(role, self.cfg) for role in ROLES}
        self._act_spaces = {role: space_of(self.heads[role]) for role in ROLES}
        self._seeds = np.random.SeedSequence(self.parsed.seed, spawn_key=self.stream)
        self.episode: Episode | None = None
        self.discount = self.cfg.discount

    # --- spaces
    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        return self._obs_spaces[self.role_of[agent]]

    def action_space(self, agent: str) -> gymnasium.Space:
        return self._act_spaces[self.role_of[agent]]

    # --- episodes
    def _next_seed(self) -> int:
        """The next episode's seed from the env's stream (SeedSequence children are numbered, so reproducible)."""
        state = self._seeds.spawn(1)[0].generate_state(2, np.uint32)
        return int((int(state[0]) << 32 | int(state[1])) & MAX_SEED)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """A fresh market and ledger. `seed` restarts the env's seed stream (episodes after it follow from it)."""
        if seed is not None:
            self._seeds = np.random.SeedSequence(int(seed), spawn_key=self.stream)
        episode_seed = self._next_seed()
        # parsed afresh: mechanisms and strategies may keep state across rounds, so every episode builds new ones
        sim = build(parse({**self._sections, "seed": episode_seed}))
        n = sim.market.facts.first_mediator + sim.market.config.n_mediators
        wealth = self._wealth(sim.engine, n)
        self.episode = Episode.start(episode_seed, sim.engine, sim.population, wealth)
        self.episode.history = self._history(sim.market.facts.first_node)
        self._first = {"node": sim.market.facts.first_node, "client": 0, "mediator": sim.market.facts.first_mediator}
        self._agent_accounts = np.array([self.account(a) for a in self.possible_agents], dtype=np.int64)
        self.agents = list(self.possible_agents)
        return self._observations(), {a: {"episode_seed": episode_seed} for a in self.agents}

    def _history(self, first_node: int) -> RepeatedPlay | None:
        """Who saw its replica partner post the cartel's result (and the repeated strategies), when configured."""
        if not (self.cfg.partner_action or self.cfg.repeated):
            return None
        n = self.parsed.market.n_nodes
        return RepeatedPlay(self.cfg.repeated or ("honest",) * n, first_node)

    @staticmethod
    def _wealth(engine: Any, n: int) -> np.ndarray:
        return engine.ledger.balance[:n] + engine.ledger.escrow[:n]

    def joint_actions(self, actions: Mapping[str, Any]) -> Actions:
        """The round's `Actions`: every agent's scripted behaviour, overwritten by the focal agents' choices."""
        ep = self.episode
        joint = ep.population.actions(ep.round)
        if self.cfg.repeated:  # history-dependent scripts in place of the nodes' population strategies
            ep.history.act(joint)
        for role in ROLES:
            ids = [f"{role}_{row}" for row in self.rows[role]]
            have = [i for i, a in enumerate(ids) if a in actions]  # an agent without an action keeps its script
            if not have:
                continue
            rows = self.rows[role][have]
            choice = np.asarray([actions[ids[i]] for i in have], dtype=np.int64).reshape(len(have), -1)
            group = getattr(joint, ROLE_GROUP[role])
            for k, head in enumerate(self.heads[role]):
                head.write(group, rows, choice[:, k])
        return joint

    def step(self, actions: Mapping[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        ep = self.episode
        if ep is None or not self.agents:
            raise RuntimeError("step() called before reset() or after the episode ended")
        result = ep.engine.step(self.joint_actions(actions))
        ep.engine.events.drain()  # the env reads the round's result, not the log; keep memory flat
        if ep.history is not None:
            ep.history.observe(result.deals)
        self._record(result)
        done = ep.round >= self.cfg.rounds
        agents = self.agents
        rewards = dict(zip(agents, ep.reward_last[self._agent_accounts].tolist(), strict=True))
        if self.cfg.shared_reward:  # one coalition: each member gets the summed reward / k
            rewards = dict.fromkeys(agents, float(ep.reward_last[self._agent_accounts].mean()))
        infos = self._infos()
        if done:
            summary = self.summary()
            for a in agents:
                infos[a]["episode"] = summary
        obs = self._observations()
        end = dict.fromkeys(agents, done)
        never = dict.fromkeys(agents, False)
        terminations, truncations = (never, end) if self.cfg.truncate else (end, never)
        if done:
            self.agents = []
        return obs, rewards, terminations, dict(truncations), infos

    def _record(self, result: RoundResult) -> None:
        """Fold a settled round into the episode's totals and the agents' rewards."""
        record_round(self.episode, result, self.cfg, self._first["mediator"])

    def account(self, agent: str) -> int:
        """The agent's ledger account id in the current episode's market."""
        role, row = agent.rsplit("_", 1)
        return self._first[role] + int(row)

    def _observations(self) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = {}
        for role in ROLES:
            if not len(self.rows[role]):
                continue
            acc = self._first[role] + self.rows[role]
            mat = observation_matrix(self.episode, self.cfg, role, acc, self._first["node"])
            for i, row in enumerate(self.rows[role]):
                obs[f"{role}_{row}"] = mat[i]
        return obs

    def _infos(self) -> dict[str, dict[str, Any]]:
        """Per agent: the round, its last-round counters that matter for its role, profit and penalty. Infos are
        diagnostics, not observations (a client's info counts fakes it received, which it never observes)."""
        ep, infos = self.episode, {}
        for role in ROLES:
            acc = self._first[role] + self.rows[role]
            names = (*ROLE_COUNTERS[role], "profit", "penalty")
            table = np.vstack(
                [ep.last[[C[n] for n in ROLE_COUNTERS[role]]][:, acc], ep.profit[acc], ep.penalty_last[acc]]
            ).T.tolist()
            for row, values in zip(self.rows[role], table, strict=True):
                infos[f"{role}_{row}"] = {"round": ep.round - 1, **dict(zip(names, values, strict=True))}
        return infos

    # --- statistics
    def focal_mask(self) -> np.ndarray:
        """Bool per account: focal or not."""
        mask = np.zeros(len(self.episode.wealth), dtype=bool)
        for role in ROLES:
            mask[self._first[role] + self.rows[role]] = True
        return mask

    def role_slices(self) -> dict[str, slice]:
        n = len(self.episode.wealth)
        f = self._first
        return {
            "client": slice(0, f["node"]),
            "node": slice(f["node"], f["mediator"]),
            "mediator": slice(f["mediator"], n),
        }

    def counts(self, focal: bool) -> dict[str, float]:
        """The episode's summed counters per role (`<role>_<counter>`, plus reward, penalty, profit and agents) over
        the focal agents (`focal=True`) or over every agent."""
        ep = self.episode
        mask = self.focal_mask() if focal else np.ones(len(ep.wealth), dtype=bool)
        out: dict[str, float] = {}
        for role, sl in self.role_slices().items():
            m = mask[sl]
            for name in ROLE_COUNTERS[role]:
                out[f"{role}_{name}"] = int(ep.cum[C[name], sl][m].sum())
            out[f"{role}_agents"] = int(m.sum())
            out[f"{role}_reward"] = float(ep.reward[sl][m].sum())
            out[f"{role}_penalty"] = int(ep.penalty[sl][m].sum())
            out[f"{role}_profit"] = int((ep.wealth - ep.wealth0)[sl][m].sum())
        return out

    def summary(self) -> dict[str, Any]:
        """Episode summary: counts and rates for the focal agents and for the whole market."""
        out: dict[str, Any] = {"seed": self.episode.seed, "rounds": self.episode.round}
        for scope, focal in (("focal", True), ("market", False)):
            counts = self.counts(focal)
            out[scope] = {"counts": counts, "rates": role_rates(counts)}
        return out

    def render(self) -> None:
        return None

    def close(self) -> None:
        self.episode = None
