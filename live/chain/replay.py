"""Replay the twin's deals on chain: each deal's decisions become the same protocol calls, a round's deals share
blocks, and the deal contract settles them. Used by the differential tests and the gas benchmark.

Decisions come from the batch engine's `DealBatch` (who agreed, who submitted, who judged, what was checked,
which mediator the twin drew, who answered in time and the verdict). The mediator draw is replayed through the
scripted beacon (the test-only randomness source): it returns, for each checked deal, the rank of the twin's
mediator among the deal's mutual mediators, so the contract's own draw lands on the same mediator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from eth_utils import keccak

from live.chain.binding import Deployment, Terms, deploy
from live.chain.node import Chain
from live.chain.params import chain_params, check_market
from mechanisms.base import MechanismStack
from mechanisms.deals import DealBatch
from mechanisms.money import Pool
from mechanisms.protocol import DealState

S = DealState
MAX_UINT = 2**256 - 1
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
    return Actors(address, {a: i for i, a in address.items()}, n_agents), deployer, treasury


def deploy_market(
    chain: Chain,
    stack: MechanismStack,
    balances: np.ndarray,
    n_agents: int,
    pool_base: int,
    mediator_accounts: Sequence[int],
    beacon: str = "scripted",
) -> tuple[Deployment, Actors]:
    """Deploy for a twin market: tokens minted to the agents' initial balances, mediators registered in the twin's
    order, and every agent's allowance for the deal contract set once."""
    params = chain_params(stack)
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
    return max(1, min(c.deadline_submit, c.deadline_judge, c.deadline_mediate) // 3)


def replay(dep: Deployment, who: Actors, stack: MechanismStack, deals: DealBatch) -> None:
    """Replay one round's deals (decisions and final states as the twin settled them) on chain."""
    terms = terms_of(deals, who, stack)
    step = chunk_size(dep.chain, stack, len(deals))
    for lo in range(0, len(deals), step):
        _replay_chunk(dep, who, deals, terms, np.arange(lo, min(lo + step, len(deals))))


def _replay_chunk(dep: Deployment, who: Actors, d: DealBatch, terms: list[Terms], rows: np.ndarray) -> None:
    chain = dep.chain
    phases: list[list[dict[str, Any]]] = [[], [], [], []]
    draws_ids, draws_words = [], []
    for i in rows:
        t = terms[i]
        if d.client_agreed[i]:
            phases[0].append(dep.agree(t, t.client))
        if d.node_agreed[i]:
            phases[0].append(dep.agree(t, t.node))
        if d.submitted[i]:
            phases[1].append(dep.submit(t, result_hash(d.result[i])))
        if d.checked[i]:
            draws_ids.append(dep.deal_id(t))
            draws_words.append(mediator_rank(int(d.mutual_mediators[i]), int(d.mediator[i])))
            phases[2].append(dep.check(t))
        elif d.judged[i]:
            phases[2].append(dep.accept(t))
        if d.state[i] in (S.MediationAccepted, S.MediationRejected):
            phases[3].append(dep.mediate(t, dep.mediators[int(d.mediator[i])], bool(d.verdict_accept[i])))
    if draws_ids:
        phases[2].insert(0, dep.set_draws(draws_ids, draws_words))
    for txs in phases:
        if txs:
            chain.send(txs)
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
