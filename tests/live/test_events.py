"""An on-chain history decodes into a table with the columns of deals.parquet, whose public columns equal the twin's."""

from __future__ import annotations

import pyarrow as pa

from live.chain.differential import run_engine
from live.chain.events import deal_table, fetch
from live.chain.node import AnvilChain
from live.chain.replay import deploy_market, replay
from live.chain.scenarios import diff_cfg
from mechanisms.protocol import OFF_CHAIN_REASONS
from sim.records import DEAL_SCHEMA, REASON_COLUMN
from sim.records import deal_table as twin_deal_table

PUBLIC = [
    "deal_id",
    "client",
    "node",
    "mediator",
    "module",
    "price",
    "instructions",
    "job_cost",
    "compute_cost",
    "payment_collateral",
    "judge_collateral",
    "submit_collateral",
    "results_collateral",
    "mediation_fee",
    "checked",
    "state",
    "path",
    "slashed",
    *(col for r, col in REASON_COLUMN.items() if r not in OFF_CHAIN_REASONS),
]


def test_chain_history_is_a_deal_table() -> None:
    comp, results = run_engine(diff_cfg(), 3)
    m = comp.market
    names = [mod.name for mod in m.config.modules]
    with AnvilChain(m.config.n_agents + 2) as chain:
        dep, who = deploy_market(
            chain,
            comp.stack,
            m.facts.initial_balances(),
            m.config.n_agents,
            m.facts.pool_base,
            m.facts.mediator_accounts(),
        )
        start = chain.block_number() + 1
        for r in results:
            replay(dep, who, comp.stack, r.deals)
        table = deal_table(
            fetch(dep, start), who.book, dep.params, dep.mediators, names, m.module_compute_cost, m.facts.pool_base
        )
    assert table.schema.names == DEAL_SCHEMA.names
    twin = pa.concat_tables([twin_deal_table(r, names) for r in results])
    exists = [bool(a or b) for r in results for a, b in zip(r.deals.client_agreed, r.deals.node_agreed, strict=True)]
    twin = twin.filter(pa.array(exists))  # a deal nobody agreed to never reaches the chain
    assert table.num_rows == twin.num_rows > 0
    for col in PUBLIC:
        got, want = table.column(col).to_pylist(), twin.column(col).to_pylist()
        assert got == want, col
