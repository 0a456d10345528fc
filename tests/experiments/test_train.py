"""Training with RLlib: outputs (metrics table, TensorBoard, checkpoints), resume, configurable module mapping,
the scan's table and plot, and the acceptance tests: nodes learn the inspection-game threshold, mediators learn
to take a bribe exactly when it beats their expected loss.

All tests share one Ray session (`ray_session`) and run on one xdist worker (group `rllib`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from experiments.evaluate import evaluate
from experiments.train import parse_run, run_scan, train
from marl.env import MarketEnv
from marl.rllib import STATE_FILE, LearnedPolicy, RLlibMarketEnv, latest_checkpoint
from mechanisms.config import ConfigError

pytestmark = pytest.mark.xdist_group("rllib")

REPO = Path(__file__).resolve().parents[2]
#: Two PYTHONHASHSEED values under which a set of the three role names iterates in two different orders.
HASH_SEEDS = ("1", "3")

METRIC_COLUMNS = (
    "iteration",
    "seconds",
    "env_steps",
    "episodes",
    "cheat_rate",
    "fake_accepted",
    "fake_accepted_per_deal",
    "check_rate",
    "bribe_acceptance",
    "return_node",
    "return_client",
    "return_mediator",
    "market_cheat_rate",
    "market_check_rate",
    "market_bribe_acceptance",
)


def test_train_writes_metrics_tensorboard_and_checkpoints(small_run: Any) -> None:
    _, result = small_run
    m = result.metrics
    assert list(m["iteration"]) == [1, 2] and set(METRIC_COLUMNS) <= set(m.columns)
    assert (m["episodes"] == 10).all()  # 100 env steps per iteration / 10 rounds per episode
    assert m["cheat_rate"].between(0, 1).all() and m["check_rate"].between(0, 1).all()
    assert m["return_node"].notna().all() and m["return_client"].notna().all()
    assert m["bribe_acceptance"].isna().all() and m["return_mediator"].isna().all()  # no learning mediator
    pd.testing.assert_frame_equal(pd.read_parquet(result.run_dir / "metrics.parquet"), m)
    assert list((result.run_dir / "tb").glob("events.out.tfevents.*"))
    assert [p.name for p in sorted((result.run_dir / "checkpoints").iterdir())] == ["iter_000001", "iter_000002"]
    assert result.checkpoint == latest_checkpoint(result.run_dir) == result.run_dir / "checkpoints" / "iter_000002"
    assert (result.run_dir / "config.yaml").is_file()


def test_resume_continues_from_the_last_checkpoint(ray_session: Any, train_config: Any, tmp_path: Path) -> None:
    cfg = train_config(
        "+experiment=node_cheat",
        "env.focal={node: 2, client: 0, mediator: 0}",
        "algo.mapping=agent",
        "train.iterations=2",
        "train.checkpoint_every=2",
        "train.progress=false",
        "env.rounds=10",
    )
    first = train(cfg, tmp_path)
    modules = first.checkpoint / "learner_group" / "learner" / "rl_module"
    assert sorted(p.name for p in modules.iterdir() if p.is_dir()) == ["node_0", "node_1"]  # one module per agent
    with pytest.raises(ConfigError, match="resume=true"):
        train(cfg, tmp_path)
    lines: list[str] = []
    second = train(
        {**cfg, "train": {**cfg["train"], "iterations": 3, "progress": True}}, tmp_path, resume=True, log=lines.append
    )
    assert lines[0].startswith("resumed from") and "(iteration 2)" in lines[0]
    assert lines[1].startswith("iter     3/3")
    assert list(second.metrics["iteration"]) == [1, 2, 3]
    assert list(second.metrics["env_steps"]) == [100, 200, 300]  # RLlib's counters came back with the state
    assert second.checkpoint.name == "iter_000003" and (second.checkpoint / STATE_FILE).is_file()


def test_rllib_env_reports_all_done(train_config: Any) -> None:
    env = RLlibMarketEnv(parse_run(train_config("+experiment=node_cheat", "env.rounds=2")).env)
    obs, _ = env.reset(seed=0)
    assert set(obs) == set(env.possible_agents) == set(env.agents)
    _, _, term, trunc, _ = env.step({a: env.action_spaces[a].sample() for a in env.agents})
    assert term["__all__"] is False and trunc["__all__"] is False
    _, _, term, _, infos = env.step({a: env.action_spaces[a].sample() for a in env.agents})
    assert term["__all__"] is True and env.agents == [] and "episode" in infos[env.names.index("node_0")]
    assert env.possible_agents == list(range(len(env.names)))  # RLlib sees indices: ints hash alike in every process


def test_scan_writes_table_and_plot(ray_session: Any, train_config: Any, tmp_path: Path) -> None:
    cfg = train_config(
        "+experiment=cheat_threshold",
        "scan.values=[0.05,0.4]",
        "train.iterations=1",
        "train.progress=false",
        "evaluation.episodes=2",
        "env.rounds=5",
    )
    table = run_scan(cfg, tmp_path, log=lambda line: None)
    assert list(table["value"]) == [0.05, 0.4] and table["cheat_rate"].between(0, 1).all()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "scan.parquet"), table)
    assert (tmp_path / "scan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "agents.clients.0.q=0.4" / "metrics.parquet").is_file()


def trained_rate(cfg: dict[str, Any], run_dir: Path, rate: str, record: Any) -> float:
    """Train, then evaluate the learned policy (sampled actions) on 10 fixed-seed episodes."""
    result = train(cfg, run_dir, keep_algo=True)
    try:
        env_cfg = parse_run(cfg).env
        policy = LearnedPolicy.from_algorithm(result.algo, "role", MarketEnv(env_cfg))
        value = evaluate(env_cfg, policy, episodes=10, seed=1000).summary["focal"]["rates"][rate]
    finally:
        result.algo.stop()
    record(rate, float(value))
    return value


@pytest.mark.slow
@pytest.mark.parametrize(("q", "cheats"), [(0.05, True), (0.4, False)])
def test_nodes_learn_to_cheat_iff_checks_are_rare(
    ray_session: Any, train_config: Any, tmp_path: Path, q: float, cheats: bool, record_property: Any
) -> None:
    """Cheating pays 10 - 30 q against 4 for honest work: worth it iff q < 0.2."""
    cfg = train_config(
        "+experiment=node_cheat", f"agents.clients.0.q={q}", "train.iterations=12", "train.progress=false"
    )
    rate = trained_rate(cfg, tmp_path, "cheat_rate", record_property)
    assert rate >= 0.8 if cheats else rate <= 0.2, f"q={q}: learned cheat rate {rate:.3f}"


@pytest.mark.slow
@pytest.mark.parametrize(("penalty", "takes"), [(10, True), (50, False)])
def test_mediators_take_bribes_iff_they_beat_the_expected_loss(
    ray_session: Any, train_config: Any, tmp_path: Path, penalty: int, takes: bool, record_property: Any
) -> None:
    """A bribe of 20 plus the skipped re-run (6) against an expected loss of `penalty` per bribe taken."""
    cfg = train_config(
        "+experiment=mediator_bribe", f"env.bribe_penalty={penalty}", "train.iterations=12", "train.progress=false"
    )
    rate = trained_rate(cfg, tmp_path, "bribe_acceptance", record_property)
    assert rate >= 0.8 if takes else rate <= 0.2, f"penalty {penalty}: learned bribe acceptance {rate:.3f}"
    assert np.isfinite(rate)


@pytest.mark.slow
def test_training_does_not_depend_on_string_hashing(tmp_path: Path) -> None:
    """The same short training (three modules, so their order matters) in two processes with different
    PYTHONHASHSEED values gives identical metrics: no set of names reaches RLlib or a config."""
    probe = "print(list({'client', 'node', 'mediator'}))"
    orders = [
        subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": h},
        ).stdout
        for h in HASH_SEEDS
    ]
    assert orders[0] != orders[1]  # string hashing does reorder sets under these two seeds
    tables = []
    for h in HASH_SEEDS:
        run_dir = tmp_path / f"hash_{h}"
        cmd = [
            sys.executable,
            "-m",
            "experiments.train",
            "+experiment=node_cheat",
            f"run_dir={run_dir}",
            "env.focal={node: 2, client: 2, mediator: 2}",
            "env.rounds=5",
            "train.iterations=2",
            "train.progress=false",
            "algo.training.train_batch_size_per_learner=25",
            "algo.training.minibatch_size=25",
            "algo.training.num_epochs=1",
            "ray.num_cpus=1",
        ]
        env = {
            **os.environ,
            "PYTHONHASHSEED": h,
            "RAY_TMPDIR": os.environ.get("RAY_TMPDIR", "/tmp/ray"),
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        tables.append(pd.read_parquet(run_dir / "metrics.parquet").drop(columns="seconds"))
    assert list(tables[0]["iteration"]) == [1, 2] and tables[0]["return_mediator"].notna().all()
    pd.testing.assert_frame_equal(tables[0], tables[1])
