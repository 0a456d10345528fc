"""The lifecycle's hooks, and the DealBatch columns through which mechanisms hand data to one another.

Mechanisms communicate through the deal batch: the base mechanism's `settle` sets `paid`, which taxes, staking
fees and retention read; consortium's `set_terms` raises the `mediation_fee` the base set. So each mechanism
declares, per hook, the columns it reads and writes (`Mechanism.columns`), and `check_order` refuses a stack in
which a column is read before it is written: such a stack would run and silently read a default (a jackpot
listed before the base mechanism would collect nothing). A test runs every mechanism on a batch that fails on any
access its declaration does not cover, so the declarations stay true.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Literal

from mechanisms.config import ConfigError
from mechanisms.deals import MATCH_COLUMNS, DealBatch

#: the engine, as the writer of the columns it fills between hooks (agents' decisions and the clock)
ENGINE = "the engine"
Kind = Literal["reads", "updates", "sets"]
KINDS: tuple[Kind, ...] = ("reads", "updates", "sets")


@dataclass(frozen=True)
class Hook:
    """One hook of the deal lifecycle, in `HOOKS` order."""

    name: str
    exclusive: bool = False  # only the last enabled mechanism implementing it runs; else every one, in stack order
    engine_fills: tuple[str, ...] = ()  # columns the engine fills after the previous hook and before this one


HOOKS: tuple[Hook, ...] = (
    Hook("setup"),
    Hook("rank_offers"),
    # the parties' actions for the round (sim.lifecycle.apply_actions)
    Hook(
        "set_terms",
        engine_fills=(
            "bribe",
            "colluding",
            "check_rate",
            "accused",
            "reports",
            "waits",
            "mediator_threshold",
            "mediator_collude",
            "mediator_report",
        ),
    ),
    # agreement, submission and the client's judgement, on the clock (sim.lifecycle.decide)
    Hook(
        "choose_checks",
        engine_fills=(
            "client_agreed",
            "node_agreed",
            "submit_time",
            "submitted",
            "cheated",
            "result",
            "judge_time",
            "judged",
        ),
    ),
    Hook("select_mediators", exclusive=True),
    Hook("judge", exclusive=True, engine_fills=("mediated",)),  # the mediators' deadline
    Hook("review"),
    Hook("slash_destinations", engine_fills=("state",)),  # the walk to each deal's final state
    Hook("settle_mediation", exclusive=True),
    Hook("settle"),
    Hook("settle_round"),
    Hook("after_round"),
    Hook("public_votes"),
)
HOOK_INDEX: dict[str, int] = {h.name: i for i, h in enumerate(HOOKS)}
#: Columns hooks pass to one another: every DealBatch field but the ones fixed at the match (and `extra`, whose
#: keys "<mechanism>.<name>" are hook data too).
HOOK_DATA = frozenset(f.name for f in fields(DealBatch)) - MATCH_COLUMNS - {"extra"}


def is_extra(column: str) -> bool:
    """A key of `DealBatch.extra` ("<mechanism>.<name>") rather than a field."""
    return "." in column


@dataclass(frozen=True)
class Columns:
    """The hook data one hook of a mechanism uses: DealBatch fields, or "<mechanism>.<name>" keys of `extra`.

    `reads` needs the value every mechanism before it in the hook left (so it must come after them); `updates`
    changes a column from its old value, keeping what others wrote (`|=`, `+=`, rewriting only its own rows), so
    updates compose in any order; `sets` replaces a column without reading its old value."""

    reads: tuple[str, ...] = ()
    updates: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()

    def kinds(self) -> list[tuple[str, Kind]]:
        """(column, kind) for every use."""
        return [(c, kind) for kind in KINDS for c in getattr(self, kind)]


NONE = Columns()


def hook_columns(**per_hook: Columns) -> Mapping[str, Columns]:
    """A mechanism's declaration, `columns = hook_columns(settle=Columns(reads=("paid",)), ...)` (read-only)."""
    return MappingProxyType(per_hook)


def check_declarations(name: str, implements: Mapping[str, bool], columns: Mapping[str, Columns]) -> None:
    """Reject a mechanism class whose declarations name an unknown hook or column, a hook it does not implement,
    or an `extra` key of another mechanism that it writes (a mechanism writes only its own private columns)."""
    for hook, cols in columns.items():
        if hook not in HOOK_INDEX or not implements.get(hook, False):
            raise ValueError(f"mechanism {name!r} declares columns for {hook!r}, which is not a hook it implements")
        if not isinstance(cols, Columns):
            raise ValueError(f"mechanism {name!r}: columns[{hook!r}] must be a Columns(...), got {cols!r}")
        for column, kind in cols.kinds():
            if not (column in HOOK_DATA or is_extra(column)):
                raise ValueError(
                    f"mechanism {name!r}: {hook} {kind} {column!r}, which is not hook data; allowed: "
                    f"{sorted(HOOK_DATA)} or an extra key '<mechanism>.<name>'"
                )
            if is_extra(column) and kind != "reads" and not column.startswith(f"{name}."):
                raise ValueError(
                    f"mechanism {name!r}: {hook} {kind} {column!r}; allowed: writes to its own "
                    f"'{name}.<name>' extra keys only"
                )


@dataclass(frozen=True)
class Use:
    """One use of a column at one place of the lifecycle: by the engine before hook `hook`, or by the `slot`-th
    mechanism running it."""

    column: str
    kind: Kind
    who: str
    hook: int  # index in HOOKS
    slot: int  # -1 for the engine (it fills before the hook's mechanisms run)

    @property
    def at(self) -> tuple[int, int]:
        return self.hook, self.slot

    @property
    def where(self) -> str:
        return f"{'before' if self.who == ENGINE else 'in'} {HOOKS[self.hook].name}"


def lifecycle_uses(runners: Mapping[str, Sequence[tuple[str, Columns]]]) -> list[Use]:
    """Every use of hook data in lifecycle order, given the (mechanism name, columns) that run each hook."""
    uses = []
    for i, hook in enumerate(HOOKS):
        uses += [Use(c, "sets", ENGINE, i, -1) for c in hook.engine_fills]
        for slot, (who, cols) in enumerate(runners.get(hook.name, ())):
            uses += [Use(c, kind, who, i, slot) for c, kind in cols.kinds()]
    return uses


def first_conflict(uses: Sequence[Use]) -> tuple[Use, Use] | None:
    """The first use that comes too early for a write, in lifecycle order, with that write; None if none does.

    A read must come after every write of the column in its hook (an update: after every set, which would discard
    it), and a read may not come before a column's first write anywhere in the lifecycle (it would see only the
    default). A read in an earlier hook of a column that a later hook changes is not a conflict: it sees the value
    at its stage (check_policy budgets with the fee agreed at set_terms)."""
    for use in uses:
        if use.kind == "sets":
            continue
        writes = [w for w in uses if w.column == use.column and w.kind != "reads"]
        later = [w for w in writes if w.at > use.at and (use.kind == "reads" or w.kind == "sets")]
        same_hook = [w for w in later if w.hook == use.hook]  # others' (a mechanism runs once per hook)
        if same_hook:
            return use, same_hook[0]
        if use.kind == "reads" and later and not any(w.at < use.at for w in writes):
            return use, later[0]
    return None


def check_order(runners: Mapping[str, Sequence[tuple[str, Columns]]], field: str, order: Sequence[str]) -> None:
    """Raise ConfigError naming `field` (the stack's order) if a column is read before it is written."""
    found = first_conflict(lifecycle_uses(runners))
    if found is None:
        return
    use, write = found
    if write.hook == use.hook:
        fix = f"an order with {use.who} after {write.who}"
    else:  # nothing writes the column before the read, only after it: no order of these mechanisms helps
        fix = (
            f"{use.who} reading DealBatch.{use.column} in {HOOKS[write.hook].name} or later, or a mechanism "
            f"writing it by {HOOKS[use.hook].name}"
        )
    raise ConfigError(
        f"{field}={list(order)!r} is invalid: {use.who} {use.kind} DealBatch.{use.column} {use.where} "
        f"before {write.who} {write.kind} it {write.where}; allowed: {fix}"
    )
