"""Third-party staking behind nodes: stakers share a node's fees and its slashing, and clients may prefer stake.

A node's own collateral is limited by its own wealth; staking lets outsiders vouch for a node with their money,
which the twin uses to ask whether delegated skin in the game deters cheating (the stakers lose when their node is
caught) and whether it concentrates jobs on well-backed nodes.

* At setup, staker i (of `market.n_stakers`) escrows `stakes[i % len]` behind node `i mod n_nodes`
  (Reason.Stake, PaidIn); stakes stay in escrow for the run. A staker's stake is its escrow at the round's start.
* A node proven to cheat (MediationRejected, not a forced error, not excused) loses `slash_bps` of every stake
  behind it, each floored on its own, to `slash_to`.
* Otherwise, when the node is paid, it pays its stakers `fee_share_bps` of the job cost, split pro rata to stake
  (floor per staker; the rounding remainder stays with the node) at Step.Settle (Reason.Reward, Spent).
* With `prefer_stake`, the solver ranks offers by `price x BPS // weight` with
  `weight = BPS + min(stake, full_weight_stake) x max_bonus_bps // full_weight_stake`; nodes with less than
  `min_stake` behind them are excluded. Ranking is an additive hook (each ranking mechanism adjusts the previous
  one's prices, so reputation and stake preferences compound): with `prefer_stake: false` this mechanism does not
  take part in it, and only the other ranking mechanisms (reputation) apply.

Each node posts one offer a round, so it has at most one deal and every staker is touched by at most one deal per
round. List after the base mechanism: fees read `DealBatch.paid`, set by the base mechanism's `settle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from mechanisms.base import MarketFacts, Mechanism, register
from mechanisms.bounds import MoneyBounds
from mechanisms.config import Length, Range, require
from mechanisms.deals import DealBatch, RoundContext, require_context
from mechanisms.hooks import Columns, hook_columns
from mechanisms.money import BPS, MAX_AMOUNT, Amount, Multiplier, Pool, Share, mul_bps
from mechanisms.protocol import Direction, Reason, Step
from mechanisms.transfers import TransferBuilder, Transfers

_POOL_OF = {"burn": Pool.Burn, "protocol": Pool.Protocol, "jackpot": Pool.Jackpot}


@dataclass(frozen=True)
class StakingConfig:
    stakes: Annotated[tuple[Amount, ...], Length(1)] = (1_000,)  # staker i: stakes[i % len] behind node i mod n_nodes
    slash_bps: Share = 5_000  # share of every stake behind a node slashed when the node is proven to cheat
    slash_to: Literal["burn", "protocol", "jackpot", "client"] = "burn"  # client: the client who caught the cheat
    fee_share_bps: Share = 1_000  # share of the node's job payment paid to its stakers, pro rata to stake
    prefer_stake: bool = False  # the solver prefers nodes with more stake behind them
    full_weight_stake: Annotated[int, Range(1, MAX_AMOUNT)] = 1_000  # prefer_stake: stake for the full bonus
    max_bonus_bps: Multiplier = 10_000  # prefer_stake: weight = BPS + bonus; effective price = price x BPS // weight
    min_stake: Amount = 0  # prefer_stake: nodes with less stake behind them are not matched


@register
class Staking(Mechanism):
    name = "staking"
    Config = StakingConfig
    columns = hook_columns(settle=Columns(reads=("state", "forced_error", "excused", "paid")))

    def __init__(self, config: StakingConfig) -> None:
        super().__init__(config)
        self.layout: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None

    def validate(self, facts: MarketFacts, path: str) -> None:
        c = self.config
        require(facts.n_stakers > 0, f"{path}.stakes", list(c.stakes), "a market with stakers (market.n_stakers >= 1)")
        require(
            max(c.stakes) <= facts.staker_balance,
            f"{path}.stakes",
            list(c.stakes),
            f"amounts at most market.staker_balance ({facts.staker_balance})",
        )

    def bound_money(self, bounds: MoneyBounds, path: str) -> None:
        """The pro rata fee split multiplies a fee by a stake; ranking multiplies a capped stake by the bonus and
        the effective price so far by BPS."""
        c = self.config
        fee = mul_bps(bounds.job_cost, c.fee_share_bps)
        bounds.product(
            f"{path}.stakes",
            list(c.stakes),
            fee,
            "a staker's fee share x its stake (the pro rata split)",
            size=max(c.stakes),
        )
        if c.prefer_stake:
            bounds.product(
                f"{path}.max_bonus_bps", c.max_bonus_bps, c.full_weight_stake, "full_weight_stake x max_bonus_bps"
            )
            bounds.product(
                f"{path}.prefer_stake",
                c.prefer_stake,
                BPS,
                "the effective price so far x 10000",
                size=bounds.rank,
                allowed="false with these node prices and this stack order",
            )

    def takes_part(self, hook: str) -> bool:
        return super().takes_part(hook) and (hook != "rank_offers" or self.config.prefer_stake)

    def setup(self, facts: MarketFacts) -> Transfers:
        """Every staker escrows its stake behind its node; remember who backs whom."""
        i = np.arange(facts.n_stakers, dtype=np.int64)
        stakers = facts.first_staker + i
        backers = np.full((facts.n_nodes, -(-facts.n_stakers // facts.n_nodes)), -1, dtype=np.int64)
        backers[i % facts.n_nodes, i // facts.n_nodes] = stakers
        self.layout = (facts.first_node, stakers, facts.first_node + i % facts.n_nodes, backers)
        amount = np.asarray(self.config.stakes, dtype=np.int64)[i % len(self.config.stakes)]
        out = TransferBuilder(np.full(facts.n_stakers, -1, dtype=np.int64))
        out.add(Step.Agree, np.ones(facts.n_stakers, dtype=bool), stakers, amount, Reason.Stake, Direction.PaidIn)
        return out.build()

    def _layout(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        if self.layout is None:
            raise RuntimeError("staking: setup(facts) must run before the first round (the engine calls it)")
        return self.layout

    def node_stake(self, context: RoundContext) -> np.ndarray:
        """Total stake behind each account (nonzero only for backed nodes) at the round's start."""
        _, stakers, backs, _ = self._layout()
        total = np.zeros(len(context.escrow), dtype=np.int64)
        np.add.at(total, backs, context.escrow[stakers])
        return total

    def rank_offers(self, node: np.ndarray, price: np.ndarray, context: RoundContext) -> np.ndarray:
        c = self.config
        stake = self.node_stake(context)[node]
        weight = BPS + np.minimum(stake, c.full_weight_stake) * c.max_bonus_bps // c.full_weight_stake
        return np.where(stake >= c.min_stake, np.asarray(price, dtype=np.int64) * BPS // weight, -1)

    def destination(self, deals: DealBatch) -> np.ndarray:
        if self.config.slash_to == "client":
            return deals.client
        return np.full(len(deals), deals.pool_base + _POOL_OF[self.config.slash_to], dtype=np.int64)

    def settle(self, deals: DealBatch, out: TransferBuilder) -> None:
        c = self.config
        first_node, _, _, table = self._layout()
        escrow = require_context(deals, self.name).escrow
        backers = table[deals.node - first_node]  # (deals, stakers per node), -1 pads
        stake = np.where(backers >= 0, escrow[np.maximum(backers, 0)], 0)
        total = stake.sum(axis=1)
        cheated = deals.node_at_fault()
        fee = np.where(deals.paid & ~cheated, mul_bps(deals.job_cost, c.fee_share_bps), 0)
        dest = self.destination(deals)
        for k in range(table.shape[1]):
            staker, has = backers[:, k], backers[:, k] >= 0
            out.add(
                Step.Settle,
                cheated & has,
                staker,
                mul_bps(stake[:, k], c.slash_bps),
                Reason.Stake,
                Direction.Slashed,
                dest,
            )
            out.add(
                Step.Settle,
                has,
                deals.node,
                fee * stake[:, k] // np.maximum(total, 1),
                Reason.Reward,
                Direction.Spent,
                staker,
            )
