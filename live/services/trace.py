"""A live run as twin tables: `deals.parquet` from the chain's events (`live.chain.events`, the twin's deal
columns) completed with what only the parties know (whether a node really cheated, bribes), and `agents.parquet`
with the twin's agent columns (one row per agent: balances at the end, the run's profit, its deals)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from live.chain import events
from live.services.layout import Layout
from live.services.policy import LiveMarket
from mechanisms.protocol import DealState
from sim.records import AGENT_SCHEMA, NO_STRATEGY, categorical

PAID = ("ResultsAccepted", "TimeoutJudgeResults", "MediationAccepted")


def deal_table(dep: Any, who: Layout, market: LiveMarket, truth: Mapping[str, Mapping[str, Any]]) -> pa.Table:
    """The deals of the run (round = block of creation); `truth[deal id hex]` = {cheat, bribe} from the nodes."""
    h = events.fetch(dep, dep.block)
    c = market.config
    table = events.deal_table(
        h,
        who.book,
        dep.params,
        dep.mediators,
        market.module_names,
        [m.compute_cost for m in c.modules],
        len(who.agents),
    )
    ids = sorted(h.terms, key=lambda d: h.terms[d].nonce)
    cheated = np.array([bool(truth.get(i.hex(), {}).get("cheat", False)) for i in ids], dtype=bool)
    bribe = np.array([int(truth.get(i.hex(), {}).get("bribe", 0)) for i in ids], dtype=np.int64)
    state = np.array([str(s) for s in table.column("state").to_pylist()])
    for name, values in (
        ("cheated", pa.array(cheated)),
        ("bribe", pa.array(bribe)),
        ("fake_accepted", pa.array(cheated & np.isin(state, PAID))),
    ):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(name), values)
    return table


def agent_table(
    who: Layout,
    market: LiveMarket,
    deals: pa.Table,
    before: Mapping[str, int],
    after: Mapping[str, int],
    labels: Sequence[str],
    actions: Mapping[str, Sequence[Any]],
) -> pa.Table:
    """One row per agent (round 0 = the whole run); `labels` = strategy label per agent in account order;
    `actions` = the role action columns per agent (cheat_rate, bribe, check_rate, bribe_threshold)."""
    agents = who.agents
    n = len(agents)
    c = market.config
    roles = ["client"] * c.n_clients + ["node"] * c.n_nodes + ["mediator"] * c.n_mediators
    d = deals.to_pydict()
    counts = {k: np.zeros(n, dtype=np.int64) for k in ("deals", "cheats", "checks", "mediations")}
    for i in range(deals.num_rows):
        parties = [d["client"][i], d["node"][i]] + ([d["mediator"][i]] if d["mediator"][i] >= 0 else [])
        mediated = d["state"][i] in ("MediationAccepted", "MediationRejected")
        for p in parties:
            counts["deals"][p] += 1
            counts["cheats"][p] += d["cheated"][i]
            counts["checks"][p] += d["checked"][i]
            counts["mediations"][p] += mediated
    names = sorted(set(labels) | {NO_STRATEGY})
    balance = np.array([after[a] for a in agents], dtype=np.int64)
    cols: dict[str, Any] = {
        "round": np.zeros(n, dtype=np.int64),
        "account": np.arange(n, dtype=np.int64),
        "role": categorical(
            np.array([["client", "node", "mediator"].index(r) for r in roles], dtype=np.int32),
            ["client", "node", "mediator"],
        ),
        "strategy": categorical(np.array([names.index(s) for s in labels], dtype=np.int32), names),
        "balance": balance,
        "escrow": np.zeros(n, dtype=np.int64),
        "profit": balance - np.array([before[a] for a in agents], dtype=np.int64),
        **counts,
        **{k: np.asarray(v) for k, v in actions.items()},
    }
    return pa.Table.from_arrays(
        [
            pa.array(cols[f.name], type=f.type) if not isinstance(cols[f.name], pa.Array) else cols[f.name]
            for f in AGENT_SCHEMA
        ],
        schema=AGENT_SCHEMA,
    )


def write(out: Path, deals: pa.Table, agents: pa.Table) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(deals, out / "deals.parquet")
    pq.write_table(agents, out / "agents.parquet")


def terminal_counts(deals: pa.Table) -> dict[str, int]:
    states = deals.column("state").to_pylist()
    return {s.name: states.count(s.name) for s in DealState if states.count(s.name)}
