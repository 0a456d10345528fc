"""Replay the twin's deals on chain: each deal's decisions become the same protocol calls, a round's deals share
blocks, and the deal contract settles them. Used by the differential tests and the gas benchmark.

Decisions come from the batch engine's `DealBatch` (who agreed, who submitted, who judged, what was checked,
which mediator the twin drew, who answered in time and the verdict). The mediator draw is replayed through the
scripted beacon (the test-only randomness source): it returns, for each checked deal, the rank of the twin's
mediator among the deal's mutual mediators, so the contract's own draw lands on the same mediator. A consortium
panel is drawn seat by seat the same way (one word per seat, the rank among the mediators not yet seated), and its
members vote level by level as the twin's panel did (each level's votes in a later batch than the previous one's).
With replication the replicas of a job are replayed together: the client opens the job before the agreements, the
nodes post through the module (commit, then reveal, with commit-reveal; the commit window is mined through when a
replica of the job never commits), and a rejecting mediator declares the correct result (the twin's CORRECT). With
whistleblowing, a mediator that proved its node's bribe in the twin presents the node's signed bribe offer instead of
its verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from eth_abi import encode
from eth_utils import keccak

from live.chain.binding import Deployment, Terms, deploy
from live.chain.events import JACKPOT
from live.chain.node import Chain
from live.chain.params import chain_params, check_market
from mechanisms.base import MechanismStack
from mechanisms.deals import CARTEL_FAKE, CORRECT, DealBatch
from mechanisms.money import Pool
from mechanisms.protocol import DealState

S = DealState
MAX_UINT = 2**256 - 1
DRAWS_PER_TX = 150  # scripted beacon words per transaction (one storage write each)
TIMEOUT_PHASE = {
    S.TimeoutAgree: "agree",
    S.TimeoutSubmitResults: "submit",
    S.TimeoutJudgeResults: "judge",
    S.TimeoutMediateResults: "mediate",
}


@dataclass(frozen=True)
class Actors:
    """Twin accounts on chain: `address[i]` is account i's address (agents, then the pools that exist on chain)."""

    address: dict[int, str]
    book: dict[str, int]  # address -> account id
    n_agents: int

    def of(self, account: np.ndarray) -> list[str]:
        return [self.address[int(a)] for a in account]


def actors(chain: Chain, n_agents: int, pool_base: int, burn: str) -> tuple[Actors, str, str]:
    """Map agent accounts to the chain's dev accounts (the first dev account deploys, the one after the agents
    is the protocol treasury). Returns the actors, the deployer and the treasury."""
    need = n_agents + 2
    if len(chain.accounts) < need:
        raise ValueError(f"the chain has {len(chain.accounts)} dev accounts; the market needs {need}")
    deployer, treasury = chain.accounts[0], chain.accounts[n_agents + 1]
    address = {i: chain.accounts[1 + i] for i in range(n_agents)}
    address[pool_base + Pool.Burn] = burn
    address[pool_base + Pool.Protocol] = treasury
    address[pool_base + Pool.Jackpot] = JACKPOT
    return Actors(address, {a: i for i, a in address.items()}, n_agents), deployer, treasury


def deploy_market(
    chain: Chain,
    stack: MechanismStack,
    balances: np.ndarray,
    n_agents: int,
    pool_base: int,
    mediator_accounts: Sequence[int],
    beacon: str = "scripted",
    rerun_costs: Sequence[int] = (),
) -> tuple[Deployment, Actors]:
    """Deploy for a twin market: tokens minted to the agents' initial balances, mediators registered in the twin's
    order, and every agent's allowance for the deal contract set once. `rerun_costs`: the market's module compute
    costs (needed by the consortium)."""
    params = chain_params(stack, rerun_costs)
    check_market(len(mediator_accounts))
    burn = "0x000000000000000000000000000000000000dEaD"
    who, deployer, treasury = actors(chain, n_agents, pool_base, burn)
    holders = [who.address[i] for i in range(n_agents)]
    dep = deploy(
        chain,
        params,
        [who.address[int(m)] for m in mediator_accounts],
        treasury,
        holders,
        [int(b) for b in balances[:n_agents]],
        beacon=beacon,
        deployer=deployer,
    )
    chain.send([dep.approve(a, MAX_UINT) for a in holders])
    stake_as_the_twin(dep, who, stack)
    return dep, who


def stake_as_the_twin(dep: Deployment, who: Actors, stack: MechanismStack) -> None:
    """The staking mechanism's standing stakes (its `setup` transfers), posted by the stakers in staker order so
    each node's backers are listed on chain in the twin's order."""
    staking = stack.get("staking")
    if staking is None:
        return
    _, stakers, backs, _ = staking._layout()
    amounts = np.asarray(staking.config.stakes, dtype=np.int64)[np.arange(len(stakers)) % len(staking.config.stakes)]
    txs = [
        dep.stake(who.address[int(s)], who.address[int(n)], int(a))
        for s, n, a in zip(stakers, backs, amounts, strict=True)
        if a > 0
    ]
    if txs:
        dep.chain.send(txs)


def result_hash(result: int) -> bytes:
    return keccak(int(result).to_bytes(32, "big"))


def terms_of(deals: DealBatch, who: Actors, stack: MechanismStack) -> list[Terms]:
    """The on-chain terms of each twin deal (nonce = the twin's deal id, so ids map back)."""
    coll = stack.get("collateral")
    if coll is not None:
        mult = coll.multiplier_bps(deals.node)
    else:
        mult = np.full(len(deals), stack.get("lilypad_v2").config.results_multiplier_bps, dtype=np.int64)
    clients, nodes = who.of(deals.client), who.of(deals.node)
    return [
        Terms(
            clients[i],
            nodes[i],
            int(deals.price[i]),
            int(deals.instructions[i]),
            int(mult[i]),
            int(deals.module[i]),
            int(deals.mutual_mediators[i]),
            int(deals.deal_id[i]),
        )
        for i in range(len(deals))
    ]


def mediator_rank(mask: int, mediator: int) -> int:
    """Rank of `mediator` among the set bits of `mask`: the beacon word that makes the contract draw it."""
    return bin(mask & ((1 << mediator) - 1)).count("1")


def chunk_size(chain: Chain, stack: MechanismStack, n: int) -> int:
    """Deals replayed together: all of them where a batch is one block; where every transaction is a block
    (eth-tester), few enough that a phase's transactions stay inside the shortest deadline."""
    if chain.blocks_per_tx == 0:
        return max(n, 1)
    c = stack.get("lilypad_v2").config
    consortium = stack.get("consortium")
    per_deal = 3 + (consortium.max_seats if consortium is not None else 0)  # a panel votes one member per block
    if stack.get("replication") is not None:
        per_deal += 3  # a job's opening, a commit and a reveal
    return max(1, min(c.deadline_submit, c.deadline_judge, c.deadline_mediate) // per_deal)


def chunks(deals: DealBatch, step: int, whole_groups: bool) -> list[np.ndarray]:
    """Rows replayed together, `step` at a time; with `whole_groups`, each job's replicas in one chunk (in replica
    order), a chunk taking whole jobs up to `step` deals (more when one job alone is larger)."""
    if not whole_groups:
        return [np.arange(lo, min(lo + step, len(deals))) for lo in range(0, len(deals), step)]
    order = np.lexsort((deals.replica, deals.group))
    starts = np.flatnonzero(np.r_[True, deals.group[order][1:] != deals.group[order][:-1]])
    out: list[np.ndarray] = []
    lo = 0
    for k, start in enumerate([*starts[1:], len(order)]):
        if start - starts[lo] >= step or k == len(starts) - 1:
            out.append(order[starts[lo] : start])
            lo = k + 1
    return out


def replay(dep: Deployment, who: Actors, stack: MechanismStack, deals: DealBatch) -> None:
    """Replay one round's deals (decisions and final states as the twin settled them) on chain."""
    terms = terms_of(deals, who, stack)
    step = chunk_size(dep.chain, stack, len(deals))
    for rows in chunks(deals, step, dep.replication is not None):
        _replay_chunk(dep, who, deals, terms, rows, stack)
    if dep.params.jackpot:  # the round ends: its claims share the pool as it stood when it began
        dep.chain.send([dep.pay_jackpot(dep.deployer)])


def panel_draws(deal: bytes, mask: int, order: np.ndarray) -> tuple[list[bytes], list[int]]:
    """The scripted beacon's keys (keccak(id, seat), as PanelModule draws) and words seating the twin's panel."""
    keys, words = [], []
    for seat, member in enumerate(int(m) for m in order):
        if member < 0:
            break
        keys.append(keccak(encode(["bytes32", "uint256"], [deal, seat])))
        words.append(mediator_rank(mask, member))
        mask &= ~(1 << member)
    return keys, words


def panel_votes(dep: Deployment, d: DealBatch, i: int, t: Terms, stack: MechanismStack) -> list[list[dict[str, Any]]]:
    """The twin's panel votes of deal `i`, one list per escalation level (the members that level seats), each with
    the member's declaration of a re-run (it re-ran unless bribed or voting for its cartel's fake)."""
    c = stack.get("consortium").config
    order, votes = d.extra["consortium.order"][i], d.extra["consortium.votes"][i]
    bribed, final = d.extra["consortium.bribed"][i], int(d.extra["consortium.size"][i])
    available = int((order >= 0).sum())
    levels, done = [], 0
    for depth in range(c.max_depth + 1):
        size = min(c.size * c.growth**depth, len(order), available)
        if size <= done:
            break
        levels.append(
            [
                dep.vote(t, dep.mediators[int(order[s])], bool(votes[s]), bool(_reran(d, i, int(order[s]), bribed[s])))
                for s in range(done, size)
            ]
        )
        done = size
        if size == final:
            break
    return levels


def _reran(d: DealBatch, i: int, member: int, bribed: bool) -> bool:
    return not bribed and not (d.mediator_collude[member] and d.result[i] == CARTEL_FAKE)


def _replay_chunk(
    dep: Deployment, who: Actors, d: DealBatch, terms: list[Terms], rows: np.ndarray, stack: MechanismStack
) -> None:
    chain = dep.chain
    panels = dep.params.consortium
    phases: list[list[dict[str, Any]]] = [[], [], [], []] + [[] for _ in range(7 if panels else 0)]
    draws_ids, draws_words = [], []
    if dep.replication is not None:
        _replicate(dep, d, terms, rows)
    for i in rows:
        t = terms[i]
        if d.client_agreed[i]:
            phases[0].append(dep.agree(t, t.client))
        if d.node_agreed[i]:
            phases[0].append(dep.agree(t, t.node))
        if d.submitted[i] and dep.params.commit_reveal:
            phases[1].append(dep.reveal(t, result_hash(d.result[i]), salt(dep, t)))
        elif d.submitted[i]:
            phases[1].append(dep.post(t, result_hash(d.result[i])))
        if d.checked[i] and panels:
            keys, words = panel_draws(dep.deal_id(t), int(d.mutual_mediators[i]), d.extra["consortium.order"][i])
            draws_ids += keys
            draws_words += words
            phases[2].append(dep.check(t))
        elif d.checked[i]:
            draws_ids.append(dep.deal_id(t))
            draws_words.append(mediator_rank(int(d.mutual_mediators[i]), int(d.mediator[i])))
            phases[2].append(dep.check(t))
        elif d.judged[i]:
            phases[2].append(dep.accept(t))
        if d.state[i] in (S.MediationAccepted, S.MediationRejected) and panels:
            for level, votes in enumerate(panel_votes(dep, d, i, t, stack)):
                phases[3 + level] += votes
        elif d.state[i] in (S.MediationAccepted, S.MediationRejected) and bribe_proven(dep, d, i):
            phases[3].append(report_bribe(dep, t, dep.mediators[int(d.mediator[i])]))
        elif d.state[i] in (S.MediationAccepted, S.MediationRejected):
            accept = bool(d.verdict_accept[i])
            phases[3].append(dep.mediate(t, dep.mediators[int(d.mediator[i])], accept, result_hash(CORRECT)))
    # the scripted words go first, in transactions small enough for the gas limit (a panel needs one per seat)
    phases[2][:0] = [
        dep.set_draws(draws_ids[lo : lo + DRAWS_PER_TX], draws_words[lo : lo + DRAWS_PER_TX])
        for lo in range(0, len(draws_ids), DRAWS_PER_TX)
    ]
    commits = []
    if dep.replication is not None and dep.params.commit_reveal:
        commits = [dep.commit(terms[i], result_hash(d.result[i]), salt(dep, terms[i])) for i in rows if d.submitted[i]]
    for k, txs in enumerate(phases):
        if txs:
            chain.send(txs)
        if k == 0 and commits:
            chain.send(commits)
            if not d.submitted[rows][exists(d, rows)].all():  # a replica never commits: the window must end
                chain.mine(dep.params.commit_blocks + 1)
    # a deal neither party agreed to never exists on chain: nothing to time out
    late = [i for i in rows if DealState(int(d.state[i])) in TIMEOUT_PHASE and (d.client_agreed[i] | d.node_agreed[i])]
    if late:
        c = dep.params
        chain.mine(max(c.deadline_agree, c.deadline_submit, c.deadline_judge, c.deadline_mediate) + 1)
        txs = []
        for i in late:
            t, phase = terms[i], TIMEOUT_PHASE[DealState(int(d.state[i]))]
            txs.append(dep.timeout(phase, t, t.node if phase == "judge" else t.client))
        chain.send(txs)


def bribe_proven(dep: Deployment, d: DealBatch, i: int) -> bool:
    """Whether the twin's mediator of deal `i` proved the node's bribe (whistleblowing's `review`)."""
    return dep.params.whistleblowing and int(d.extra["whistleblowing.mediator"][i]) >= 0


def report_bribe(dep: Deployment, t: Terms, mediator: str) -> dict[str, Any]:
    """The mediator's report, its proof being the node's EIP-712 signature over its bribe offer for the deal (the
    twin's briber offered it: an honest node never signs one)."""
    signature = dep.chain.sign_typed(t.node, dep.bribe_typed(dep.deal_id(t)))
    return dep.report_bribe(t, mediator, signature, result_hash(CORRECT))


def salt(dep: Deployment, t: Terms) -> bytes:
    """The node's commit-reveal salt (any secret works; derived from the deal id so the replay can recompute it)."""
    return keccak(b"salt" + dep.deal_id(t))


def exists(d: DealBatch, rows: np.ndarray) -> np.ndarray:
    """Which of `rows` exist on chain (a deal neither party agreed to is never created)."""
    return d.client_agreed[rows] | d.node_agreed[rows]


def _replicate(dep: Deployment, d: DealBatch, terms: list[Terms], rows: np.ndarray) -> None:
    """Each job of `rows` (in replica order) opened by its client, with the replicas that will exist on chain."""
    on = rows[exists(d, rows)]
    txs = []
    for g in dict.fromkeys(int(x) for x in d.group[on]):
        members = on[d.group[on] == g]
        txs.append(dep.open_job(terms[members[0]].client, [terms[i] for i in members]))
    if txs:
        dep.chain.send(txs)
