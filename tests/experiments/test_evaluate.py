"""Evaluation: a checkpoint restores to exactly the evaluation of the live policy, tables are reproducible from the
seed, evaluate runs from a training run directory or with scripted strategies, and its CLI prints the summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from experiments.evaluate import evaluate, run_evaluation
from experiments.train import parse_run
from marl.env import MarketEnv
from marl.rllib import LearnedPolicy
from mechanisms.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def assert_same_evaluation(a: Any, b: Any) -> None:
    pd.testing.assert_frame_equal(a.episodes, b.episodes)
    pd.testing.assert_frame_equal(a.agents, b.agents)
    assert a.summary == b.summary


@pytest.mark.xdist_group("rllib")
def test_checkpoint_restores_to_the_same_evaluation(small_run: Any) -> None:
    cfg, result = small_run
    env_cfg = parse_run(cfg).env
    live = LearnedPolicy.from_algorithm(result.algo, "role", MarketEnv(env_cfg))
    restored = LearnedPolicy.from_checkpoint(result.checkpoint, "role", MarketEnv(env_cfg))
    first = evaluate(env_cfg, live, episodes=3, seed=7)
    assert_same_evaluation(first, evaluate(env_cfg, restored, episodes=3, seed=7))
    assert_same_evaluation(first, evaluate(env_cfg, restored, episodes=3, seed=7))
    relative = LearnedPolicy.from_checkpoint(os.path.relpath(result.checkpoint), "role", MarketEnv(env_cfg))
    assert_same_evaluation(first, evaluate(env_cfg, relative, episodes=3, seed=7))  # run_dir=outputs/train/...
    with pytest.raises(AssertionError):
        assert_same_evaluation(first, evaluate(env_cfg, restored, episodes=3, seed=8))
    greedy = evaluate(env_cfg, restored, episodes=2, seed=7, explore=False)
    assert_same_evaluation(greedy, evaluate(env_cfg, live, episodes=2, seed=7, explore=False))


@pytest.mark.xdist_group("rllib")
def test_evaluate_a_training_run_directory(small_run: Any, train_config: Any, tmp_path: Path) -> None:
    _, result = small_run
    cfg = train_config(f"run_dir={result.run_dir}", "episodes=2", config_name="evaluate")
    ev = run_evaluation(cfg, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"episodes.parquet", "agents.parquet", "summary.json", "config.yaml"}
    assert ev.summary["checkpoint"] == str(result.checkpoint) and ev.summary["policy"] == "learned"
    assert json.loads((tmp_path / "summary.json").read_text()) == ev.summary
    episodes = pd.read_parquet(tmp_path / "episodes.parquet")
    assert list(episodes["scope"]) == ["focal", "market"] * 2
    agents = pd.read_parquet(tmp_path / "agents.parquet")
    assert len(agents) == 2 * (8 + 8 + 3) and agents["focal"].sum() == 2 * 3  # 2 nodes and 1 client learn
    assert set(agents.loc[agents["focal"], "strategy"]) == {"learned"}
    focal_nodes = agents[agents["focal"] & (agents["role"] == "node")]
    assert ev.summary["focal"]["counts"]["node_cheated"] == focal_nodes["cheated"].sum()


def test_scripted_evaluation_without_checkpoint(train_config: Any, tmp_path: Path) -> None:
    cfg = train_config(
        "+experiment=node_cheat", "agents.nodes=[{strategy: cheater, rate: 1.0}]", "episodes=2", config_name="evaluate"
    )
    ev = run_evaluation(cfg, tmp_path)
    assert ev.summary["policy"] == "scripted" and ev.summary["checkpoint"] is None
    assert ev.summary["focal"]["rates"]["cheat_rate"] == 1.0
    assert set(ev.agents.loc[ev.agents["role"] == "node", "strategy"]) == {"cheater"}  # focal rows too


def test_run_dir_must_be_a_training_run(train_config: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run_dir"):
        run_evaluation(train_config(f"run_dir={tmp_path}", config_name="evaluate"), tmp_path / "out")


def test_cli_prints_the_summary(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.evaluate",
            "+experiment=node_cheat",
            "episodes=1",
            f"out_dir={tmp_path}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "1 episodes  seed 1000  policy scripted" in out.stdout and (tmp_path / "episodes.parquet").is_file()
