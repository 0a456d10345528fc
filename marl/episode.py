"""One episode's running state: per-account wealth, counters, rewards and penalties, updated round by round.

`record_round` is the one place a settled round becomes rewards; `MarketEnv.step` calls it, and so does any replay
of the env's observations outside the env (e.g. `experiments.analysis.learned`), so both see the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from marl.config import EnvConfig
from marl.counters import COUNTERS, C, ratio, round_counts
from mechanisms.protocol import DealState
from sim.engine import RoundResult


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
    history: Any = None  # agents.repeated.RepeatedPlay: partners' last public actions (env.partner_action/repeated)

    @classmethod
    def start(cls, seed: int, engine: Any, population: Any, wealth: np.ndarray) -> Episode:
        n = len(wealth)

        def ints() -> np.ndarray:
            return np.zeros(n, dtype=np.int64)

        def counts() -> np.ndarray:
            return np.zeros((len(COUNTERS), n), dtype=np.int64)

        return cls(
            seed=seed,
            engine=engine,
            population=population,
            round=0,
            wealth0=wealth.copy(),
            wealth=wealth,
            last=counts(),
            cum=counts(),
            profit=ints(),
            reward_last=np.zeros(n),
            reward=np.zeros(n),
            penalty_last=ints(),
            penalty=ints(),
            market=np.zeros(3),
        )


ACCEPTED = (DealState.ResultsAccepted, DealState.TimeoutJudgeResults, DealState.MediationAccepted)


def client_utility(deals: Any, n: int, cfg: EnvConfig) -> np.ndarray:
    """Per account: `client_value` per correct result its client accepted, minus `client_damage` per fake."""
    out = np.zeros(n)
    accepted = np.isin(deals.state, [int(s) for s in ACCEPTED])
    wrong = deals.wrong()
    np.add.at(out, deals.client[accepted & ~wrong], float(cfg.client_value))
    np.add.at(out, deals.client[accepted & wrong], -float(cfg.client_damage))
    return out


def record_round(ep: Episode, result: RoundResult, cfg: EnvConfig, first_mediator: int) -> None:
    """Fold a settled round into the episode's totals and every account's reward."""
    n = len(ep.wealth)
    wealth = ep.engine.ledger.balance[:n] + ep.engine.ledger.escrow[:n]
    ep.profit, ep.wealth = wealth - ep.wealth, wealth
    ep.last = round_counts(result, n)
    ep.cum += ep.last
    ep.penalty_last = np.zeros(n, dtype=np.int64)
    meds = slice(first_mediator, n)
    ep.penalty_last[meds] = cfg.bribe_penalty * ep.last[C["bribes_taken"], meds]
    ep.penalty += ep.penalty_last
    d = result.deals
    ep.reward_last = cfg.reward_scale * (ep.profit - ep.penalty_last + client_utility(d, n, cfg))
    ep.reward += ep.reward_last
    ep.market = np.array(
        [
            ratio(len(d), result.posted_jobs),
            ratio(d.checked.sum(), d.judged.sum()),
            ratio((d.state == DealState.MediationRejected).sum(), d.mediated.sum()),
        ]
    )
    ep.round += 1
