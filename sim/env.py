"""A PettingZoo `ParallelEnv` over the batch engine: learning (focal) participants among scripted ones.

One env step is one engine round. Focal agents' discrete choices are written into the same `Actions` arrays the
scripted strategies of `agents.population` fill (DESIGN principle 5), so a learned policy and a strategy are
interchangeable row by row; every agent not listed as focal keeps its scripted strategy. Observations are cut from
the round's public outcome plus the agent's own state (principle 6); the reward is the change of the agent's own
wealth (free balance + escrow), so compute costs, payments, slashes and bribes all count exactly as on the ledger.

An episode is a repeated game of `env.rounds` rounds on a fresh market and ledger drawn from the episode's seed.

Action heads. Each role has an ordered list of heads (`env.actions.<role>`); a head is one discrete choice that
sets one field of the role's action arrays to one of a few values (`HEADS`). One head gives a `Discrete` space,
several a `MultiDiscrete`. A decision the engine gains later (a cartel vote, an accusation) is one more `HEADS`
entry naming its `agents.actions` field; heads whose field the engine's actions lack are refused at construction.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from agents.actions import Actions
from mechanisms.config import from_mapping, require, require_int
from mechanisms.deals import CARTEL_FAKE, NEVER, NO_MEDIATOR
from mechanisms.money import MAX_AMOUNT
from mechanisms.protocol import DealState
from sim.build import SECTIONS, ParsedConfig, build, check_keys, parse
from sim.engine import RoundResult

ROLES = ("node", "client", "mediator")
#: Attribute of `Actions` holding each role's arrays (also the population's group name).
ROLE_GROUP = {"node": "nodes", "client": "clients", "mediator": "mediators"}
ENV_KEYS = (*SECTIONS, "env")
MAX_SEED = 2**63 - 1


# --------------------------------------------------------------------------------------------------- action heads
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


# --------------------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class FocalConfig:
    """Learning agents per role: a count (the role's first rows) or a list of row indices within the role."""

    node: int | tuple[int, ...] = 0
    client: int | tuple[int, ...] = 0
    mediator: int | tuple[int, ...] = 0


@dataclass(frozen=True)
class ActionConfig:
    """Action heads per role, in order (names from `HEADS`)."""

    node: tuple[str, ...] = ("cheat", "bribe")
    client: tuple[str, ...] = ("check",)
    mediator: tuple[str, ...] = ("vote",)


@dataclass(frozen=True)
class EnvConfig:
    rounds: int = 20  # rounds per episode (the repeated game's length)
    discount: float = 0.99  # the agents' discount factor per round (train uses it as the RL gamma)
    truncate: bool = False  # true: an episode is a window of an endless game (values are bootstrapped at the cut)
    focal: FocalConfig = field(default_factory=FocalConfig)
    actions: ActionConfig = field(default_factory=ActionConfig)
    bribe_levels: tuple[int, ...] = (0, 10, 20, 40)  # bribes a node may offer (base units; 0 = none)
    threshold_levels: tuple[int, ...] = (10, 20, 40)  # smallest bribe a corruptible mediator accepts
    # Loss a mediator expects per bribe taken (a stake or reputation slash no mechanism models yet). It lowers the
    # mediator's reward, not its ledger balance, and is reported separately as `penalty`.
    bribe_penalty: int = 0
    reward_scale: float = 1.0  # reward = reward_scale x (profit - penalty), profit in base units
    # true: the focal agents are one coalition; each receives the coalition's summed reward / k (k focal agents),
    # so a shared policy maximizes the members' total. Ledger profits and the episode counters stay per agent.
    shared_reward: bool = False
    money_scale: float = 100.0  # base units per observation unit
    obs_clip: float = 10.0  # observations are clipped to [-obs_clip, obs_clip]

    def validate(self, path: str) -> None:
        require_int(self.rounds, f"{path}.rounds", 1, 10**7)
        require(_number(self.discount) and 0.0 <= self.discount <= 1.0, f"{path}.discount", self.discount,
                "a number in [0, 1]")
        require(isinstance(self.truncate, bool), f"{path}.truncate", self.truncate, "true or false")
        require(isinstance(self.shared_reward, bool), f"{path}.shared_reward", self.shared_reward, "true or false")
        require(len(self.bribe_levels) > 0, f"{path}.bribe_levels", self.bribe_levels, "at least one level")
        for name in ("bribe_levels", "threshold_levels"):
            for i, v in enumerate(getattr(self, name)):
                require_int(v, f"{path}.{name}[{i}]", 0 if name == "bribe_levels" else 1, MAX_AMOUNT)
        require_int(self.bribe_penalty, f"{path}.bribe_penalty", 0, MAX_AMOUNT)
        for name in ("reward_scale", "money_scale", "obs_clip"):
            value = getattr(self, name)
            require(_number(value) and value > 0, f"{path}.{name}", value, "a positive number")
        for role in ROLES:
            heads = getattr(self.actions, role)
            require(len(heads) > 0 and len(set(heads)) == len(heads), f"{path}.actions.{role}", list(heads),
                    f"a non-empty list of distinct names from {sorted(HEADS[role])}")
            for i, name in enumerate(heads):
                require(name in HEADS[role], f"{path}.actions.{role}[{i}]", name, f"one of {sorted(HEADS[role])}")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def parse_env(cfg: Mapping[str, Any]) -> tuple[ParsedConfig, EnvConfig]:
    """Validate a whole env config: the builder's sections (seed, market, mechanism, agents) plus `env`."""
    require(isinstance(cfg, Mapping), "config", cfg, "a mapping")
    check_keys(cfg, ENV_KEYS)
    parsed = parse(builder_sections(cfg))
    env = cfg.get("env") or {}
    require(isinstance(env, Mapping), "env", env, "a mapping")
    return parsed, from_mapping(EnvConfig, env, "env")


def builder_sections(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k in SECTIONS}


def focal_rows(spec: int | tuple[int, ...], size: int, path: str) -> np.ndarray:
    """Row indices within a role from a count or an explicit list."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        require_int(spec, path, 0, size)
        return np.arange(spec, dtype=np.int64)
    rows = np.asarray(spec, dtype=np.int64)
    ok = all(isinstance(r, int) and not isinstance(r, bool) for r in spec) and len(set(spec)) == len(spec)
    require(ok and bool(np.all((rows >= 0) & (rows < size))), path, list(spec),
            f"a count in [0, {size}] or distinct row indices in [0, {size})")
    return np.sort(rows)


# ------------------------------------------------------------------------------------------------ round outcomes
#: Per-account counters of one round (and, summed, of an episode). A deal counts for each of its parties: its
#: client, its node and its drawn mediator. Several are private to one party (`cheated` to the node and to the
#: mediator that re-ran it, bribes to the node and the mediator) and only ever reach that party's observation.
COUNTERS = ("deals", "submitted", "cheated", "fake_accepted", "judged", "checked", "rejected", "mediated",
            "bribes_offered", "bribes_taken", "bribe_amount", "colluded", "reported")
C = {name: i for i, name in enumerate(COUNTERS)}
#: The counters that mean something for each role in summaries (the others repeat the counterparty's numbers).
ROLE_COUNTERS = {
    "node": ("deals", "submitted", "cheated", "fake_accepted", "checked", "rejected", "bribes_taken", "colluded",
             "reported"),
    "client": ("deals", "judged", "checked", "rejected", "cheated", "fake_accepted"),
    "mediator": ("mediated", "rejected", "bribes_offered", "bribes_taken", "bribe_amount"),
}
_PAID = np.zeros(len(DealState), dtype=bool)
_PAID[[DealState.ResultsAccepted, DealState.TimeoutJudgeResults, DealState.MediationAccepted]] = True


def round_counts(result: RoundResult, n_accounts: int) -> np.ndarray:
    """(len(COUNTERS), n_accounts) int64 counts of the round's deals per party (one bincount for all counters)."""
    d = result.deals
    med = d.mediator_account()
    has_med = med != NO_MEDIATOR
    offered = d.mediated & d.cheated & (d.bribe > 0)
    colluded = d.cheated & (d.result == CARTEL_FAKE)  # posted the cartel's shared fake
    flags = np.column_stack([np.ones(len(d), dtype=np.int64), d.submitted, d.cheated, d.cheated & _PAID[d.state],
                             d.judged, d.checked, d.state == DealState.MediationRejected, d.mediated, offered,
                             d.bribe_accepted, np.where(offered, d.bribe, 0), colluded,
                             colluded & d.reports]).astype(np.int64)
    parties = np.concatenate([d.client, d.node, med[has_med]])
    weights = np.concatenate([flags, flags, flags[has_med]])
    k = len(COUNTERS)
    index = (parties[:, None] * k + np.arange(k)).ravel()
    counts = np.bincount(index, weights=weights.ravel(), minlength=n_accounts * k)
    return counts.reshape(n_accounts, k).T.astype(np.int64)


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """num / den elementwise, 0 where den is 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


# ---------------------------------------------------------------------------------------------------- observations
COMMON_FEATURES = ("round_fraction", "wealth_change", "last_profit", "market_fill", "market_check_share",
                   "market_reject_share")
#: Observation layout per role: the common features, then these. `last_` = the previous round (the agent's own
#: deals), `pub_` = the agent's own counters on the public record (sim.public_record; a whitewashed node starts over),
#: `cum_` = the agent's own episode totals.
ROLE_FEATURES = {
    "node": ("last_deal", "last_cheated", "last_checked", "last_rejected", "last_bribe_paid", "pub_jobs_per_round",
             "pub_check_rate", "pub_fail_rate"),
    "client": ("last_deal", "last_checked", "last_rejected", "pub_jobs_per_round", "pub_check_rate",
               "cum_reject_rate"),
    "mediator": ("last_mediation_share", "last_bribe_offer_rate", "last_bribe_take_rate", "last_mean_bribe",
                 "last_reject_rate", "pub_mediations_per_round", "cum_reject_rate", "cum_bribe_take_rate"),
}


def _role_features(role: str, last: np.ndarray, cum: np.ndarray, pub: Mapping[str, np.ndarray], rounds: int,
                   market_deals: int, money_scale: float) -> list[np.ndarray]:
    """Columns of ROLE_FEATURES[role] for some accounts: `last`/`cum` are (len(COUNTERS), k) counts, `pub` the
    public record's counters of the same accounts."""
    if role == "node":
        return [last[C["deals"]], last[C["cheated"]], last[C["checked"]], last[C["rejected"]],
                last[C["bribes_taken"]], _ratio(pub["jobs"], rounds), _ratio(pub["checked"], pub["jobs"]),
                _ratio(pub["failed"], pub["jobs"])]
    if role == "client":
        return [last[C["deals"]], last[C["checked"]], last[C["rejected"]], _ratio(pub["client_jobs"], rounds),
                _ratio(pub["client_checks"], pub["client_jobs"]), _ratio(cum[C["rejected"]], cum[C["checked"]])]
    return [_ratio(last[C["mediated"]], market_deals), _ratio(last[C["bribes_offered"]], last[C["mediated"]]),
            _ratio(last[C["bribes_taken"]], last[C["bribes_offered"]]),
            _ratio(last[C["bribe_amount"]], last[C["bribes_offered"]]) / money_scale,
            _ratio(last[C["rejected"]], last[C["mediated"]]), _ratio(pub["mediations"], rounds),
            _ratio(cum[C["rejected"]], cum[C["mediated"]]), _ratio(cum[C["bribes_taken"]], cum[C["bribes_offered"]])]


# ------------------------------------------------------------------------------------------------------ statistics
def role_rates(counts: Mapping[str, float]) -> dict[str, float | None]:
    """The headline numbers from summed counts (keys as in `MarketEnv.counts`); None where nothing was counted.

    cheat_rate = fake / submitted results of the nodes counted; fake_accepted = fake results the node was paid for
    (and per submitted result); check_rate = checks / judged results of the clients counted; bribe_acceptance =
    bribes taken / offered to the mediators counted; return_<role> = reward per agent and episode; collusion_rate =
    the cartel's shared fake / submitted results of the nodes counted; report_rate = reported / posted cartel fakes.
    """
    def r(num: str, den: str) -> float | None:
        d = counts.get(den, 0)
        return float(counts.get(num, 0)) / float(d) if d else None

    out = {"cheat_rate": r("node_cheated", "node_submitted"), "fake_accepted": counts.get("node_fake_accepted", 0),
           "fake_accepted_per_job": r("node_fake_accepted", "node_submitted"),
           "check_rate": r("client_checked", "client_judged"),
           "bribe_acceptance": r("mediator_bribes_taken", "mediator_bribes_offered"),
           "collusion_rate": r("node_colluded", "node_submitted"), "report_rate": r("node_reported", "node_colluded")}
    out.update({f"return_{role}": r(f"{role}_reward", f"{role}_agents") for role in ROLES})
    return out


@dataclass
class Episode:
    """One episode's state: its engine and the running per-account totals."""

    seed: int
    engine: Any
    population: Any
    round: int
    wealth0: np.ndarray
    wealth: np.ndarray
    last: np.ndarray  # round_counts of the previous round
    cum: np.ndarray  # summed round_counts
    profit: np.ndarray  # last round's profit per account
    reward_last: np.ndarray  # last round's reward per account
    reward: np.ndarray  # summed rewards per account
    penalty_last: np.ndarray  # last round's penalty per account
    penalty: np.ndarray  # summed penalties per account
    market: np.ndarray  # public market shares of the previous round (fill, check share, reject share)

    @classmethod
    def start(cls, seed: int, engine: Any, population: Any, wealth: np.ndarray) -> Episode:
        n = len(wealth)

        def ints() -> np.ndarray:
            return np.zeros(n, dtype=np.int64)

        def counts() -> np.ndarray:
            return np.zeros((len(COUNTERS), n), dtype=np.int64)

        return cls(seed=seed, engine=engine, population=population, round=0, wealth0=wealth.copy(), wealth=wealth,
                   last=counts(), cum=counts(), profit=ints(), reward_last=np.zeros(n), reward=np.zeros(n),
                   penalty_last=ints(), penalty=ints(), market=np.zeros(3))


def record_round(ep: Episode, result: RoundResult, cfg: EnvConfig, first_mediator: int) -> None:
    """Fold a settled round into the episode's totals and every account's reward (`MarketEnv.step` and any
    replay of the env's observations outside it, e.g. `experiments.analysis.learned`)."""
    n = len(ep.wealth)
    wealth = ep.engine.ledger.balance[:n] + ep.engine.ledger.escrow[:n]
    ep.profit, ep.wealth = wealth - ep.wealth, wealth
    ep.last = round_counts(result, n)
    ep.cum += ep.last
    ep.penalty_last = np.zeros(n, dtype=np.int64)
    meds = slice(first_mediator, n)
    ep.penalty_last[meds] = cfg.bribe_penalty * ep.last[C["bribes_taken"], meds]
    ep.penalty += ep.penalty_last
    ep.reward_last = cfg.reward_scale * (ep.profit - ep.penalty_last)
    ep.reward += ep.reward_last
    d = result.deals
    ep.market = np.array([_ratio(len(d), result.posted_jobs), _ratio(d.checked.sum(), d.judged.sum()),
                          _ratio((d.state == DealState.MediationRejected).sum(), d.mediated.sum())])
    ep.round += 1


def observation_matrix(ep: Episode, cfg: EnvConfig, role: str, acc: np.ndarray, first_node: int) -> np.ndarray:
    """(len(acc), features) float32 observations of the accounts `acc` of `role` (layout COMMON_FEATURES +
    ROLE_FEATURES[role]) from the episode's state; `first_node` = number of clients."""
    k = len(acc)
    common = [np.full(k, ep.round / cfg.rounds), (ep.wealth[acc] - ep.wealth0[acc]) / cfg.money_scale,
              ep.profit[acc] / cfg.money_scale, *(np.full(k, v) for v in ep.market)]
    pub = {name: counts[acc] for name, counts in ep.engine.record.counters.items()}
    cols = common + _role_features(role, ep.last[:, acc], ep.cum[:, acc], pub, max(ep.round, 1),
                                   int(ep.last[C["deals"], :first_node].sum()), cfg.money_scale)
    return np.clip(np.column_stack(cols), -cfg.obs_clip, cfg.obs_clip).astype(np.float32)


# -------------------------------------------------------------------------------------------------------- the env
class MarketEnv(ParallelEnv):
    """The market as a parallel multi-agent env; agent ids are `<role>_<row>` (row within the role)."""

    metadata: typing.ClassVar[dict[str, Any]] = {"name": "lilypad_market_v0", "render_modes": [],
                                                 "is_parallelizable": True}

    def __init__(self, config: Mapping[str, Any], stream: tuple[int, ...] = ()) -> None:
        """`config`: seed, market, mechanism, agents (as for `sim.build`) and `env` (EnvConfig).

        `stream` separates parallel copies (e.g. RLlib's worker and vector index): each gets its own seed stream.
        """
        self.parsed, self.cfg = parse_env(config)
        self._sections = builder_sections(config)
        self.stream = tuple(int(s) for s in stream)
        m = self.parsed.market
        sizes = {"node": m.n_nodes, "client": m.n_clients, "mediator": m.n_mediators}
        self.rows = {role: focal_rows(getattr(self.cfg.focal, role), sizes[role], f"env.focal.{role}")
                     for role in ROLES}
        self.heads = {role: self._heads(role) for role in ROLES}
        self.possible_agents = [f"{role}_{row}" for role in ROLES for row in self.rows[role]]
        self.agents: list[str] = []
        self.role_of = {a: a.rsplit("_", 1)[0] for a in self.possible_agents}
        self._obs_spaces = {role: gymnasium.spaces.Box(-self.cfg.obs_clip, self.cfg.obs_clip,
                                                       (len(COMMON_FEATURES) + len(ROLE_FEATURES[role]),),
                                                       np.float32) for role in ROLES}
        self._act_spaces = {role: self._action_space(self.heads[role]) for role in ROLES}
        self._seeds = np.random.SeedSequence(self.parsed.seed, spawn_key=self.stream)
        self.episode: Episode | None = None
        self.discount = self.cfg.discount

    # --- spaces
    def _heads(self, role: str) -> list[Head]:
        group_cls = typing.get_type_hints(Actions)[ROLE_GROUP[role]]
        fields = {f.name for f in dataclasses.fields(group_cls)}
        heads = []
        for i, name in enumerate(getattr(self.cfg.actions, role)):
            field_name, values = HEADS[role][name]
            require(field_name in fields, f"env.actions.{role}[{i}]", name,
                    f"a head whose field the engine supports (agents.actions has no `{field_name}` yet)")
            heads.append(Head(name, field_name, values(self.cfg)))
        return heads

    @staticmethod
    def _action_space(heads: list[Head]) -> gymnasium.Space:
        if len(heads) == 1:
            return gymnasium.spaces.Discrete(heads[0].n)
        return gymnasium.spaces.MultiDiscrete([h.n for h in heads])

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
        self._first = {"node": sim.market.facts.first_node, "client": 0, "mediator": sim.market.facts.first_mediator}
        self._agent_accounts = np.array([self.account(a) for a in self.possible_agents], dtype=np.int64)
        self.agents = list(self.possible_agents)
        return self._observations(), {a: {"episode_seed": episode_seed} for a in self.agents}

    @staticmethod
    def _wealth(engine: Any, n: int) -> np.ndarray:
        return engine.ledger.balance[:n] + engine.ledger.escrow[:n]

    def joint_actions(self, actions: Mapping[str, Any]) -> Actions:
        """The round's `Actions`: every agent's scripted behaviour, overwritten by the focal agents' choices."""
        ep = self.episode
        joint = ep.population.actions(ep.round)
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
            table = np.vstack([ep.last[[C[n] for n in ROLE_COUNTERS[role]]][:, acc], ep.profit[acc],
                               ep.penalty_last[acc]]).T.tolist()
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
        return {"client": slice(0, f["node"]), "node": slice(f["node"], f["mediator"]),
                "mediator": slice(f["mediator"], n)}

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

