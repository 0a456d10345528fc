"""A learned (RLlib) policy acting for a live resource provider, job creator or mediator, through its role's action
interface.

The party's own record (its finished deals, as the chain shows them, and its balance) is kept in the twin's
counter layout (`marl.counters`) and the public record's (`sim.public_record`), and turned into the observation
vector by the env's own `marl.observations.observation_matrix`, so the live policy sees exactly the features it was
trained on. The restored module (`marl.rllib.LearnedPolicy`) picks the discrete choices and the env's own action
heads (`marl.heads`) write them into the party's `NodeActions`, `ClientActions` or `MediatorActions`, as
`MarketEnv.joint_actions` does in the twin.

Live quantities the twin has per round are taken per finished deal: a "round" is one deal of this party (for a
mediator, one deal it mediated), and the market shares (fill, check share, reject share) are its last deal's (a
party sees no other deals): a mediator's share of the round's mediations is then its whole round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from marl.counters import COUNTERS
from marl.observations import observation_matrix
from mechanisms.actions import ClientActions, MediatorActions, NodeActions
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
    """What a party knows of one of its deals once it ended: the state on chain, whether the result was fake (the
    node's own choice; for a mediator, what its re-run showed) and the bribe the node offered."""

    state: DealState
    cheated: bool
    bribe: int  # offered to the mediator (0 = none)
    wealth: int  # the party's balance (free + held) after the deal


#: role -> the public-record counters one finished deal adds to (sim.public_record): the node's as node, the
#: client's as client, the mediator's as a seat on the deal's mediation
PUBLIC_OF = {
    "node": lambda submitted, checked, rejected: (
        ("jobs", True),
        ("submitted", submitted),
        ("checked", checked),
        ("failed", rejected),
    ),
    "client": lambda submitted, checked, rejected: (("client_jobs", True), ("client_checks", checked)),
    "mediator": lambda submitted, checked, rejected: (("mediations", checked),),
}
LEARNED_ROLES = tuple(PUBLIC_OF)


@dataclass
class AgentRecord:
    """One party's running record in the env's layout (arrays of one account). The per-deal counters are the
    twin's for both parties of a deal; the public ones are the role's own."""

    role: str = "node"
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
        public = PUBLIC_OF[self.role](submitted, checked, rejected)
        for name, hit in public:
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


class LearnedAgent:
    """A restored RLlib module of `role` (node, client or mediator) as a live party's policy (the strategy `act`
    interface)."""

    def __init__(self, policy: LearnedPolicy, env: MarketEnv, agent: str, seed: int, role: str = "node") -> None:
        if role not in LEARNED_ROLES:
            raise ValueError(f"role={role!r} is invalid: allowed one of {list(LEARNED_ROLES)}")
        if agent not in env.possible_agents or env.role_of[agent] != role:
            trained = [a for a in env.possible_agents if env.role_of[a] == role]
            raise ValueError(f"agent={agent!r} is invalid: allowed one of the trained {role}s {trained}")
        self.policy, self.cfg, self.agent, self.role = policy, env.cfg, agent, role
        self.heads = env.heads[role]
        self.rng = np.random.default_rng(np.random.SeedSequence(seed))
        self.record = AgentRecord(role)
        self.decisions: list[tuple[np.ndarray, np.ndarray]] = []  # (observation, choice) per deal, for traces

    @classmethod
    def from_run(cls, run_dir: str | Path, index: int, seed: int, role: str = "node") -> LearnedAgent:
        """The trained `role` of an `experiments.train` run directory (its latest checkpoint) for live party
        `index`: the run's `index`-th focal agent of that role, wrapping around."""
        from experiments.evaluate import resolve
        from marl.env import MarketEnv
        from marl.rllib import LearnedPolicy

        env_cfg, checkpoint, mapping = resolve(
            {"run_dir": str(run_dir), "episodes": 1, "eval_seed": 0, "explore": True}
        )
        env = MarketEnv(env_cfg)
        agents = [a for a in env.possible_agents if env.role_of[a] == role]
        if not agents:
            raise ValueError(
                f"run_dir={str(run_dir)!r} is invalid: allowed a run that trained {role}s (env.focal.{role})"
            )
        return cls(
            LearnedPolicy.from_checkpoint(checkpoint, mapping, env), env, agents[index % len(agents)], seed, role
        )

    def observation(self) -> np.ndarray:
        # one deal per round: a mediator's round is the one mediation it sat on (the share the mediator features read)
        view = self.record.episode_view()
        return observation_matrix(view, self.cfg, self.role, np.zeros(1, dtype=np.int64), 0, market_deals=1)[0]

    def act(self, rows: np.ndarray, out: NodeActions | ClientActions | MediatorActions, round_index: int) -> None:
        obs = self.observation()
        choice = np.asarray(self.policy.act({self.agent: obs}, self.rng)[self.agent], dtype=np.int64).reshape(1, -1)
        for k, head in enumerate(self.heads):
            head.write(out, rows, choice[:, k])
        self.decisions.append((obs, choice[0]))

    def see(self, outcome: DealOutcome | None, wealth: int) -> None:
        """The party's feedback: its balance at start (outcome None), then each finished deal."""
        if outcome is None:
            self.record.start(wealth)
        else:
            self.record.add(outcome)
