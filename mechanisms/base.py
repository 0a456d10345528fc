"""The mechanism interface: typed configs registered by name, lifecycle hooks on batches of deals, composition.

Hooks, in the order the lifecycle calls them:

* ``setup``             once per run: standing escrows (stakes, bonds) as transfers;
* ``rank_offers``       the solver's effective price per resource offer (lower is preferred; -1 excludes), each
                        mechanism adjusting the previous one's (reputation and stake preferences compound);
* ``set_terms``         at agreement: escrow amounts, fee, deadlines, worst-case exposure per party;
* ``choose_checks``     which results go to mediation (the client's check, replica disagreement, ...);
* ``select_mediators``  who mediates a checked deal;
* ``judge``             the verdict of a mediation, given each mediator's behaviour;
* ``review``            proofs that overturn a verdict (a whistleblower's evidence of collusion or a bribe);
* ``slash_destinations`` who receives value slashed from the node and from the client (columns
                        `node_slash_to`, `client_slash_to`; later mechanisms re-route some rows);
* ``settle_mediation``  the transfers of the mediation itself (fees, re-runs, bribes, mediator penalties);
* ``settle``            every other transfer of every deal, given its final state;
* ``settle_round``      transfers that depend on the whole round rather than one deal (e.g. a jackpot shared
                        among the round's claims), called once with all of the round's deals, whatever batches
                        the deals were settled in;
* ``after_round``       update the mechanism's own state from the settled round.

Additive hooks (setup, rank_offers, set_terms, choose_checks, review, slash_destinations, settle, settle_round,
after_round, public_votes) run for every enabled mechanism in stack order, each seeing what the earlier ones wrote.
Exclusive hooks (select_mediators, judge, settle_mediation) run only for the last enabled mechanism that implements
them: a consortium replaces the single mediator rather than adding to it (`mechanisms.hooks.HOOKS` says which is
which). Each mechanism declares the DealBatch columns each of its hooks reads and writes (`Mechanism.columns`), and
the stack refuses an order in which a column is read before it is written. Hooks see a whole round of deals as
arrays (a batch of one in the live stack); switching a mechanism off gives the counterfactual without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mechanisms.bounds import MoneyBounds
from mechanisms.config import ConfigError, from_mapping, require
from mechanisms.deals import DealBatch, RoundContext
from mechanisms.hooks import HOOK_INDEX, HOOKS, NONE, Columns, check_declarations, check_order
from mechanisms.money import N_POOLS
from mechanisms.transfers import TransferBuilder, Transfers


@dataclass(frozen=True)
class MarketFacts:
    """What a mechanism may know of the market (mechanisms never import sim): sizes, balances, largest costs, and
    the account layout, defined here once: clients, then nodes, mediators, stakers, then the pools of `Pool`."""

    n_mediators: int
    max_compute_cost: int
    max_job_cost: int
    n_clients: int = 0
    n_nodes: int = 0
    n_stakers: int = 0
    mediator_balance: int = 0
    staker_balance: int = 0
    client_balance: int = 0
    node_balance: int = 0
    max_price: int = 0  # largest price per instruction a node asks

    @property
    def first_node(self) -> int:
        return self.n_clients

    @property
    def first_mediator(self) -> int:
        return self.n_clients + self.n_nodes

    @property
    def first_staker(self) -> int:
        return self.first_mediator + self.n_mediators

    @property
    def pool_base(self) -> int:
        return self.first_staker + self.n_stakers

    @property
    def n_accounts(self) -> int:
        return self.pool_base + N_POOLS

    def mediator_accounts(self) -> np.ndarray:
        return np.arange(self.first_mediator, self.first_staker, dtype=np.int64)

    def initial_balances(self) -> np.ndarray:
        """Every account's opening balance (pools start empty)."""
        bal = np.zeros(self.n_accounts, dtype=np.int64)
        bal[: self.first_node] = self.client_balance
        bal[self.first_node : self.first_mediator] = self.node_balance
        bal[self.first_mediator : self.first_staker] = self.mediator_balance
        bal[self.first_staker : self.pool_base] = self.staker_balance
        return bal

    def role_of(self) -> np.ndarray:
        """Role name per agent account."""
        return np.array(
            ["client"] * self.n_clients
            + ["node"] * self.n_nodes
            + ["mediator"] * self.n_mediators
            + ["staker"] * self.n_stakers
        )

    @property
    def total_value(self) -> int:
        """All value in the market, exactly (Python int); conserved, so it bounds every balance, escrow and pool."""
        return (
            self.n_clients * self.client_balance
            + self.n_nodes * self.node_balance
            + self.n_mediators * self.mediator_balance
            + self.n_stakers * self.staker_balance
        )


class Mechanism:
    """Base class: every hook is a no-op, so a mechanism overrides only what it changes."""

    name: ClassVar[str]
    Config: ClassVar[type]
    #: uniforms per deal this mechanism consumes (the engine draws them up front with the round's other draws)
    draws_per_deal: ClassVar[int] = 0
    #: deals per job offer: replicas bought from different nodes (the largest in the stack wins)
    replicas_per_job: ClassVar[int] = 1
    #: hook name -> the DealBatch columns that hook reads, updates and sets (see `mechanisms.hooks.Columns`)
    columns: ClassVar[Mapping[str, Columns]] = {}

    def __init__(self, config: Any) -> None:
        self.config = config
        self.draw_offset = 0  # first column of this mechanism's uniforms in DealBatch.extra["u"]

    def validate(self, facts: MarketFacts, path: str) -> None:
        """Cross-check the config against the market; raise ConfigError naming the field."""

    def bound_money(self, bounds: MoneyBounds, path: str) -> None:
        """Record the worst-case amounts this mechanism's terms reach and check the products its hooks form
        (see `mechanisms.bounds`); raise ConfigError naming the field."""

    def setup(self, facts: MarketFacts) -> Transfers | None:
        """Standing escrows posted before the first round (deal_id -1)."""
        return None

    def rank_offers(self, node: np.ndarray, price: np.ndarray, context: RoundContext) -> np.ndarray:
        """Adjust the effective price per resource offer (node accounts), `price` being the effective price so far:
        the solver's ordering key and what a fixed-price limit binds; -1 excludes the offer."""
        return price

    def set_terms(self, deals: DealBatch) -> None:
        """Fill or adjust the terms columns."""

    def choose_checks(self, deals: DealBatch) -> None:
        """Add to `deals.checked` among `deals.judged`."""

    def select_mediators(self, deals: DealBatch) -> None:
        """Choose mediators for deals where `deals.checked`."""

    def judge(self, deals: DealBatch) -> None:
        """Set `deals.verdict_accept` (and `bribe_accepted`) for mediated deals."""

    def review(self, deals: DealBatch) -> None:
        """Overturn verdicts on proof (adjust `verdict_accept`, mark `excused` nodes)."""

    def slash_destinations(self, deals: DealBatch) -> None:
        """Set or re-route `deals.node_slash_to` / `deals.client_slash_to` (accounts receiving slashed value)."""

    def settle_mediation(self, deals: DealBatch, out: TransferBuilder) -> None:
        """Transfers of the mediation: fee payouts, re-run costs, bribes."""

    def settle(self, deals: DealBatch, out: TransferBuilder) -> None:
        """Append this mechanism's transfers for every deal, given `deals.state`."""

    def settle_round(self, deals: DealBatch, out: TransferBuilder) -> None:
        """Append transfers computed from the whole round's settled deals (Step.Round)."""

    def after_round(self, deals: DealBatch, transfers: Transfers) -> None:
        """Update the mechanism's own state (if any) after the round settled."""

    def public_votes(self, deals: DealBatch) -> dict[str, np.ndarray] | None:
        """Attributable mediator votes for the public record (deal_id, mediator, accept), or None."""
        return None

    def uniforms(self, deals: DealBatch, k: int = 0) -> np.ndarray:
        """This mechanism's k-th pre-drawn uniform per deal."""
        return deals.extra["u"][:, self.draw_offset + k]

    @classmethod
    def implements(cls, hook: str) -> bool:
        return getattr(cls, hook) is not getattr(Mechanism, hook)

    def requires(self) -> dict[str, str]:
        """Mechanisms this config needs enabled in the same stack: {mechanism name: the field that needs it, or ""
        when the mechanism needs it whatever its config}."""
        return {}

    def excludes(self) -> dict[str, str]:
        """Mechanisms this config cannot work with in the same stack: {mechanism name: the field that excludes it}."""
        return {}

    def takes_part(self, hook: str) -> bool:
        """Whether this instance runs `hook`; a config may opt out of a hook its class implements (staking ranks
        offers only with `prefer_stake`)."""
        return type(self).implements(hook)


_REGISTRY: dict[str, type[Mechanism]] = {}


def register(cls: type[Mechanism]) -> type[Mechanism]:
    """Class decorator: make a mechanism available by its `name` in configs."""
    if cls.name in _REGISTRY:
        raise ValueError(f"mechanism {cls.name!r} registered twice")
    check_declarations(cls.name, {h.name: cls.implements(h.name) for h in HOOKS}, cls.columns)
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[Mechanism]]:
    return dict(_REGISTRY)


class MechanismStack:
    """An ordered composition of mechanisms; disabled entries are kept (for reporting) but never called."""

    def __init__(
        self,
        mechanisms: Sequence[Mechanism],
        enabled: Sequence[bool],
        paths: Sequence[str] | None = None,
        order_path: str = "mechanism.stack",
    ) -> None:
        self.mechanisms = list(mechanisms)
        self.enabled = list(enabled)
        self.paths = list(paths) if paths is not None else [f"{order_path}[{i}]" for i in range(len(mechanisms))]
        self.order_path = order_path  # the config field that fixes the order, named by order errors
        offset = 0
        for m in self.active:
            m.draw_offset = offset
            offset += m.draws_per_deal
        self.draws_per_deal = offset
        self.replicas = max([m.replicas_per_job for m in self.active], default=1)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any], path: str = "mechanism") -> MechanismStack:
        """Build from the Hydra form `{order: [name, ...], <name>: {enabled: true, <params>}, ...}`, which lets a
        sweep override one parameter as `mechanism.<name>.<param>=...`; a `stack:` list is accepted too."""
        config = dict(config)
        if "stack" in config:
            extra = sorted(set(config) - {"stack", "name", "description"})
            require(not extra, path, extra, "either `stack: [...]` or `order: [...]` with one entry per name")
            return cls.from_config(config["stack"], f"{path}.stack")
        order = config.pop("order", None)
        require(
            isinstance(order, (list, tuple)) and len(order) > 0,
            f"{path}.order",
            order,
            "a non-empty list of mechanism names",
        )
        for meta in ("name", "description"):
            config.pop(meta, None)
        for i, name in enumerate(order):
            require(name in _REGISTRY, f"{path}.order[{i}]", name, f"one of {sorted(_REGISTRY)}")
        unused = sorted(set(config) - set(order))
        require(not unused, path, unused, f"a section per name in {path}.order {list(order)} and nothing else")
        require(len(set(order)) == len(order), f"{path}.order", order, "each mechanism at most once")
        return cls._build([({"name": n, **dict(config.get(n) or {})}, f"{path}.{n}") for n in order], f"{path}.order")

    @classmethod
    def from_config(cls, entries: Iterable[Mapping[str, Any]], path: str = "mechanism.stack") -> MechanismStack:
        """Build from `[{name: ..., enabled: true, <params>}, ...]`."""
        return cls._build([(e, f"{path}[{i}]") for i, e in enumerate(entries)], path)

    @classmethod
    def _build(cls, entries: list[tuple[Mapping[str, Any], str]], order_path: str) -> MechanismStack:
        mechanisms, enabled = [], []
        for entry, where in entries:
            entry = dict(entry)
            name = entry.pop("name", None)
            require(name in _REGISTRY, f"{where}.name", name, f"one of {sorted(_REGISTRY)}")
            on = entry.pop("enabled", True)
            require(isinstance(on, bool), f"{where}.enabled", on, "true or false")
            mech_cls = _REGISTRY[name]
            mechanisms.append(mech_cls(from_mapping(mech_cls.Config, entry, where)))
            enabled.append(on)
        if not mechanisms:
            raise ConfigError(f"{order_path}=[] is invalid: allowed a non-empty list of mechanisms")
        return cls(mechanisms, enabled, [where for _, where in entries], order_path)

    @property
    def active(self) -> list[Mechanism]:
        return [m for m, on in zip(self.mechanisms, self.enabled, strict=True) if on]

    def get(self, name: str) -> Mechanism | None:
        """The enabled mechanism registered as `name`, if any."""
        return next((m for m in self.active if m.name == name), None)

    def runners(self, hook: str) -> list[Mechanism]:
        """The enabled mechanisms that run `hook`, in stack order: every one that takes part in an additive hook,
        only the last of them for an exclusive one."""
        takers = [m for m in self.active if m.takes_part(hook)]
        return takers[-1:] if HOOKS[HOOK_INDEX[hook]].exclusive else takers

    def _call(self, hook: str, *args: Any) -> list[Any]:
        """Run `hook` on its runners in stack order; their return values."""
        return [getattr(m, hook)(*args) for m in self.runners(hook)]

    def validate(self, facts: MarketFacts, path: str = "mechanism") -> None:
        """Each enabled mechanism's config against the market and its money bounds; every exclusive hook has a
        runner; no column is read before it is written (`mechanisms.hooks.check_order`)."""
        bounds = MoneyBounds(facts, self.replicas)
        for m, on, where in zip(self.mechanisms, self.enabled, self.paths, strict=True):
            if on:
                m.validate(facts, where)
                m.bound_money(bounds, where)
                for name, field in m.requires().items():
                    if not field:  # the mechanism itself needs `name`, whatever its config
                        require(
                            self.get(name) is not None,
                            f"{where}.enabled",
                            True,
                            f"false, or {name!r} enabled in {self.order_path} too",
                        )
                    else:
                        require(
                            self.get(name) is not None,
                            f"{where}.{field}",
                            getattr(m.config, field),
                            f"a value that needs no {name!r} mechanism, or {name!r} enabled in {self.order_path}",
                        )
                for name, field in m.excludes().items():
                    require(
                        self.get(name) is None,
                        f"{where}.{field}",
                        getattr(m.config, field),
                        f"a value that works with {name!r}, or {name!r} not enabled in {self.order_path}",
                    )
        bounds.check_commitments()
        for hook in HOOKS:
            if hook.exclusive and not self.runners(hook.name):
                raise ConfigError(
                    f"{path}: no enabled mechanism implements {hook.name}; enable a base mechanism such as lilypad_v2"
                )
        runners = {h.name: [(m.name, m.columns.get(h.name, NONE)) for m in self.runners(h.name)] for h in HOOKS}
        check_order(runners, self.order_path, [m.name for m in self.mechanisms])

    def setup(self, facts: MarketFacts) -> list[Transfers]:
        return [t for t in self._call("setup", facts) if t is not None]

    def rank_offers(self, node: np.ndarray, price: np.ndarray, context: RoundContext) -> np.ndarray:
        """Each runner adjusts the effective price the previous one produced; an excluded offer (-1) stays out."""
        rank = np.asarray(price, dtype=np.int64)
        for m in self.runners("rank_offers"):
            rank = np.where(rank < 0, -1, m.rank_offers(node, rank, context))
        return rank

    def set_terms(self, deals: DealBatch) -> None:
        self._call("set_terms", deals)

    def choose_checks(self, deals: DealBatch) -> None:
        self._call("choose_checks", deals)

    def select_mediators(self, deals: DealBatch) -> None:
        self._call("select_mediators", deals)

    def judge(self, deals: DealBatch) -> None:
        """The verdict, then the reviews that may overturn it."""
        self._call("judge", deals)
        self._call("review", deals)

    def settle(self, deals: DealBatch) -> Transfers:
        """Every deal's transfers: slash destinations first, then the mediation's transfers, then the rest."""
        self._call("slash_destinations", deals)
        out = TransferBuilder(deals.deal_id, deals.fixed_columns())
        self._call("settle_mediation", deals, out)
        self._call("settle", deals, out)
        return out.build()

    def settle_round(self, deals: DealBatch) -> Transfers:
        """The round-level transfers, given every deal of the round (already settled deal by deal)."""
        out = TransferBuilder(deals.deal_id, deals.fixed_columns())
        self._call("settle_round", deals, out)
        return out.build()

    def after_round(self, deals: DealBatch, transfers: Transfers) -> None:
        self._call("after_round", deals, transfers)

    def public_votes(self, deals: DealBatch) -> list[dict[str, np.ndarray]]:
        return [v for v in self._call("public_votes", deals) if v is not None]
