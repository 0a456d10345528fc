"""Every report reads the same metric definitions (`sim.metrics`): the simulate summary, the analysis's cost
meter and the ranked table's mixed-population column give the same number for the same run, and with replicas the
per-job figures are per job offer, not per deal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from experiments.analysis import configs
from experiments.analysis.runner import Scenario, run
from experiments.analyze import mixed_runs
from experiments.simulate import run_simulation

MARKET = {"n_clients": 80, "n_nodes": 80, "n_stakers": 10}
ROUNDS, SEED = 6, 2
NO_FORFEIT = {"order": ["lilypad_v2"], "lilypad_v2": {"mediation_fee": 80, "forfeit_payment": False}}
SHARED = ("fake_accepted_per_job", "extra_executions_per_job")


@pytest.mark.parametrize("mechanism", ["dong_counter_collusion", "lilypad_v2 without forfeit"])
def test_summary_cost_analysis_and_ranked_table_agree(mechanism: str, tmp_path: Path) -> None:
    mech = configs.mechanism(mechanism) if mechanism == "dong_counter_collusion" else NO_FORFEIT
    agents = configs.group("agents", "default")
    market = {**configs.group("market", "default"), **MARKET}
    summary = run_simulation(
        {"seed": SEED, "rounds": ROUNDS, "progress": False, "market": market, "mechanism": mech, "agents": agents},
        tmp_path / "sim",
    )
    cost = run(Scenario(market, mech, agents, rounds=ROUNDS), SEED).cost
    mixed = mixed_runs({mechanism: mech}, {"market": market}, {"seeds": [SEED]}, ROUNDS, tmp_path / "analysis")
    deals = pd.read_parquet(tmp_path / "sim" / "deals.parquet")

    assert summary["fake_accepted"] == deals["fake_accepted"].sum() > 0
    assert summary["fake_accepted_per_job"] == summary["fake_accepted"] / summary["jobs"]
    assert summary["fake_accepted_per_deal"] == summary["fake_accepted"] / summary["deals"]
    for key in SHARED:
        assert cost[key] == pytest.approx(summary[key], rel=1e-12), key
    assert mixed.loc[mechanism, "fake_accepted_per_job"] == pytest.approx(summary["fake_accepted_per_job"], rel=1e-12)
    if mechanism == "dong_counter_collusion":  # two replicas per job
        assert summary["deals"] > 1.9 * summary["jobs"]
        assert summary["fake_accepted_per_job"] > 1.9 * summary["fake_accepted_per_deal"]
        assert summary["checks_per_job"] > 1.9 * summary["checks_per_deal"]
    else:  # a rejected fake is still paid, so it counts as accepted
        rejected = deals["state"].astype(str) == "MediationRejected"
        assert (deals["fake_accepted"] & rejected).any()
        assert summary["fake_accepted"] == (deals["cheated"] & (deals["sum_job_payment"] > 0)).sum()


def test_profit_per_strategy_is_per_deal(tmp_path: Path) -> None:
    cfg: dict[str, Any] = {
        "seed": SEED,
        "rounds": 2,
        "progress": False,
        "market": {**configs.group("market", "default"), **MARKET},
        "mechanism": configs.mechanism("dong_counter_collusion"),
        "agents": configs.group("agents", "default"),
    }
    s = run_simulation(cfg, tmp_path)
    agents = pd.read_parquet(tmp_path / "agents.parquet")
    node = s["profit_per_role"]["node"]
    assert node["deals"] == agents.loc[agents.role == "node", "deals"].sum() == s["deals"]
    assert node["per_deal"] == node["total"] / node["deals"]
