"""The deal contract's events -> the twin's own records: transfers (reason, direction, step) and the deal table.

The chain is the public record: every movement of value is a `Moved` event, every state entered a `StateChanged`.
Decoding turns them into `mechanisms.transfers.Transfers` (payer and payee as twin account ids through an address
book, deal ids from the terms' nonce) and into a table with the columns of `deals.parquet`
(`sim.records.DEAL_COLUMNS`), so every analysis of the twin runs on an on-chain history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from eth_abi import decode
from eth_utils import keccak, to_checksum_address

from live.chain.binding import Deployment, Terms
from live.chain.params import ChainParams
from mechanisms.deals import DealBatch
from mechanisms.money import BPS
from mechanisms.protocol import PATH, DealState, Direction, Reason, Step
from mechanisms.transfers import NOBODY, Transfers

ZERO = "0x0000000000000000000000000000000000000000"
TERMS_ABI = "(address,address,uint64,uint64,uint32,uint32,uint64,uint64)"
SIGS = {
    "DealCreated": keccak(text=f"DealCreated(bytes32,{TERMS_ABI})"),
    "StateChanged": keccak(text="StateChanged(bytes32,uint8,uint256[])"),
    "MediatorSelected": keccak(text="MediatorSelected(bytes32,address)"),
    "Staked": keccak(text="Staked(address,address,uint256,uint256)"),
    "PanelDrawn": keccak(text="PanelDrawn(bytes32,address[])"),
    "JackpotPaid": keccak(text="JackpotPaid(bytes32,address,uint256)"),
}
HONEST_REPLICA_PAID = keccak(text="HonestReplicaPaid(bytes32,address)")  # ReplicationModule
BRIBE_PROVEN = keccak(text="BribeProven(bytes32,address,address)")  # WhistleModule
REWARD_PASSED_ON = keccak(text="RewardPassedOn(bytes32,address,address,uint256)")  # WhistleModule
JACKPOT = "0x000000000000000000000000006a61636B706F74"  # JackpotModule.JACKPOT
FIRST_STAKER_ROLE = 7
FIRST_SEAT_ROLE = 192  # PanelModule.ROLE_FIRST_SEAT: seat s of the deal's consortium panel
REPLICA_ROLE = 255  # ReplicationModule.ROLE_REPLICA: the honest replica's node paid a rejected replica's slash
BURN = "0x000000000000000000000000000000000000dEaD"
MASK128 = (1 << 128) - 1


@dataclass
class History:
    """What the contract's events say, in log order."""

    terms: dict[bytes, Terms] = field(default_factory=dict)
    created: dict[bytes, int] = field(default_factory=dict)  # deal -> block of creation
    states: list[tuple[int, bytes, int]] = field(default_factory=list)  # (block, deal, state)
    mediator: dict[bytes, str] = field(default_factory=dict)
    backers: dict[str, list[str]] = field(default_factory=dict)  # node -> stakers in the contract's order
    panel: dict[bytes, list[str]] = field(default_factory=dict)  # deal -> consortium members in seat order
    honest: dict[bytes, str] = field(default_factory=dict)  # rejected replica -> the honest replica's node it paid
    bribes: dict[bytes, str] = field(default_factory=dict)  # deal -> the mediator that proved its node's bribe
    moved: list[tuple[bytes, str, str, int, int, int, int]] = field(default_factory=list)
    # (deal, payer, payee, amount, reason, direction, step)

    def final_state(self) -> dict[bytes, int]:
        out: dict[bytes, int] = {}
        for _, deal, state in self.states:
            out[deal] = state
        return out


def fetch(dep: Deployment, from_block: int | None = None, to_block: int | str = "latest") -> History:
    """Decode every event of the deal contract between two blocks (default: since its deployment; stakes posted
    earlier than `from_block` are missing from the stakers' roles)."""
    from_block = dep.block if from_block is None else from_block
    h = History()
    for module in (m for m in (dep.replication, dep.whistle) if m is not None):
        for topics, data, _ in dep.chain.logs(module.address, from_block, to_block):
            if topics[0] == HONEST_REPLICA_PAID:
                h.honest[topics[1]] = to_checksum_address(data[12:32])
            elif topics[0] == BRIBE_PROVEN:
                h.bribes[topics[1]] = to_checksum_address(topics[2][12:32])
            elif topics[0] == REWARD_PASSED_ON:  # the twin's whistleblowing.settle move
                to, amount = to_checksum_address(data[12:32]), int.from_bytes(data[32:64], "big")
                move = (int(Reason.Reward), int(Direction.Spent), int(Step.Settle))
                h.moved.append((topics[1], to_checksum_address(topics[2][12:32]), to, amount, *move))
    by_sig = {v: k for k, v in SIGS.items()}
    for topics, data, block in dep.chain.logs(dep.deals.address, from_block, to_block):
        kind = by_sig.get(topics[0])
        if kind is None:
            continue
        if kind == "Staked":
            node, staker = to_checksum_address(topics[1][12:]), to_checksum_address(topics[2][12:])
            if int.from_bytes(data[32:64], "big") == len(h.backers.get(node, [])):
                h.backers.setdefault(node, []).append(staker)
            continue
        deal = topics[1]
        if kind == "JackpotPaid":  # a round's payout to one claim: the twin's Step.Round transfer
            claimant, amount = to_checksum_address(topics[2][12:]), int.from_bytes(data[:32], "big")
            h.moved.append(
                (deal, JACKPOT, claimant, amount, int(Reason.Jackpot), int(Direction.Spent), int(Step.Round))
            )
        elif kind == "StateChanged":
            h.states.append((block, deal, int.from_bytes(data[:32], "big")))
            n = int.from_bytes(data[64:96], "big")
            for k in range(n):
                h.moved.append(_unpack(h, dep.protocol, deal, int.from_bytes(data[96 + 32 * k : 128 + 32 * k], "big")))
        elif kind == "MediatorSelected":
            h.mediator[deal] = to_checksum_address(data[12:32])
        elif kind == "PanelDrawn":
            (members,) = decode(["address[]"], data)
            h.panel[deal] = [to_checksum_address(a) for a in members]
        else:
            (t,) = decode([TERMS_ABI], data)
            h.terms[deal] = Terms(to_checksum_address(t[0]), to_checksum_address(t[1]), *t[2:])
            h.created[deal] = block
            h.states.append((block, deal, int(DealState.DealNegotiating)))  # implied by creation (batched deals)
    return h


def _unpack(h: History, protocol: str, deal: bytes, move: int) -> tuple[bytes, str, str, int, int, int, int]:
    """A packed move (Deals.StateChanged) with its roles resolved to addresses."""
    t = h.terms[deal]
    roles = {0: ZERO, 1: t.client, 2: t.node, 3: h.mediator.get(deal, ZERO), 4: BURN, 5: protocol, 6: JACKPOT}
    stakers, seats = h.backers.get(t.node, []), h.panel.get(deal, [])
    field = lambda shift: (move >> shift) & 0xFF  # noqa: E731

    def who(r: int) -> str:
        if r < FIRST_STAKER_ROLE:
            return roles[r]
        if r == REPLICA_ROLE:
            return h.honest[deal]
        return stakers[r - FIRST_STAKER_ROLE] if r < FIRST_SEAT_ROLE else seats[r - FIRST_SEAT_ROLE]

    return (deal, who(field(152)), who(field(160)), move & MASK128, field(128), field(136), field(144))


def transfers(h: History, book: Mapping[str, int]) -> Transfers:
    """The on-chain transfers as twin records: accounts through `book` (address -> account id), deal id = nonce."""
    n = len(h.moved)
    cols = np.zeros((7, n), dtype=np.int64)
    for i, (deal, payer, payee, amount, reason, direction, step) in enumerate(h.moved):
        cols[:, i] = (
            step,
            h.terms[deal].nonce,
            book[payer],
            NOBODY if payee == ZERO else book[payee],
            amount,
            reason,
            direction,
        )
    return Transfers(*cols, np.zeros(n, dtype=bool))


def visited_masks(h: History) -> dict[bytes, int]:
    """States each deal went through: the protocol's path to its last state (the state graph is a tree, and a
    batched deal logs only its terminal state)."""
    out: dict[bytes, int] = {}
    for deal, state in h.final_state().items():
        path = PATH.get(DealState(state)) or _path_to_open(DealState(state))
        out[deal] = sum(1 << int(st) for st in path)
    return out


def _path_to_open(state: DealState) -> tuple[DealState, ...]:
    """Path to a non-terminal state (a deal still open)."""
    full = next(p for p in PATH.values() if state in p)
    return full[: full.index(state) + 1]


def deal_batch(
    h: History,
    book: Mapping[str, int],
    params: ChainParams,
    mediators: Sequence[str],
    compute_cost: Sequence[int],
    pool_base: int,
) -> tuple[DealBatch, np.ndarray]:
    """The settled deals as a DealBatch (terms from the contract's formulas, outcome from the events) and their
    visited-state masks. Private columns the chain cannot see (cheated, bribes, collusion) are filled with what
    the record proves: a result mediation rejected counts as cheated; the rest stays false / zero."""
    ids = sorted(h.terms, key=lambda d: h.terms[d].nonce)
    t = [h.terms[d] for d in ids]
    final, masks = h.final_state(), visited_masks(h)
    col = lambda f: np.array([f(x) for x in t], dtype=np.int64)  # noqa: E731
    job_cost = col(lambda x: x.price * x.instructions)
    med_index = {a: i for i, a in enumerate(mediators)}
    module = col(lambda x: x.module)
    d = DealBatch(
        deal_id=col(lambda x: x.nonce),
        client=col(lambda x: book[x.client]),
        node=col(lambda x: book[x.node]),
        job=np.arange(len(t), dtype=np.int64),
        module=module,
        price=col(lambda x: x.price),
        instructions=col(lambda x: x.instructions),
        job_cost=job_cost,
        compute_cost=np.asarray(compute_cost, dtype=np.int64)[module] if len(t) else np.zeros(0, dtype=np.int64),
        mutual_mediators=col(lambda x: x.mediators),
        mediator_accounts=np.array([book[a] for a in mediators], dtype=np.int64),
        mediator_threshold=np.zeros(len(mediators), dtype=np.int64),
        pool_base=pool_base,
    )
    mult = col(lambda x: x.multiplier_bps)
    d.payment_collateral = job_cost * params.payment_collateral_bps // BPS
    d.results_collateral = np.maximum(params.min_deposit, job_cost * mult // BPS)
    d.submit_collateral = np.full(len(t), params.submit_timeout_collateral, dtype=np.int64)
    d.judge_collateral = np.full(len(t), params.judge_timeout_collateral, dtype=np.int64)
    d.mediation_fee = np.full(len(t), params.mediation_fee, dtype=np.int64)
    d.state = np.array([final[i] for i in ids], dtype=np.int64)
    d.mediator = np.array([med_index[h.mediator[i]] if i in h.mediator else -1 for i in ids], dtype=np.int64)
    d.checked = d.mediator >= 0
    d.cheated = d.state == int(DealState.MediationRejected)
    return d, np.array([masks[i] for i in ids], dtype=np.int64)


def deal_table(
    h: History,
    book: Mapping[str, int],
    params: ChainParams,
    mediators: Sequence[str],
    module_names: Sequence[str],
    compute_cost: Sequence[int],
    pool_base: int,
) -> pa.Table:
    """An on-chain history as a table with the columns of `deals.parquet` (round = block of creation)."""
    from sim.engine import RoundResult
    from sim.records import deal_table as twin_deal_table

    deals, visited = deal_batch(h, book, params, mediators, compute_cost, pool_base)
    result = RoundResult(0, deals, visited, transfers(h, book), 0, 0)
    table = twin_deal_table(result, module_names)
    ids = sorted(h.terms, key=lambda d: h.terms[d].nonce)
    blocks = pa.array([h.created[i] for i in ids], type=pa.int64())
    return table.set_column(table.schema.get_field_index("round"), table.schema.field("round"), blocks)


def log_tuple(log: Mapping[str, Any]) -> tuple[list[bytes], bytes, int]:
    """(topics, data, block) of a web3-formatted log."""
    return ([bytes(t) for t in log["topics"]], bytes(log["data"]), int(log["blockNumber"]))
