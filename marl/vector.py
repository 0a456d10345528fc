"""K markets as RLlib's vectorised multi-agent env, advanced by one engine round per step (`twin.vector`).

RLlib's new API stack vectorises multi-agent sampling with a `VectorMultiAgentEnv`: sub-env k is a market of its
own, with its own agents (the same ids in every market), episodes, observations and rewards. Its stock
`SyncVectorMultiAgentEnv` steps K env objects one after another, each paying an engine round's fixed cost; here
one engine round settles all K markets, and the per-market bookkeeping (rewards, observations, infos) is computed
for all markets' agents at once. Each market is exactly what the env's k-th copy (`marl.env.MarketEnv`, reset with
seed + k) would be, round for round (tests/marl/test_vector.py), so training sees the same samples either way.

All markets run episodes of the same length, so they end together; as RLlib's vector envs do ("next_step"
autoreset), the step after the last one starts every market's next episode and returns its first observations.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.rllib.env.vector.vector_multi_agent_env import VectorMultiAgentEnv

from marl.counters import ROLE_COUNTERS, C, ratio, role_rates
from marl.env import MarketEnv
from marl.episode import Episode, record_round
from marl.heads import ROLE_GROUP, ROLES
from marl.observations import observation_matrix
from mechanisms.actions import Actions
from mechanisms.config import require, require_int
from mechanisms.protocol import DealState
from sim.market import MAX_MEDIATORS
from twin.build import parse
from twin.vector import MarketSet, build_markets, check_union_stack

FIELD = "algo.env_runners.num_envs_per_env_runner"


class MarketSpaces(MultiAgentEnv):
    """What RLlib's env runner asks of sub-env k: its agents and their spaces (the markets share them)."""

    def __init__(self, possible_agents: list[int], obs: dict[int, gymnasium.Space], act: dict[int, gymnasium.Space]):
        super().__init__()
        self.possible_agents, self.agents = possible_agents, list(possible_agents)
        self.observation_spaces, self.action_spaces = obs, act


class VecMarketEnv(VectorMultiAgentEnv):
    """`num_envs` markets of one config, each from its own seed stream, settled by one engine round per step.

    Agents are seen by index as `marl.rllib.RLlibMarketEnv` shows them."""

    metadata: Mapping[str, Any] = {"autoreset_mode": "next_step"}

    def __init__(self, config: Mapping[str, Any], num_envs: int, stream: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if stream is None:  # as `RLlibMarketEnv` derives it: RLlib's worker and vector index
            stream = tuple(int(getattr(config, name, 0) or 0) for name in ("worker_index", "vector_index"))
        self.view = MarketEnv(dict(config), stream)  # config, agents, heads, spaces and each market's seed stream
        self.cfg, self.num_envs, self.stream = self.view.cfg, int(num_envs), tuple(stream)
        check_union_stack(self.view.parsed.stack, FIELD)
        require(
            not (self.cfg.partner_action or self.cfg.repeated),
            FIELD,
            self.num_envs,
            "1 with env.partner_action or env.repeated (partners' histories are kept per market by MarketEnv only)",
        )
        mediators = self.view.parsed.market.n_mediators
        require_int(self.num_envs, FIELD, 1, MAX_MEDIATORS // mediators)  # trust masks hold every market's mediators
        self.names = list(self.view.possible_agents)
        obs = {i: self.view.observation_space(a) for i, a in enumerate(self.names)}
        act = {i: self.view.action_space(a) for i, a in enumerate(self.names)}
        self.envs = [MarketSpaces(list(range(len(self.names))), obs, act) for _ in range(self.num_envs)]
        self.single_observation_spaces, self.single_action_spaces = obs, act
        self.single_observation_space = gymnasium.spaces.Dict(obs)
        self.single_action_space = gymnasium.spaces.Dict(act)
        self._template = parse(self.view._sections)
        self._scripted: dict[int, Actions] = {}  # round -> the scripted actions of every market
        self._seeds = [np.random.SeedSequence(self.view.parsed.seed + k, spawn_key=self.stream)
                       for k in range(self.num_envs)]  # fmt: skip
        self.markets: MarketSet | None = None
        self.episode: Episode | None = None
        self._done = False
        # per focal agent (in `names` order): role, row within its role
        self._role = [self.view.role_of[a] for a in self.names]
        self._row = np.array([int(a.rsplit("_", 1)[1]) for a in self.names], dtype=np.int64)

    # --- episodes
    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict | None = None) -> tuple[list, list]:
        """Every market's next episode; an int `seed` restarts market k's stream at seed + k (as RLlib seeds the
        k-th copy of an env)."""
        if seed is not None:
            seeds = [int(seed) + k for k in range(self.num_envs)] if isinstance(seed, int) else [int(s) for s in seed]
            self._seeds = [np.random.SeedSequence(s, spawn_key=self.stream) for s in seeds]
        episode_seeds = []
        for k in range(self.num_envs):
            self.view._seeds = self._seeds[k]
            episode_seeds.append(self.view._next_seed())
        # parsed once: every market shares the population (scripted strategies are frozen), the stack is fresh
        # each episode (mechanisms may keep state across rounds)
        parsed = [dataclasses.replace(self._template, seed=s) for s in episode_seeds]
        self.markets = build_markets(parsed, copy.deepcopy(self._template.stack), FIELD)
        n = self.markets.market.facts.first_mediator + self.markets.market.config.n_mediators
        engine = self.markets.engine
        wealth = engine.ledger.balance[:n] + engine.ledger.escrow[:n]
        self.episode = Episode.start(0, engine, None, wealth)
        self._seeds_of_episode = episode_seeds
        self._accounts = {role: self.markets.account(role, np.arange(self.num_envs)[:, None], self.view.rows[role])
                          for role in ROLES}  # (K, focal rows of the role)  # fmt: skip
        self._agent_accounts = np.stack(
            [
                self.markets.account(r, np.arange(self.num_envs), row)
                for r, row in zip(self._role, self._row, strict=True)
            ],
            axis=1,
        )
        self._market = np.zeros((self.num_envs, 3))
        self._market_deals = np.zeros(self.num_envs, dtype=np.int64)
        self._done = False
        obs = self._observations()
        return obs, [{i: {"episode_seed": s} for i in range(len(self.names))} for s in episode_seeds]

    def step(self, actions: Sequence[Mapping[int, Any]]) -> tuple[list, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._done or self.episode is None:
            obs, infos = self.reset()
            zero = [dict.fromkeys(range(len(self.names)), 0.0) for _ in range(self.num_envs)]
            flags = [{**dict.fromkeys(range(len(self.names)), False), "__all__": False}
                     for _ in range(self.num_envs)]  # fmt: skip
            return obs, np.array(zero), np.array(flags), np.array([dict(f) for f in flags]), np.array(infos)
        ep, ms = self.episode, self.markets
        result = ms.engine.step(self._joint_actions(actions, ep.round))
        ms.engine.events.drain()  # the env reads the round's result, not the log; keep memory flat
        record_round(ep, result, self.cfg, ms.market.facts.first_mediator)
        self._market_shares(result)
        done = ep.round >= self.cfg.rounds
        rewards = ep.reward_last[self._agent_accounts]  # (K, agents)
        if self.cfg.shared_reward:
            rewards = np.repeat(rewards.mean(axis=1, keepdims=True), rewards.shape[1], axis=1)
        obs, infos = self._observations(), self._infos()
        if done:
            for k, summary in enumerate(self._summaries()):
                for info in infos[k].values():
                    info["episode"] = summary
        self._done = done
        ids = range(len(self.names))
        end, never = {**dict.fromkeys(ids, done), "__all__": done}, {**dict.fromkeys(ids, False), "__all__": False}
        terms, truncs = (never, end) if self.cfg.truncate else (end, never)
        return (obs, np.array([dict(zip(ids, r, strict=True)) for r in rewards.tolist()]),
                np.array([dict(terms) for _ in range(self.num_envs)]),
                np.array([dict(truncs) for _ in range(self.num_envs)]), np.array(infos))  # fmt: skip

    def _joint_actions(self, actions: Sequence[Mapping[int, Any]], round_index: int) -> Any:
        """Every market's scripted actions, overwritten by its focal agents' choices."""
        if round_index not in self._scripted:  # every market's population is the template's: tile it once
            one = self._template.population.actions(round_index)
            self._scripted[round_index] = Actions.concat([one] * self.num_envs)
        joint = Actions.concat([self._scripted[round_index]])  # a copy, for the focal agents' choices
        for role in ROLES:
            agents = [i for i, r in enumerate(self._role) if r == role]
            if not agents:
                continue
            if all(i in act for act in actions for i in agents):  # the common case: every focal agent acts
                markets, ids = np.arange(self.num_envs), agents
                choice = np.asarray([[act[i] for i in agents] for act in actions], dtype=np.int64)
                rows = (self.markets.size(role) * markets[:, None] + self._row[agents]).ravel()
            else:  # an agent without an action keeps its script
                pairs = [(k, i) for k, act in enumerate(actions) for i in agents if i in act]
                if not pairs:
                    continue
                markets, ids = np.array([k for k, _ in pairs]), [i for _, i in pairs]
                choice = np.asarray([actions[k][i] for k, i in pairs], dtype=np.int64)
                rows = self.markets.size(role) * markets + self._row[ids]
            choice = choice.reshape(len(rows), -1)
            for h, head in enumerate(self.view.heads[role]):
                head.write(getattr(joint, ROLE_GROUP[role]), rows, choice[:, h])
        return joint

    def _market_shares(self, result: Any) -> None:
        """Per market: the public shares (fill, check share, reject share) and its deals this round."""
        d, k = result.deals, self.num_envs
        market = self.markets.market_of("client", d.client)

        def per_market(mask: np.ndarray) -> np.ndarray:
            return np.bincount(market[mask], minlength=k)

        deals = per_market(np.ones(len(d), dtype=bool))
        self._market = np.column_stack([ratio(deals, self.markets.source.jobs_posted),
                                        ratio(per_market(d.checked), per_market(d.judged)),
                                        ratio(per_market(d.state == DealState.MediationRejected),
                                              per_market(d.mediated))])  # fmt: skip
        self._market_deals = deals

    def _observations(self) -> list[dict[int, np.ndarray]]:
        out: list[dict[int, np.ndarray]] = [{} for _ in range(self.num_envs)]
        first_node = self.markets.first("node")
        for role in ROLES:
            acc = self._accounts[role]  # (K, focal)
            if not acc.size:
                continue
            flat = acc.ravel()
            market = np.repeat(np.arange(self.num_envs), acc.shape[1])
            mat = observation_matrix(self.episode, self.cfg, role, flat, first_node, self._market[market],
                                     self._market_deals[market]).reshape(*acc.shape, -1)  # fmt: skip
            ids = [i for i, r in enumerate(self._role) if r == role]
            for k in range(self.num_envs):
                out[k].update(zip(ids, mat[k], strict=True))
        return out

    def _infos(self) -> list[dict[int, dict[str, Any]]]:
        """Per market and agent, as `MarketEnv._infos`: the round, its role's last-round counters, profit, penalty."""
        ep = self.episode
        out: list[dict[int, dict[str, Any]]] = [{} for _ in range(self.num_envs)]
        for role in ROLES:
            ids = [i for i, r in enumerate(self._role) if r == role]
            if not ids:
                continue
            acc = self._agent_accounts[:, ids]
            names = (*ROLE_COUNTERS[role], "profit", "penalty")
            cols = [ep.last[C[n]][acc] for n in ROLE_COUNTERS[role]] + [ep.profit[acc], ep.penalty_last[acc]]
            table = np.stack(cols, axis=-1).tolist()
            for k in range(self.num_envs):
                for i, values in zip(ids, table[k], strict=True):
                    out[k][i] = {"round": ep.round - 1, **dict(zip(names, values, strict=True))}
        return out

    def _summaries(self) -> list[dict[str, Any]]:
        """Per market, `MarketEnv.summary`: counts and rates for its focal agents and its whole market."""
        ep, ms = self.episode, self.markets
        out = []
        for k in range(self.num_envs):
            summary: dict[str, Any] = {"seed": self._seeds_of_episode[k], "rounds": ep.round}
            for scope in ("focal", "market"):
                counts: dict[str, float] = {}
                for role in ROLES:
                    rows = self.view.rows[role] if scope == "focal" else np.arange(ms.size(role))
                    acc = ms.account(role, k, rows)
                    for name in ROLE_COUNTERS[role]:
                        counts[f"{role}_{name}"] = int(ep.cum[C[name], acc].sum())
                    counts[f"{role}_agents"] = len(acc)
                    counts[f"{role}_reward"] = float(ep.reward[acc].sum())
                    counts[f"{role}_penalty"] = int(ep.penalty[acc].sum())
                    counts[f"{role}_profit"] = int((ep.wealth - ep.wealth0)[acc].sum())
                summary[scope] = {"counts": counts, "rates": role_rates(counts)}
            out.append(summary)
        return out

    def close_extras(self, **kwargs: Any) -> None:
        self.episode = self.markets = None


def market_env_runner() -> type:
    """RLlib's `MultiAgentEnvRunner` building a `VecMarketEnv` of `num_envs_per_env_runner` markets instead of K
    copies of the env (`AlgorithmConfig.env_runners(env_runner_cls=...)`)."""
    from ray.rllib.env.env_context import EnvContext
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    class MarketEnvRunner(MultiAgentEnvRunner):
        def make_env(self) -> None:
            if self.env is not None:
                self.env.close()
            ctx = self.config.env_config
            if not isinstance(ctx, EnvContext):
                ctx = EnvContext(ctx, worker_index=self.worker_index, num_workers=self.config.num_env_runners,
                                 remote=self.config.remote_worker_envs)  # fmt: skip
            self.env = VecMarketEnv(ctx, self.config.num_envs_per_env_runner)
            self.num_envs = self.env.num_envs
            self._needs_initial_reset = True

    return MarketEnvRunner
