"""Mediation by a consortium: n mediators, a k-of-n verdict, escalation to larger panels when there is no consensus.

Members are drawn from the mediators both parties trust (uniformly, by stake, by reputation, or the cheapest
bids); each is paid `member_fee` (or its bid), replacing the base mechanism's single-mediator fee. Each member
votes as its behaviour dictates (see mechanisms.voting). A verdict needs at least k of n votes on one side;
k > n/2, so at most one side can reach it. Without consensus the panel grows (x `growth` per level, bounded by
`max_depth` and by the mutually trusted set) and votes again; at the last level the `fallback` rule decides.
Every member is paid its fee and re-runs the job unless it was bought; members who voted against the final verdict
can forfeit their fee beyond their re-run cost (`slash_dissent`). With `anonymous`, votes and fee payouts are not
attributable on the public record: only the verdict is, so a cartel cannot verify its members kept their side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from mechanisms.base import MarketFacts, Mechanism, register
from mechanisms.bounds import MoneyBounds
from mechanisms.config import Range, require
from mechanisms.deals import CARTEL_FAKE, NO_MEDIATOR, DealBatch
from mechanisms.hooks import Columns, hook_columns
from mechanisms.lilypad_v2 import in_states, pick_uniform
from mechanisms.money import BPS, MAX_AMOUNT, Amount, Pool
from mechanisms.protocol import DealState, Direction, Reason, Step
from mechanisms.transfers import TransferBuilder
from mechanisms.voting import VOTE_COLUMNS, mediator_votes

S = DealState
MAX_SEATS = 63  # panels are int64 bit masks over mediators
Selection = Literal["uniform", "stake", "reputation", "cheapest"]
FeePayer = Literal["client", "loser", "split"]
Fallback = Literal["majority", "accept", "reject"]
PenaltyTo = Literal["burn", "protocol", "payer"]
Seats = Annotated[int, Range(1, MAX_SEATS)]


@dataclass(frozen=True)
class ConsortiumConfig:
    size: Seats = 3  # n: members of the first panel
    threshold: Seats = 2  # k: votes on one side needed for a verdict (n/2 < k <= n)
    selection: Selection = "uniform"
    member_fee: Amount = 60  # paid to each member who sits on the panel; must cover the re-run
    bids: tuple[Amount, ...] = ()  # fee bid per mediator index (selection=cheapest: members are paid their bids)
    fee_payer: FeePayer = "client"  # loser = the node if rejected, else the client
    max_depth: Annotated[int, Range(0, 6)] = 1  # escalation levels after the first panel
    growth: Annotated[int, Range(2, 8)] = 2  # panel size multiplier per escalation level
    fallback: Fallback = "majority"  # verdict if the last panel has no consensus (majority: ties accept)
    slash_dissent: bool = True  # members against the final verdict forfeit their fee share
    dissent_to: PenaltyTo = "burn"  # where a forfeited share goes: burn, protocol, or back to the fee payer
    anonymous: bool = False  # votes and fee payouts not attributable on the public record

    def validate(self, path: str) -> None:
        require(
            self.size // 2 < self.threshold <= self.size,
            f"{path}.threshold",
            self.threshold,
            f"an integer in [{self.size // 2 + 1}, {self.size}] (more than half of size, at most size)",
        )


def _first_set(cum: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per row, the first column where the running weight exceeds x."""
    return np.argmax(cum > x[:, None], axis=1)


@register
class Consortium(Mechanism):
    name = "consortium"
    Config = ConsortiumConfig
    columns = hook_columns(
        set_terms=Columns(
            reads=("bribe", "mediation_fee"),
            updates=("client_exposure", "node_exposure"),
            sets=("mediation_fee", "consortium.per_member"),
        ),
        select_mediators=Columns(reads=("checked",), sets=("mediator", "consortium.order")),
        judge=Columns(
            reads=(*VOTE_COLUMNS, "mediated", "consortium.order", "consortium.per_member"),
            sets=(
                "verdict_accept",
                "panel",
                "dissenters",
                "bribe_accepted",
                "consortium.votes",
                "consortium.bribed",
                "consortium.size",
                "consortium.share",
            ),
        ),
        settle_mediation=Columns(
            reads=(
                "state",
                "mediation_fee",
                "verdict_accept",
                "mediator_collude",
                "result",
                "bribe",
                "consortium.order",
                "consortium.share",
                "consortium.bribed",
                "consortium.votes",
            )
        ),
        public_votes=Columns(reads=("mediated", "consortium.order", "consortium.votes", "consortium.size")),
    )

    def __init__(self, config: ConsortiumConfig) -> None:
        super().__init__(config)
        self.draws_per_deal = self.max_seats  # one uniform per panel seat

    def validate(self, facts: MarketFacts, path: str) -> None:
        c = self.config
        require(
            c.size <= facts.n_mediators, f"{path}.size", c.size, f"at most market.n_mediators ({facts.n_mediators})"
        )
        require(
            c.member_fee >= facts.max_compute_cost,
            f"{path}.member_fee",
            c.member_fee,
            f">= the largest re-run cost in the market ({facts.max_compute_cost}), so a member never pays to mediate",
        )
        if c.selection == "cheapest":
            require(
                len(c.bids) == facts.n_mediators,
                f"{path}.bids",
                list(c.bids),
                f"one bid per mediator ({facts.n_mediators})",
            )
            require(
                min(c.bids) >= facts.max_compute_cost,
                f"{path}.bids",
                list(c.bids),
                f"bids >= the largest re-run cost ({facts.max_compute_cost})",
            )

    def bound_money(self, bounds: MoneyBounds, path: str) -> None:
        """The client escrows the largest panel's fees; a briber may pay every seat; a losing node may pay the fees."""
        c, seats = self.config, self._seats(bounds.facts.n_mediators)
        fee_field = f"{path}.bids" if c.selection == "cheapest" else f"{path}.member_fee"
        fee_value = list(c.bids) if c.selection == "cheapest" else c.member_fee
        top = self._top_bids(seats) if c.selection == "cheapest" else c.member_fee * seats
        bounds.term("mediation_fee", top, fee_field, fee_value, "client")
        bounds.expose("node", MAX_AMOUNT * (seats - 1), f"{path}.size", c.size)
        if c.fee_payer != "client":
            bounds.expose("node", top, fee_field, fee_value)

    @property
    def max_seats(self) -> int:
        return min(self.config.size * self.config.growth**self.config.max_depth, MAX_SEATS)

    def _seats(self, n_mediators: int) -> int:
        return min(self.max_seats, n_mediators)

    def requires(self) -> dict[str, str]:
        """Panels replace the base mechanism's single mediator but settle on its escrows and terms."""
        return {"lilypad_v2": ""}

    def set_terms(self, deals: DealBatch) -> None:
        """The fee escrow covers the largest panel; a briber may have to pay every seat."""
        seats = self._seats(len(deals.mediator_accounts))
        per_member = np.full(len(deals), self.config.member_fee, dtype=np.int64)
        top = self._top_bids(seats) if self.config.selection == "cheapest" else self.config.member_fee * seats
        deals.client_exposure = deals.client_exposure + (top - deals.mediation_fee)
        deals.mediation_fee = np.full(len(deals), top, dtype=np.int64)
        deals.node_exposure = deals.node_exposure + deals.bribe * (seats - 1)
        if self.config.fee_payer != "client":
            deals.node_exposure = deals.node_exposure + deals.mediation_fee
        deals.extra["consortium.per_member"] = per_member

    def _top_bids(self, seats: int) -> int:
        return int(sum(sorted(self.config.bids, reverse=True)[:seats]))

    def select_mediators(self, deals: DealBatch) -> None:
        """Order the mutually trusted mediators into panel seats (seat 0 leads); -1 where the set runs out."""
        n_med = len(deals.mediator_accounts)
        seats = self._seats(n_med)
        mask = np.where(deals.checked, deals.mutual_mediators, 0)
        order = np.full((len(deals), seats), NO_MEDIATOR, dtype=np.int64)
        sel = self.config.selection
        if sel == "cheapest":
            key = np.asarray(self.config.bids, dtype=np.int64) * n_med + np.arange(n_med)
            member = (mask[:, None] >> np.arange(n_med)) & 1 == 1
            ranked = np.argsort(np.where(member, key, np.iinfo(np.int64).max), axis=1, kind="stable")[:, :seats]
            order = np.where(np.take_along_axis(member, ranked, axis=1), ranked, NO_MEDIATOR)
        else:
            weight = self._weights(deals, n_med) if sel != "uniform" else None
            for s in range(seats):
                u = self.uniforms(deals, s)
                if weight is None:
                    pick = pick_uniform(mask, u, n_med)
                else:
                    w = np.where((mask[:, None] >> np.arange(n_med)) & 1 == 1, weight[None, :], 0)
                    total = w.sum(axis=1)
                    pick = np.where(
                        total > 0, _first_set(np.cumsum(w, axis=1), np.floor(u * total).astype(np.int64)), NO_MEDIATOR
                    )
                order[:, s] = pick
                mask = np.where(pick >= 0, mask & ~np.left_shift(1, np.clip(pick, 0, None)), mask)
        deals.extra["consortium.order"] = order
        deals.mediator = np.where(deals.checked, order[:, 0], NO_MEDIATOR)

    def _weights(self, deals: DealBatch, n_med: int) -> np.ndarray:
        """Selection weight per mediator index (>= 1 so every trusted mediator can be drawn)."""
        ctx, acc = deals.context, deals.mediator_accounts
        if self.config.selection == "stake":
            return 1 + ctx.escrow[acc]
        sat, dissent = ctx.counters["mediations"][acc], ctx.counters["dissents"][acc]
        return 1 + (BPS * (sat - dissent + 1)) // (sat + 2)  # beta(1,1) share of votes with the verdict

    def judge(self, deals: DealBatch) -> None:
        c = self.config
        order = deals.extra["consortium.order"]
        seats = order.shape[1]
        seated = order >= 0
        votes = np.zeros(order.shape, dtype=bool)
        bribed = np.zeros(order.shape, dtype=bool)
        for s in range(seats):
            votes[:, s], bribed[:, s] = mediator_votes(deals, order[:, s])
        votes &= seated
        n = len(deals)
        verdict = np.zeros(n, dtype=bool)
        size = np.zeros(n, dtype=np.int64)
        open_ = deals.mediated.copy()
        available = seated.sum(axis=1)
        for depth in range(c.max_depth + 1):
            size_d = np.minimum(min(c.size * c.growth**depth, seats), available)
            k_d = -(-c.threshold * size_d // c.size)  # ceil: the same share of a larger panel
            in_panel = np.arange(seats)[None, :] < size_d[:, None]
            accepts = (votes & in_panel).sum(axis=1)
            rejects = size_d - accepts
            decided = open_ & ((accepts >= k_d) | (rejects >= k_d))
            can_grow = (depth < c.max_depth) & (
                np.minimum(min(c.size * c.growth ** (depth + 1), seats), available) > size_d
            )
            final = open_ & (decided | ~can_grow)
            fallback = {"majority": accepts >= rejects, "accept": True, "reject": False}[c.fallback]
            verdict = np.where(final, np.where(decided, accepts >= k_d, fallback), verdict)
            size = np.where(final, size_d, size)
            open_ &= ~final
        in_panel = np.arange(seats)[None, :] < size[:, None]
        bit = np.left_shift(1, np.clip(order, 0, None))
        deals.verdict_accept = deals.mediated & verdict
        deals.panel = np.where(in_panel, bit, 0).sum(axis=1)
        deals.dissenters = np.where(in_panel & (votes != verdict[:, None]), bit, 0).sum(axis=1)
        deals.bribe_accepted = deals.mediated & (bribed & in_panel).any(axis=1)
        deals.extra["consortium.votes"] = votes
        deals.extra["consortium.bribed"] = bribed & in_panel
        deals.extra["consortium.size"] = size
        if c.selection == "cheapest":
            bids = np.asarray(c.bids, dtype=np.int64)[np.clip(order, 0, None)]
            deals.extra["consortium.share"] = np.where(in_panel, bids, 0)
        else:
            deals.extra["consortium.share"] = np.where(in_panel, deals.extra["consortium.per_member"][:, None], 0)
        # the client escrowed the largest panel's fees at the check (nobody knows the final panel then, on chain
        # neither); settle_mediation refunds the seats that never sat

    def settle_mediation(self, deals: DealBatch, out: TransferBuilder) -> None:
        c = self.config
        mediated = in_states(deals, S.MediationAccepted, S.MediationRejected)
        order, share = deals.extra["consortium.order"], deals.extra["consortium.share"]
        bribed, votes = deals.extra["consortium.bribed"], deals.extra["consortium.votes"]
        node_pays = self._node_share(deals, mediated)
        D = Direction
        out.add(Step.Mediate, mediated, deals.node, node_pays, Reason.MediationFee, D.Spent, deals.client)
        for s in range(order.shape[1]):
            member = deals.mediator_accounts[np.clip(order[:, s], 0, None)]
            seat = mediated & (share[:, s] > 0)
            dissent = seat & (votes[:, s] != deals.verdict_accept) & c.slash_dissent
            cartel_vote = deals.mediator_collude[np.clip(order[:, s], 0, None)] & (deals.result == CARTEL_FAKE)
            reran = seat & ~bribed[:, s] & ~cartel_vote
            # a dissenter keeps only what its re-run cost (it never pays to mediate) and forfeits the rest
            kept = np.where(dissent, np.where(reran, deals.compute_cost, 0), share[:, s])
            out.add(Step.Mediate, seat & bribed[:, s], deals.node, deals.bribe, Reason.Bribe, D.Spent, member)
            out.add(Step.Mediate, seat, deals.client, kept, Reason.MediationFee, D.PaidOut, member, hidden=c.anonymous)
            self._forfeit(deals, out, dissent, share[:, s] - kept)
            out.add(
                Step.Mediate,
                reran,
                member,
                deals.compute_cost,
                Reason.ComputeCost,
                D.Spent,
                deals.pool_base + Pool.Compute,
            )
        out.add(
            Step.Mediate,
            mediated,
            deals.client,
            deals.mediation_fee - share.sum(axis=1),
            Reason.MediationFee,
            D.Refunded,
        )

    def _node_share(self, deals: DealBatch, mediated: np.ndarray) -> np.ndarray:
        """What the node pays (to the client, who holds the whole fee in escrow) under the fee_payer rule: its share
        of what the final panel cost."""
        fee = deals.extra["consortium.share"].sum(axis=1)
        if self.config.fee_payer == "client":
            return np.zeros(len(deals), dtype=np.int64)
        if self.config.fee_payer == "split":
            return np.where(mediated, fee - fee // 2, 0)
        return np.where(mediated & ~deals.verdict_accept, fee, 0)

    def _forfeit(self, deals: DealBatch, out: TransferBuilder, dissent: np.ndarray, share: np.ndarray) -> None:
        dest = self.config.dissent_to
        if dest == "payer":
            out.add(Step.Mediate, dissent, deals.client, share, Reason.MediationFee, Direction.Refunded)
            return
        pool = deals.pool_base + (Pool.Burn if dest == "burn" else Pool.Protocol)
        out.add(
            Step.Mediate,
            dissent,
            deals.client,
            share,
            Reason.MediationFee,
            Direction.Slashed,
            pool,
            hidden=self.config.anonymous,
        )

    def public_votes(self, deals: DealBatch) -> dict[str, np.ndarray] | None:
        if self.config.anonymous:
            return None
        order, votes = deals.extra["consortium.order"], deals.extra["consortium.votes"]
        size = deals.extra["consortium.size"]
        seat = (np.arange(order.shape[1])[None, :] < size[:, None]) & deals.mediated[:, None]
        rows, cols = np.nonzero(seat)
        return {
            "deal_id": deals.deal_id[rows],
            "mediator": deals.mediator_accounts[order[rows, cols]],
            "accept": votes[rows, cols],
        }
