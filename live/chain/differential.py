"""The differential check: run the batch engine, replay every deal on chain, and compare to the base unit.

Compared, deal by deal and account by account: every on-chain transfer (the twin's public transfers, i.e. all but
compute costs and bribes, in the same order with the same step, reason, direction, payer, payee and amount), each
deal's final state, every account's final wealth (tokens plus free balance in the contract) and the contract's
solvency (its token holdings equal the free balances it owes, every deal's escrow being zero once settled).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from live.chain.events import fetch, transfers
from live.chain.node import Chain
from live.chain.replay import deploy_market, replay
from mechanisms.actions import Actions
from mechanisms.money import Pool
from mechanisms.protocol import OFF_CHAIN_REASONS, DealState, Direction, Reason
from mechanisms.transfers import Transfers
from sim.engine import RoundResult
from twin.build import build


@dataclass
class Report:
    """What was compared and every mismatch found (empty lists = chain and twin agree)."""

    deals: int = 0
    transfers: int = 0
    accounts: int = 0
    states: dict[str, int] = field(default_factory=dict)  # terminal state name -> deals
    reasons: dict[str, int] = field(default_factory=dict)  # on-chain transfers per reason
    moves: dict[str, int] = field(default_factory=dict)  # on-chain transfers per "Reason/Direction"
    mismatched_deals: list[int] = field(default_factory=list)
    mismatched_states: list[int] = field(default_factory=list)
    mismatched_accounts: list[int] = field(default_factory=list)
    insolvent_by: int = 0
    blocks: int = 0
    gas: int = 0
    honest_replica_paid: int = 0  # rejected replicas whose slash paid the honest replica (the prisoner's contract)
    bribes_proven: int = 0  # deals whose mediator proved the node's bribe (whistleblowing)

    @property
    def ok(self) -> bool:
        return not (self.mismatched_deals or self.mismatched_states or self.mismatched_accounts or self.insolvent_by)


def public(t: Transfers) -> Transfers:
    """The twin's on-chain transfers: everything but the off-chain reasons."""
    keep = ~np.isin(t.reason, [int(r) for r in OFF_CHAIN_REASONS])
    return Transfers(
        *(getattr(t, c)[keep] for c in ("step", "deal_id", "payer", "payee", "amount", "reason", "direction", "hidden"))
    )


def by_deal(t: Transfers) -> dict[int, list[tuple[int, ...]]]:
    """Each deal's transfers as (step, reason, direction, payer, payee, amount), sorted: within a step the order
    is the order of the parties' calls (who agrees first), which the twin does not model."""
    out: dict[int, list[tuple[int, ...]]] = defaultdict(list)
    for row in zip(t.deal_id, t.step, t.reason, t.direction, t.payer, t.payee, t.amount, strict=True):
        out[int(row[0])].append(tuple(int(x) for x in row[1:]))
    return {k: sorted(v) for k, v in out.items()}


def wealth_change(t: Transfers, size: int) -> np.ndarray:
    """Net change of each account's wealth (free balance + escrow) from transfers between accounts."""
    moves = np.isin(t.direction, [int(Direction.PaidOut), int(Direction.Slashed), int(Direction.Spent)])
    out = np.zeros(size, dtype=np.int64)
    np.subtract.at(out, t.payer[moves], t.amount[moves])
    np.add.at(out, t.payee[moves], t.amount[moves])
    return out


#: Changes the scripted population's actions of a round before the engine steps (e.g. mediators that report).
Tweak = Callable[[Actions], None]


def run_engine(cfg: Mapping[str, Any], rounds: int, tweak: Tweak | None = None) -> tuple[Any, list[RoundResult]]:
    comp = build(cfg)
    results = []
    for r in range(rounds):
        actions = comp.population.actions(r)
        if tweak is not None:
            tweak(actions)
        results.append(comp.engine.step(actions))
    return comp, results


def differential(cfg: Mapping[str, Any], rounds: int, chain: Chain, tweak: Tweak | None = None) -> Report:
    """Run `rounds` engine rounds of `cfg` (actions changed by `tweak`) and replay them on `chain`; compare."""
    comp, results = run_engine(cfg, rounds, tweak)
    market = comp.market
    n_agents = market.config.n_agents
    dep, who = deploy_market(
        chain,
        comp.stack,
        market.facts.initial_balances(),
        n_agents,
        market.facts.pool_base,
        market.facts.mediator_accounts(),
        rerun_costs=[int(x) for x in market.module_compute_cost],
    )
    start = chain.block_number() + 1
    for r in results:
        replay(dep, who, comp.stack, r.deals)
    h = fetch(dep)
    rep = Report(
        blocks=chain.block_number() - start + 1, honest_replica_paid=len(h.honest), bribes_proven=len(h.bribes)
    )

    twin = public(Transfers.concat([r.transfers for r in results]))
    on_chain = transfers(h, who.book)
    twin_deals, chain_deals = by_deal(twin), by_deal(on_chain)
    all_ids = np.concatenate([r.deals.deal_id for r in results])
    rep.deals, rep.transfers = len(all_ids), len(on_chain)
    rep.reasons = {Reason(int(r)).name: int((on_chain.reason == r).sum()) for r in np.unique(on_chain.reason)}
    kinds = zip(on_chain.reason.tolist(), on_chain.direction.tolist(), strict=True)
    for reason, direction in kinds:
        key = f"{Reason(reason).name}/{Direction(direction).name}"
        rep.moves[key] = rep.moves.get(key, 0) + 1
    rep.mismatched_deals = [int(i) for i in all_ids if twin_deals.get(int(i), []) != chain_deals.get(int(i), [])]

    chain_state = {h.terms[d].nonce: s for d, s in h.final_state().items()}
    for r in results:
        exists = r.deals.client_agreed | r.deals.node_agreed  # a deal nobody agreed to is never created on chain
        for i, s, on_chain in zip(r.deals.deal_id, r.deals.state, exists, strict=True):
            name = DealState(int(s)).name
            rep.states[name] = rep.states.get(name, 0) + 1
            if chain_state.get(int(i)) != (int(s) if on_chain else None):
                rep.mismatched_states.append(int(i))

    size = market.facts.pool_base + 4
    expected = market.facts.initial_balances()[:n_agents] + wealth_change(twin, size)[:n_agents]
    pools = [market.facts.pool_base + p for p in (Pool.Burn, Pool.Protocol, Pool.Jackpot)]  # credited on chain
    owners = [who.address[a] for a in [*range(n_agents), *pools]]
    free = np.array(dep.read_many("balanceOf", [(a,) for a in owners]), dtype=object)
    tokens = np.array(dep.read_many("balanceOf", [(a,) for a in owners], contract=dep.token), dtype=object)
    change = wealth_change(twin, size)
    want = [*expected, *(int(change[p]) for p in pools)]
    staked = np.array(dep.read_many("staked", [(a,) for a in owners]), dtype=object)  # stakes stay in escrow
    got = [*(free[:n_agents] + tokens[:n_agents] + staked[:n_agents]), *free[n_agents:]]
    rep.mismatched_accounts = [a for a, w, g in zip([*range(n_agents), *pools], want, got, strict=True) if w != g]
    rep.accounts = n_agents
    total_free = int(sum(free)) + int(sum(staked))
    rep.insolvent_by = total_free - int(dep.token.functions.balanceOf(dep.deals.address).call())
    return rep
