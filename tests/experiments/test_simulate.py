"""The simulate entry point: reproducible bytes, validation before any output, the Hydra CLI, a coherent summary."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments import simulate
from experiments.simulate import OUTPUTS, format_summary, parse_run, run_simulation
from mechanisms.config import ConfigError
from sim.records import deal_table

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
SMALL = {
    "seed": 3,
    "rounds": 4,
    "progress": False,
    "market": {"n_clients": 40, "n_nodes": 40, "n_mediators": 3, "response": {"node_submit": 15.0}},
    "mechanism": {"order": ["lilypad_v2"], "lilypad_v2": {"mediation_fee": 60}},
    "agents": {
        "nodes": [
            {"strategy": "honest", "share": 0.5},
            {"strategy": "cheater", "share": 0.5, "rate": 1.0, "bribe": 30},
        ],
        "clients": [{"strategy": "checker", "q": 0.3}],
        "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 20}],
    },
}
TABLES = ("deals.parquet", "agents.parquet")


def with_value(path: str, value: object) -> dict:
    """SMALL with one dotted field replaced (list indices as numbers), e.g. `market.n_nodes`."""
    cfg = copy.deepcopy(SMALL)
    *parents, leaf = path.split(".")
    node = cfg
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return cfg


def composed(*overrides: str) -> dict:
    """The config Hydra would hand the app, as a plain mapping."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="simulate", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def test_same_config_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = run_simulation(SMALL, tmp_path / "a")
    b = run_simulation(SMALL, tmp_path / "b")
    c = run_simulation({**SMALL, "seed": 4}, tmp_path / "c")
    assert a == b and a != c
    for name in OUTPUTS:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for name in TABLES:
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(OUTPUTS)


def test_summary_agrees_with_the_tables(tmp_path: Path) -> None:
    s = run_simulation(SMALL, tmp_path, chunk_rows=50)  # small row groups: streaming over several chunks
    deals = pd.read_parquet(tmp_path / "deals.parquet")
    agents = pd.read_parquet(tmp_path / "agents.parquet")
    assert json.loads((tmp_path / "summary.json").read_text()) == s
    assert OmegaConf.to_container(OmegaConf.load(tmp_path / "config.yaml")) == SMALL
    assert s["deals"] == len(deals) and s["rounds"] == SMALL["rounds"] == agents["round"].nunique()
    assert s["fake_accepted"] == deals["fake_accepted"].sum() > 0
    assert s["checks"] == deals["checked"].sum() and s["cheated"] == deals["cheated"].sum()
    assert s["cheat_rate"] == pytest.approx(deals["cheated"].sum() / deals["path"].str.contains("Submitted").sum())
    assert sum(s["deals_per_state"].values()) == len(deals)
    for role, v in s["profit_per_role"].items():
        assert v["total"] == agents.loc[agents.role == role, "profit"].sum()
        assert v["deals"] == agents.loc[agents.role == role, "deals"].sum()
    assert sum(v["total"] for v in s["profit_per_strategy"].values()) == agents["profit"].sum()
    assert s["value_conserved"] is True
    assert agents["profit"].sum() + sum(s["pool_inflow"].values()) == 0
    text = format_summary(s)
    assert "cheat rate" in text and "node cheater(rate=1.0, bribe=30)" in text and "MediationRejected" in text


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("market.n_nodes", 0, "market.n_nodes=0 is invalid: allowed an integer in [1, "),
        ("market.fixed_price_share", 1.5, "market.fixed_price_share"),
        ("market.trust_profiles", [[0, 9]], "market.trust_profiles[0]"),
        ("mechanism.lilypad_v2.mediation_fee", -1, "mechanism.lilypad_v2.mediation_fee"),
        ("mechanism.lilypad_v2.mediation_fee", 5, "mechanism.lilypad_v2.mediation_fee"),  # below the re-run cost
        ("mechanism.lilypad_v2.bogus", 1, "mechanism.lilypad_v2: unknown field(s) ['bogus']"),
        ("mechanism.order", ["nope"], "mechanism.order[0]='nope' is invalid"),
        ("agents.nodes.0.strategy", "saint", "agents.nodes[0].strategy='saint' is invalid"),
        ("agents.clients.0.q", 2, "agents.clients[0].q"),
        ("rounds", 0, "rounds=0"),
        ("seed", -1, "seed=-1"),
        ("progress", "yes", "progress"),
        ("typo", 1, "unknown field(s) ['typo']"),
    ],
)
def test_bad_value_stops_before_any_output(tmp_path: Path, field: str, value: object, named: str) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        run_simulation(with_value(field, value), out)
    assert named in str(err.value)
    assert not out.exists()


def test_failure_mid_run_leaves_no_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def failing(*args: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return real(*args)

    real = simulate.deal_table
    monkeypatch.setattr(simulate, "deal_table", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_simulation(SMALL, tmp_path, chunk_rows=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("market", "agents"),
    [("default", "default"), ("default", "honest"), ("threshold", "default"), ("threshold", "honest")],
)
def test_every_config_option_validates(market: str, agents: str) -> None:
    parse_run(composed(f"market={market}", f"agents={agents}"))


def test_threshold_market_is_the_inspection_game(tmp_path: Path) -> None:
    cfg = composed("market=threshold", "rounds=2", "progress=false", "market.n_clients=30", "market.n_nodes=30")
    run_simulation(cfg, tmp_path)
    deals = pd.read_parquet(tmp_path / "deals.parquet")
    assert len(deals) == 60  # everybody active, everybody matched, nobody late
    assert (deals["price"] == 10).all() and (deals["job_cost"] == 10).all() and (deals["compute_cost"] == 6).all()
    assert not deals["state"].astype(str).str.startswith("Timeout").any()


def test_hydra_cli(tmp_path: Path) -> None:
    overrides = [
        "rounds=2",
        "market.n_clients=20",
        "market.n_nodes=20",
        "progress=false",
        "mechanism.lilypad_v2.mediation_fee=70",
    ]
    run_dir = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.simulate", *overrides, f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "cheat rate" in proc.stdout and "deals per state" in proc.stdout
    for name in OUTPUTS:
        assert (run_dir / name).is_file(), name
    config = OmegaConf.load(run_dir / "config.yaml")
    assert config.rounds == 2 and config.mechanism.lilypad_v2.mediation_fee == 70
    # the same config through the plain function gives the same bytes (and the same summary) in another process
    again = tmp_path / "again"
    summary = run_simulation(composed(*overrides), again)
    assert summary == json.loads((run_dir / "summary.json").read_text())
    for name in TABLES:
        assert (run_dir / name).read_bytes() == (again / name).read_bytes(), name


def test_hydra_cli_rejects_a_bad_value(tmp_path: Path) -> None:
    run_dir = tmp_path / "bad"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.simulate",
            "market.n_nodes=0",
            "progress=false",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "market.n_nodes=0 is invalid" in proc.stderr
    assert not any((run_dir / name).exists() for name in OUTPUTS)


def test_seed_n_in_a_test_is_seed_n_in_simulate(tmp_path: Path, make_engine) -> None:
    """Tests build engines with the same builder as `simulate`: the same seed gives the same deals, row for row."""
    run_simulation(SMALL, tmp_path)
    written = pd.read_parquet(tmp_path / "deals.parquet")
    engine, population = make_engine(SMALL["market"], SMALL["mechanism"]["lilypad_v2"], SMALL["agents"], SMALL["seed"])
    modules = [m.name for m in engine.market.config.modules]
    rows = [deal_table(engine.step(population.actions(i)), modules).to_pandas() for i in range(SMALL["rounds"])]
    assert len(written) > 0
    pd.testing.assert_frame_equal(pd.concat(rows, ignore_index=True), written)


def test_memory_does_not_grow_with_rounds(tmp_path: Path) -> None:
    """Rounds x deals is bounded by disk: tables stream out in row groups and nothing kept per round piles up
    (numpy and Python allocations, traced; arrow's own buffers are flushed every `chunk_rows` rows)."""
    cfg = with_value("market.n_clients", 2000)
    cfg["market"]["n_nodes"] = 2000

    def peak(rounds: int) -> int:
        tracemalloc.start()
        try:
            run_simulation({**cfg, "rounds": rounds}, tmp_path / str(rounds), chunk_rows=4000)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(1)  # one-time costs (imports, compiled code, caches) out of the way
    short, long = peak(3), peak(30)
    assert long < 1.2 * short, (short, long)
    assert pq.ParquetFile(tmp_path / "30" / "deals.parquet").metadata.num_row_groups >= 10
