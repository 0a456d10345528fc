"""Tidy per-round tables (one row per deal, one row per agent and round) and a streaming parquet writer.

Tables are built column by column from the round's arrays (no Python loop over deals or agents), so a round with
1e5 deals costs a few milliseconds. Every column is declared once in `DEAL_COLUMNS` / `AGENT_COLUMNS` with its
arrow type and meaning; the schemas, the parquet field metadata and the README table all come from these dicts.
String columns are dictionary-encoded over fixed dictionaries, so every row group of a file shares one dictionary.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mechanisms.actions import Actions
from mechanisms.deals import NO_MEDIATOR
from mechanisms.protocol import PATH, VISITED_MASK, DealState, Direction, Reason
from sim import metrics
from sim.engine import RoundResult
from sim.ledger import Ledger
from sim.market import Market


class Population(Protocol):
    """What the recorder reads of a population (`agents.population.Population` has it; `agents` sits above
    `sim`, docs/architecture.md "Layers"): agents per role and, per role in account order, (strategy, rows)."""

    sizes: Mapping[str, int]
    assignment: Mapping[str, list[tuple[Any, np.ndarray]]]


I64, F64, BOOL = pa.int64(), pa.float64(), pa.bool_()
CAT = pa.dictionary(pa.int32(), pa.string())
NOT_APPLICABLE = -1  # integer action columns of another role; float ones hold NaN


def snake(name: str) -> str:
    """`JudgeTimeoutCollateral` -> `judge_timeout_collateral`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


#: Column of the deal table holding the deal's transfer sum for each reason.
REASON_COLUMN: dict[Reason, str] = {r: f"sum_{snake(r.name)}" for r in Reason}

DEAL_COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "round": (I64, "round the deal was matched and settled in (0-based)"),
    "deal_id": (I64, "deal id, unique in the run, in order of job age within a round"),
    "client": (I64, "account id of the job creator"),
    "node": (I64, "account id of the resource provider"),
    "mediator": (I64, "account id of the mediator drawn for a check, -1 if the result was not checked"),
    "module": (CAT, "module (job type) name"),
    "price": (I64, "agreed price per instruction (base units)"),
    "instructions": (I64, "instruction count of the job"),
    "job_cost": (I64, "price x instructions: what the client pays an accepted result"),
    "compute_cost": (I64, "what running the job honestly costs the node (and a re-running mediator)"),
    "payment_collateral": (I64, "term: client's payment escrow"),
    "judge_collateral": (I64, "term: client's judge-timeout collateral"),
    "submit_collateral": (I64, "term: node's submit-timeout collateral"),
    "results_collateral": (I64, "term: node's results collateral, posted with the result"),
    "mediation_fee": (I64, "term: fee the client escrows for a check, paid to the mediator"),
    "cheated": (BOOL, "the node skipped the computation and posted a fake result"),
    "checked": (BOOL, "the client sent the result to mediation"),
    "bribe": (I64, "bribe the node offers the mediator if its result is checked (0 = none)"),
    "bribe_accepted": (BOOL, "the mediator took the bribe and voted for the fake result"),
    "fake_accepted": (BOOL, "cheated and the node was paid (JobPayment to the node > 0; sim.metrics)"),
    "colluding": (BOOL, "the node was in the cartel this round (a fake result is the cartel's shared one)"),
    "accused": (BOOL, "the client asked colluding mediators to reject the result"),
    "forced_error": (BOOL, "the protocol swapped in a known-wrong result (not the node's fault)"),
    "state": (CAT, "terminal deal state (mechanisms.protocol.DealState name)"),
    "path": (CAT, "states visited, in order, joined by '>' (e.g. DealNegotiating>DealAgreed>...)"),
    "slashed": (I64, "total value slashed on the deal (all reasons)"),
    **{
        col: (I64, f"sum of the deal's {r.name} transfers, every direction (paid in, out, refunded, slashed, spent)")
        for r, col in REASON_COLUMN.items()
    },
}

AGENT_COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "round": (I64, "round (0-based); values are at the end of the round"),
    "account": (I64, "account id (clients, then nodes, then mediators, then stakers)"),
    "role": (CAT, "client, node, mediator (or staker)"),
    "strategy": (CAT, "scripted strategy with its parameters, e.g. cheater(rate=1.0, bribe=30)"),
    "balance": (I64, "free balance"),
    "escrow": (I64, "value held in escrow"),
    "profit": (
        I64,
        "change of balance + escrow over the round (a client's counts payments, not the value of its results)",
    ),
    "deals": (I64, "deals the agent took part in this round (as client, node or drawn mediator)"),
    "cheats": (I64, "of those, deals with a fake result (node: posted, client: received, mediator: judged)"),
    "checks": (I64, "of those, deals whose result was checked"),
    "mediations": (I64, "of those, checks the mediator answered in time"),
    "cheat_rate": (F64, "node action: probability of posting a fake result (NaN for other roles)"),
    "bribe": (I64, "node action: bribe offered when checked (-1 for other roles)"),
    "check_rate": (F64, "client action: probability of checking a result (NaN for other roles)"),
    "bribe_threshold": (I64, "mediator action: smallest bribe accepted, 2^63-1 = incorruptible (-1 for other roles)"),
}


def schema(columns: dict[str, tuple[pa.DataType, str]]) -> pa.Schema:
    return pa.schema([pa.field(name, t, metadata={"doc": doc}) for name, (t, doc) in columns.items()])


DEAL_SCHEMA = schema(DEAL_COLUMNS)
AGENT_SCHEMA = schema(AGENT_COLUMNS)

STATE_NAMES = [s.name for s in DealState]
TERMINALS = sorted(PATH)  # dictionary order of the `path` column
PATH_NAMES = [">".join(s.name for s in PATH[t]) for t in TERMINALS]
_PATH_OF_MASK = np.full(1 << len(DealState), -1, dtype=np.int32)
_PATH_OF_MASK[[VISITED_MASK[t] for t in TERMINALS]] = np.arange(len(TERMINALS), dtype=np.int32)
NO_STRATEGY = "none"  # label of accounts no population group covers (e.g. stakers without a strategy)


def categorical(codes: np.ndarray, names: Sequence[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), pa.array(list(names)))


def reason_sums(result: RoundResult) -> tuple[np.ndarray, np.ndarray]:
    """Per deal: transfer sum per reason (n, len(Reason)) and slashed total."""
    deals, t = result.deals, result.transfers
    n = len(deals)
    row = t.deal_rows(deals.deal_id)
    sums = t.reason_sums(deals.deal_id)
    slashed = np.zeros(n, dtype=np.int64)
    cut = t.direction == Direction.Slashed
    np.add.at(slashed, row[cut], t.amount[cut])
    return sums, slashed


def deal_table(result: RoundResult, module_names: Sequence[str]) -> pa.Table:
    """One row per deal of the round, columns as in `DEAL_COLUMNS`."""
    d = result.deals
    n = len(d)
    path = _PATH_OF_MASK[result.visited]
    if (path < 0).any():
        raise ValueError(f"deal visited states {int(result.visited[path < 0][0]):#b}, not a protocol path")
    sums, slashed = reason_sums(result)
    cols: dict[str, object] = {
        "round": np.full(n, result.round, dtype=np.int64),
        "deal_id": d.deal_id,
        "client": d.client,
        "node": d.node,
        "mediator": d.mediator_account(),
        "module": categorical(d.module, module_names),
        **{
            name: getattr(d, name)
            for name in (
                "price",
                "instructions",
                "job_cost",
                "compute_cost",
                "payment_collateral",
                "judge_collateral",
                "submit_collateral",
                "results_collateral",
                "mediation_fee",
                "cheated",
                "checked",
                "bribe",
                "bribe_accepted",
            )
        },
        "fake_accepted": metrics.fake_accepted(d, result.transfers),
        **{name: getattr(d, name) for name in ("colluding", "accused", "forced_error")},
        "state": categorical(d.state, STATE_NAMES),
        "path": categorical(path, PATH_NAMES),
        "slashed": slashed,
        **{REASON_COLUMN[r]: sums[:, int(r)] for r in Reason},
    }
    return _table(cols, DEAL_SCHEMA)


def _table(cols: dict[str, object], sch: pa.Schema) -> pa.Table:
    arrays = [
        c if isinstance(c, pa.Array) else pa.array(np.asarray(c), type=f.type)
        for c, f in zip(cols.values(), sch, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=sch)


def strategy_label(strategy: object) -> str:
    """`cheater(rate=1.0, bribe=30)`: the name plus parameters, so groups differing only in parameters stay apart.
    A field marked `metadata={"label": "when_set"}` (one added later) is named only when it is not its default."""
    params = ", ".join(
        f"{f.name}={getattr(strategy, f.name)!r}"
        for f in dataclasses.fields(strategy)
        if f.metadata.get("label") != "when_set" or getattr(strategy, f.name) != f.default
    )
    return f"{strategy.name}({params})" if params else strategy.name


def role_codes(market: Market) -> tuple[np.ndarray, list[str]]:
    """Role index per agent account and the role names, in account order (client, node, mediator, ...)."""
    roles = market.facts.role_of()
    names, first, code = np.unique(roles, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return rank[code], [str(n) for n in names[order]]


def strategy_codes(population: Population, n_agents: int) -> tuple[np.ndarray, list[str]]:
    """Label index per agent account (population roles in account order; the rest NO_STRATEGY) and the labels."""
    names: list[str] = []
    codes = []
    for role, groups in population.assignment.items():  # clients, nodes, mediators: the account order
        role_codes = np.zeros(population.sizes[role], dtype=np.int32)
        for strategy, rows in groups:
            label = strategy_label(strategy)
            if label not in names:
                names.append(label)
            role_codes[rows] = names.index(label)
        codes.append(role_codes)
    code = np.concatenate(codes)
    if len(code) < n_agents:
        code = np.concatenate([code, np.full(n_agents - len(code), len(names), dtype=np.int32)])
        names.append(NO_STRATEGY)
    return code, names


def agent_counts(result: RoundResult, n_agents: int) -> dict[str, np.ndarray]:
    """Per agent account: deals it took part in, and how many of those were fake, checked, mediated."""
    d = result.deals
    med = d.mediator_account()
    has_med = med != NO_MEDIATOR
    parties = np.concatenate([d.client, d.node, med[has_med]])
    flags = {"deals": np.ones(len(d), dtype=bool), "cheats": d.cheated, "checks": d.checked, "mediations": d.mediated}
    return {
        k: np.bincount(parties, weights=np.concatenate([f, f, f[has_med]]), minlength=n_agents).astype(np.int64)
        for k, f in flags.items()
    }


class AgentRecorder:
    """Builds the agent table round by round; remembers each agent's wealth to report the round's profit."""

    def __init__(self, market: Market, population: Population, ledger: Ledger) -> None:
        c = market.config
        self.n_agents = c.n_agents
        self.role_code, self.role_names = role_codes(market)
        self.strategy_code, self.strategy_names = strategy_codes(population, self.n_agents)
        self.first_node, self.first_mediator = market.facts.first_node, market.facts.first_mediator
        self.first_staker, self.n_clients = market.facts.first_staker, c.n_clients
        self.wealth = self._wealth(ledger)

    def _wealth(self, ledger: Ledger) -> np.ndarray:
        return ledger.balance[: self.n_agents] + ledger.escrow[: self.n_agents]

    def _action(self, fill: float | int, dtype: type, values: np.ndarray, start: int) -> np.ndarray:
        out = np.full(self.n_agents, fill, dtype=dtype)
        out[start : start + len(values)] = values
        return out

    def table(self, result: RoundResult, actions: Actions, ledger: Ledger) -> pa.Table:
        """One row per agent at the end of the round, columns as in `AGENT_COLUMNS`."""
        n = self.n_agents
        wealth = self._wealth(ledger)
        profit, self.wealth = wealth - self.wealth, wealth
        cols: dict[str, object] = {
            "round": np.full(n, result.round, dtype=np.int64),
            "account": np.arange(n, dtype=np.int64),
            "role": categorical(self.role_code, self.role_names),
            "strategy": categorical(self.strategy_code, self.strategy_names),
            "balance": ledger.balance[:n].copy(),  # arrow may wrap numpy memory: never hand it the live ledger
            "escrow": ledger.escrow[:n].copy(),
            "profit": profit,
            **agent_counts(result, n),
            "cheat_rate": self._action(np.nan, np.float64, actions.nodes.cheat_rate, self.first_node),
            "bribe": self._action(NOT_APPLICABLE, np.int64, actions.nodes.bribe, self.first_node),
            "check_rate": self._action(np.nan, np.float64, actions.clients.check_rate, 0),
            "bribe_threshold": self._action(
                NOT_APPLICABLE, np.int64, actions.mediators.bribe_threshold, self.first_mediator
            ),
        }
        return _table(cols, AGENT_SCHEMA)


class ParquetSink:
    """Streams tables of one schema into a parquet file, in row groups of about `chunk_rows` rows.

    Rows go to a hidden temporary file next to `path`; `commit` renames it into place, `abort` deletes it, so a
    failed run never leaves a half-written table under the final name.
    """

    def __init__(self, path: str | os.PathLike[str], sch: pa.Schema, chunk_rows: int = 1 << 16) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.schema, self.chunk_rows = sch, chunk_rows
        self._buffer: list[pa.Table] = []
        self._rows = 0
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self.tmp, sch, compression="zstd")

    def write(self, table: pa.Table) -> None:
        self._buffer.append(table)
        self._rows += table.num_rows
        if self._rows >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if self._buffer and self._writer is not None:
            self._writer.write_table(pa.concat_tables(self._buffer).combine_chunks())
        self._buffer, self._rows = [], 0

    def commit(self) -> Path:
        self.flush()
        self._close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._buffer, self._rows = [], 0
        self._close()
        self.tmp.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
