"""A batch of deals as a structure of arrays: what mechanism hooks read and write.

One row per deal. The live stack passes a batch of one; the simulator a whole round. Columns are grouped by
who fills them: the match (identity and price), the mechanisms' `set_terms` hook (escrow amounts, fee,
deadlines), the agents and the clock (decisions), the mechanisms' `select_mediators` / `judge` hooks, and the
protocol (final state).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np

from mechanisms.protocol import DealState

NO_MEDIATOR = -1
NEVER = np.iinfo(np.int64).max  # a bribe threshold no bribe reaches

# Posted results: CORRECT, or an id per distinct fake. Replicas agree iff their ids are equal.
CORRECT = 0
CARTEL_FAKE = 1  # the shared fake result of colluding nodes
FORCED_FAKE = 2  # a known-wrong result injected by the protocol (forced error)
FIRST_OWN_FAKE = 3  # an independent cheater's fake: FIRST_OWN_FAKE + deal_id


@dataclass(frozen=True)
class RoundContext:
    """The public state at the start of the round, read-only for hooks (mechanisms never import sim).

    The engine hands read-only views of its live arrays, which it changes only after the round's last hook: valid
    while the round's hooks run, so a hook copies what it wants to keep beyond the round."""

    round: int
    balance: np.ndarray  # free balance per account
    escrow: np.ndarray  # escrow per account (stakes and bonds live here between rounds)
    counters: dict[str, np.ndarray]  # public record per account, e.g. "passed", "failed" (see sim.public_record)


def _i(n: int, fill: int = 0) -> np.ndarray:
    return np.full(n, fill, dtype=np.int64)


def _b(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)


@dataclass
class DealBatch:
    """Deals of one round (or one deal), column by column. Amounts are int64 base units."""

    # --- identity and price (from the solver's match)
    deal_id: np.ndarray
    client: np.ndarray  # account id of the job creator
    node: np.ndarray  # account id of the resource provider
    job: np.ndarray  # index of the job offer (row of the round's per-deal draws)
    module: np.ndarray
    price: np.ndarray  # per instruction, agreed
    instructions: np.ndarray
    job_cost: np.ndarray  # price * instructions
    compute_cost: np.ndarray  # what running the job honestly costs (node, and a re-running mediator)
    mutual_mediators: np.ndarray  # bit mask over mediator indices trusted by both sides
    mediator_accounts: np.ndarray  # account id of mediator index i (shared by all deals, not per deal)
    mediator_threshold: np.ndarray  # smallest bribe mediator index i accepts this round (shared, not per deal)
    pool_base: int  # account id of Pool 0
    mediator_collude: np.ndarray = None  # type: ignore[assignment]  # mediator i votes with the cartel (shared)
    mediator_report: np.ndarray = None  # type: ignore[assignment]  # mediator i proves bribes it took (shared)
    context: RoundContext | None = None  # shared

    group: np.ndarray = None  # type: ignore[assignment]  # replicas of one job share a group (default: job)
    replica: np.ndarray = None  # type: ignore[assignment]  # index of the replica within its group

    # --- terms (set by mechanisms)
    payment_collateral: np.ndarray = None  # type: ignore[assignment]
    judge_collateral: np.ndarray = None  # type: ignore[assignment]
    submit_collateral: np.ndarray = None  # type: ignore[assignment]
    results_collateral: np.ndarray = None  # type: ignore[assignment]
    mediation_fee: np.ndarray = None  # type: ignore[assignment]
    deadline_agree: np.ndarray = None  # type: ignore[assignment]
    deadline_submit: np.ndarray = None  # type: ignore[assignment]
    deadline_judge: np.ndarray = None  # type: ignore[assignment]
    deadline_mediate: np.ndarray = None  # type: ignore[assignment]
    forced_error: np.ndarray = None  # type: ignore[assignment]  # the protocol will swap in a known-wrong result
    client_exposure: np.ndarray = None  # type: ignore[assignment]  # most the client can have at stake
    node_exposure: np.ndarray = None  # type: ignore[assignment]

    # --- decisions (agents and the clock)
    client_agreed: np.ndarray = None  # type: ignore[assignment]
    node_agreed: np.ndarray = None  # type: ignore[assignment]
    submitted: np.ndarray = None  # type: ignore[assignment]  # node posted a result before the deadline
    cheated: np.ndarray = None  # type: ignore[assignment]  # the node skipped the computation
    colluding: np.ndarray = None  # type: ignore[assignment]  # the node is in the cartel this round
    result: np.ndarray = None  # type: ignore[assignment]  # posted result id: CORRECT or a fake id
    accused: np.ndarray = None  # type: ignore[assignment]  # the client asks colluding mediators to reject
    reports: np.ndarray = None  # type: ignore[assignment]  # the node will prove a collusion it took part in
    waits: np.ndarray = None  # type: ignore[assignment]  # the node posts after the other replicas of its job
    submit_time: np.ndarray = None  # type: ignore[assignment]  # blocks from agreement to the posted result (float)
    excused: np.ndarray = None  # type: ignore[assignment]  # a rejected node not at fault keeps its collateral
    judged: np.ndarray = None  # type: ignore[assignment]  # client judged before the deadline
    judge_time: np.ndarray = None  # type: ignore[assignment]  # blocks from the posted result to the judgement (float)
    check_rate: np.ndarray = None  # type: ignore[assignment]  # client's committed check probability (float)
    checked: np.ndarray = None  # type: ignore[assignment]  # client asked for mediation
    bribe: np.ndarray = None  # type: ignore[assignment]  # offered by the node to the mediator if checked
    mediator: np.ndarray = None  # type: ignore[assignment]  # mediator index (not account), or NO_MEDIATOR
    mediated: np.ndarray = None  # type: ignore[assignment]  # mediator answered before the deadline
    bribe_accepted: np.ndarray = None  # type: ignore[assignment]  # some mediator on the panel took the bribe
    panel: np.ndarray = None  # type: ignore[assignment]  # bit mask of mediator indices who voted
    dissenters: np.ndarray = None  # type: ignore[assignment]  # bit mask of panel members against the verdict
    verdict_accept: np.ndarray = None  # type: ignore[assignment]  # mediation outcome: result accepted
    shared_rerun: np.ndarray = None  # type: ignore[assignment]  # settled by another replica's mediation (no fee)

    # --- outcome (protocol)
    state: np.ndarray = None  # type: ignore[assignment]
    node_slash_to: np.ndarray = None  # type: ignore[assignment]  # who receives value slashed from the node
    client_slash_to: np.ndarray = None  # type: ignore[assignment]  # ... and from the client
    paid: np.ndarray = None  # type: ignore[assignment]  # the node was paid the job cost (set by the base's settle)

    # columns private to one mechanism (e.g. consortium votes), keyed by "<mechanism>.<column>"
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.group is None:
            self.group = self.job.copy()
        for name in ("mediator_collude", "mediator_report"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(len(self.mediator_accounts), dtype=bool))
        for name in _LAZY:  # unset columns take their default when first used (most hooks replace them whole)
            if self.__dict__.get(name, False) is None:
                del self.__dict__[name]

    def __getattr__(self, name: str) -> np.ndarray:
        """A column not set yet: its default (False, 0, 0.0, or NO_MEDIATOR), allocated on first use."""
        default = _LAZY.get(name)
        if default is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        object.__setattr__(self, name, default(len(self)))
        return getattr(self, name)

    def __len__(self) -> int:
        return len(self.deal_id)

    def wrong(self) -> np.ndarray:
        """Deals whose posted result is not the correct one."""
        return self.result != CORRECT

    def node_at_fault(self) -> np.ndarray:
        """Deals whose node mediation proved wrong by its own doing: rejected, but neither the protocol's forced
        error nor a whistleblower's excused result. Such a node loses its collateral (and its stakers' stake) and
        counts as failed on the public record."""
        return (self.state == DealState.MediationRejected) & ~self.forced_error & ~self.excused

    def fixed_columns(self) -> tuple[np.ndarray, ...]:
        """The per-deal match columns: no hook writes them (see MATCH_COLUMNS)."""
        return tuple(getattr(self, name) for name in PER_DEAL_MATCH_COLUMNS)

    def mediator_account(self) -> np.ndarray:
        """Account id of each deal's mediator (NO_MEDIATOR where none)."""
        has = self.mediator != NO_MEDIATOR
        return np.where(has, self.mediator_accounts[np.where(has, self.mediator, 0)], NO_MEDIATOR)

    def row(self, i: int) -> DealBatch:
        """Deal i as a batch of one (copies), as the live stack and the reference model use."""
        sub = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in list(sub.items()):
            if isinstance(value, np.ndarray) and name not in SHARED_COLUMNS:
                sub[name] = value[i : i + 1].copy()
        sub["extra"] = {k: v[i : i + 1].copy() for k, v in self.extra.items()}
        return DealBatch(**sub)

    @classmethod
    def concat(cls, parts: list[DealBatch]) -> DealBatch:
        """Batches joined into one (the inverse of `row`), e.g. a round's jobs for per-round hooks."""
        first = parts[0]
        cols = {}
        for f in fields(cls):
            value = getattr(first, f.name)
            if f.name == "extra":
                value = {k: np.concatenate([p.extra[k] for p in parts]) for k in value}
            elif isinstance(value, np.ndarray) and f.name not in SHARED_COLUMNS:
                value = np.concatenate([getattr(p, f.name) for p in parts])
            cols[f.name] = value
        return cls(**cols)


def _default(name: str) -> Callable[[int], np.ndarray]:
    if name in _FLAGS:
        return _b
    if name in ("check_rate", "submit_time", "judge_time"):
        return np.zeros
    return lambda n: _i(n, NO_MEDIATOR if name == "mediator" else 0)


SHARED_COLUMNS = frozenset({"mediator_accounts", "mediator_threshold", "mediator_collude", "mediator_report"})
#: The per-deal columns fixed when the deal is made (identity, price, costs), in `fixed_columns` order.
PER_DEAL_MATCH_COLUMNS = (
    "deal_id",
    "client",
    "node",
    "job",
    "module",
    "price",
    "instructions",
    "job_cost",
    "compute_cost",
    "mutual_mediators",
    "group",
    "replica",
)
#: Columns fixed when the deal is made (the per-deal ones, the mediators' accounts, the pool base and the round's
#: context): every hook may read them and none writes them. The others are hook data, which a mechanism declares
#: per hook (`Mechanism.columns`).
MATCH_COLUMNS = frozenset({*PER_DEAL_MATCH_COLUMNS, "mediator_accounts", "pool_base", "context"})
#: Columns a batch holds from construction (the match, the shared per-mediator arrays, `extra`); every other column
#: has a default made on first use (`DealBatch.__getattr__`; not class attributes, so an unset one is found missing
#: and defaulted). `replica` is a match column made on first use: 0, one replica per job.
_EAGER = (MATCH_COLUMNS - {"replica"}) | SHARED_COLUMNS | {"extra"}
_LAZY: dict[str, Callable[[int], np.ndarray]] = {}
#: Keys of `DealBatch.extra` fixed at the match: the round's pre-drawn uniforms (see `Mechanism.uniforms`).
MATCH_EXTRA = frozenset({"u"})
_FLAGS = frozenset(
    {
        "client_agreed",
        "node_agreed",
        "submitted",
        "cheated",
        "judged",
        "checked",
        "mediated",
        "bribe_accepted",
        "verdict_accept",
        "forced_error",
        "colluding",
        "accused",
        "reports",
        "waits",
        "excused",
        "paid",
        "shared_rerun",
    }
)


def require_context(deals: DealBatch, who: str) -> RoundContext:
    """The round's public state, for hooks that read balances, escrows or the record (the engine always sets it)."""
    if deals.context is None:
        raise ValueError(f"{who} reads the round context (balances, escrows, public record): set DealBatch.context")
    return deals.context


_LAZY.update({f.name: _default(f.name) for f in fields(DealBatch) if f.name not in _EAGER})
for _name in _LAZY:
    delattr(DealBatch, _name)
