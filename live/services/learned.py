"""A learned (RLlib) node policy acting for a live resource provider, through the node's action interface.

The provider's own record (its finished deals, as the chain shows them, and its balance) is kept in the twin's
counter layout (`marl.counters`) and the public record's (`sim.public_record`), and turned into the observation
vector by the env's own `marl.observations.observation_matrix`, so the live policy sees exactly the features it was
trained on. The restored module (`marl.rllib.LearnedPolicy`) picks the discrete choices and the env's own action
heads (`marl.heads`) write them into the provider's `NodeActions`, as `MarketEnv.joint_actions` does in the twin.

Live quantities the twin has per round are taken per finished deal: a "round" is one deal of this node, and the
market shares (fill, check share, reject share) are this node's last deal's (a provider sees no other deals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from marl.counters import COUNTERS
from marl.observations import observation_matrix
from mechanisms.actions import NodeActions
from mechanisms.protocol import DealState
from sim.public_record import COUNTERS as PUBLIC

if TYPE_CHECKING:  # Ray and torch load only when a learned policy is restored
    from marl.env import MarketEnv
    from marl.rllib import LearnedPolicy

S = DealState
SUBMITTED = frozenset(
    {S.ResultsAccepted, S.MediationAccepted, S.MediationRejected, S.TimeoutJudgeResults, S.TimeoutMediateResults}
)
CHECKED = frozenset({S.MediationAccepted, S.MediationRejected, S.TimeoutMediateResults})


@dataclass(frozen=True)
class DealOutcome:
    """What a provider knows of one of its deals once it ended (state on chain, its own cheat and bribe)."""

    state: DealState
    cheated: bool
    bribe: int  # offered to the mediator (0 = none)
    wealth: int  # the node's balance (free + held) after the deal


@dataclass
class NodeRecord:
    """One node's running record in the env's layout (arrays of one account)."""

    wealth0: int | None = None
    wealth: int = 0
    rounds: int = 0
    profit: int = 0
    last: np.ndarray = field(default_factory=lambda: np.zeros((len(COUNTERS), 1), dtype=np.int64))
    cum: np.ndarray = field(default_factory=lambda: np.zeros((len(COUNTERS), 1), dtype=np.int64))
    public: dict[str, np.ndarray] = field(default_factory=lambda: {k: np.zeros(1, dtype=np.int64) for k in PUBLIC})
    market: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def start(self, wealth: int) -> None:
        if self.wealth0 is None:
            self.wealth0 = self.wealth = int(wealth)

    def add(self, o: DealOutcome) -> None:
        """Fold one finished deal in (as `marl.episode.record_round` folds a round)."""
        submitted, checked = o.state in SUBMITTED, o.state in CHECKED
        rejected = o.state == S.MediationRejected
        offered = checked and o.cheated and o.bribe > 0
        row = dict.fromkeys(COUNTERS, 0)
        row.update(
            deals=1,
            submitted=int(submitted),
            cheated=int(o.cheated),
            fake_accepted=int(o.cheated and o.state in (S.ResultsAccepted, S.MediationAccepted)),
            judged=int(submitted),
            checked=int(checked),
            rejected=int(rejected),
            mediated=int(checked),
            bribes_offered=int(offered),
            bribes_taken=int(offered and o.state == S.MediationAccepted),
            bribe_amount=o.bribe if offered else 0,
        )
        self.last = np.array([[row[k]] for k in COUNTERS], dtype=np.int64)
        self.cum += self.last
        for name, hit in (("jobs", True), ("submitted", submitted), ("checked", checked), ("failed", rejected)):
            self.public[name] += int(hit)
        self.start(o.wealth)
        self.profit, self.wealth = int(o.wealth) - self.wealth, int(o.wealth)
        self.rounds += 1
        self.market = np.array([1.0, float(checked), float(rejected)])

    def episode_view(self) -> Any:
        """The attributes of `marl.episode.Episode` that `observation_matrix` reads, for this one account."""
        w0 = self.wealth if self.wealth0 is None else self.wealth0
        return SimpleNamespace(
            round=self.rounds,
            wealth=np.array([self.wealth]),
            wealth0=np.array([w0]),
            profit=np.array([self.profit]),
            market=self.market,
            engine=SimpleNamespace(record=SimpleNamespace(counters=self.public)),
            last=self.last,
            cum=self.cum,
        )


class LearnedNode:
    """A restored RLlib node module as a live provider's policy (the strategy `act` interface)."""

    def __init__(self, policy: LearnedPolicy, env: MarketEnv, agent: str, seed: int) -> None:
        if agent not in env.possible_agents:
            raise ValueError(f"agent={agent!r} is invalid: allowed one of the trained agents {env.possible_agents}")
        self.policy, self.cfg, self.agent = policy, env.cfg, agent
        self.heads = env.heads["node"]
        self.rng = np.random.default_rng(np.random.SeedSequence(seed))
        self.record = NodeRecord()
        self.decisions: list[tuple[np.ndarray, np.ndarray]] = []  # (observation, choice) per deal, for traces

    @classmethod
    def from_run(cls, run_dir: str | Path, index: int, seed: int) -> LearnedNode:
        """The trained node of an `experiments.train` run directory (its latest checkpoint) for live node `index`:
        the run's `index`-th focal node, wrapping around."""
        from experiments.evaluate import resolve
        from marl.env import MarketEnv
        from marl.rllib import LearnedPolicy

        env_cfg, checkpoint, mapping = resolve(
            {"run_dir": str(run_dir), "episodes": 1, "eval_seed": 0, "explore": True}
        )
        env = MarketEnv(env_cfg)
        nodes = [a for a in env.possible_agents if env.role_of[a] == "node"]
        if not nodes:
            raise ValueError(f"run_dir={str(run_dir)!r} is invalid: allowed a run that trained nodes (env.focal.node)")
        return cls(LearnedPolicy.from_checkpoint(checkpoint, mapping, env), env, nodes[index % len(nodes)], seed)

    def observation(self) -> np.ndarray:
        return observation_matrix(self.record.episode_view(), self.cfg, "node", np.zeros(1, dtype=np.int64), 0)[0]

    def act(self, rows: np.ndarray, out: NodeActions, round_index: int) -> None:
        obs = self.observation()
        choice = np.asarray(self.policy.act({self.agent: obs}, self.rng)[self.agent], dtype=np.int64).reshape(1, -1)
        for k, head in enumerate(self.heads):
            head.write(out, rows, choice[:, k])
        self.decisions.append((obs, choice[0]))

    def see(self, outcome: DealOutcome | None, wealth: int) -> None:
        """The provider's feedback: its balance at start (outcome None), then each finished deal."""
        if outcome is None:
            self.record.start(wealth)
        else:
            self.record.add(outcome)
