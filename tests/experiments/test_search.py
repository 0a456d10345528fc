"""The mechanism search: a small Optuna budget finds a secure mechanism cheaper than the Lilypad v2 preset at equal
security (clients of the preset checking at q = 0.25, above its threshold 0.2), and the winner's config file loads
unchanged in simulate and in the analysis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from experiments.analysis import configs
from experiments.analysis.assess import assess, make_scenario, parse_study
from experiments.search import evaluate

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR", str(REPO / ".runtime" / "mpl"))}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("search")
    proc = cli("-m", "experiments.search", "+experiment=search_small", f"hydra.sweep.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "winner vs reference" in proc.stdout and "load it:" in proc.stdout
    return out


def test_search_finds_a_cheaper_secure_mechanism(sweep_dir: Path) -> None:
    summary = json.loads((sweep_dir / "search_summary.json").read_text())
    winner, reference = summary["winner"], summary["reference"]
    assert summary["trials"] == 12 and summary["secure_trials"] >= 1
    assert winner["secure"] and winner["max_gain"] <= 0
    assert reference["secure"] and reference["max_gain"] <= 0  # equal security
    assert winner["cost_per_correct_result"] < reference["cost_per_correct_result"]
    # Optuna's own record agrees on the winner when the best trial is secure
    best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert best.best_value == pytest.approx(winner["objective"])


def test_the_winner_loads_unchanged(sweep_dir: Path, tmp_path: Path) -> None:
    path = sweep_dir / "mechanism" / "searched.yaml"
    written = OmegaConf.to_container(OmegaConf.load(path))
    assert written["order"] == ["lilypad_v2", "check_policy"] and "defaults" not in written
    composed = configs.mechanism("searched", [sweep_dir])
    assert composed == written
    trial = OmegaConf.to_container(
        OmegaConf.load(
            sweep_dir
            / str(json.loads((sweep_dir / "search_summary.json").read_text())["winner"]["job"])
            / "mechanism.yaml"
        )
    )
    assert {k: v for k, v in composed.items() if k != "description"} == {
        k: v for k, v in trial.items() if k != "description"
    }
    # the simulate entry point, with the sweep directory on Hydra's search path
    proc = cli(
        "-m",
        "experiments.simulate",
        f"hydra.searchpath=[file://{sweep_dir}]",
        "mechanism=searched",
        "market=threshold",
        "agents=honest",
        "rounds=3",
        "progress=false",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = OmegaConf.to_container(OmegaConf.load(tmp_path / "config.yaml"))
    assert ran["mechanism"] == written
    # and the analysis: the same metrics as the trial measured (same study, same seeds)
    cfg = {
        "market": configs.group("market", "threshold"),
        "agents": configs.group("agents", "honest"),
        "mechanism": composed,
    }
    study = parse_study(configs.compose_plain("search", ["+experiment=search_small"])["study"])
    again = assess(make_scenario(cfg, study), study)
    summary = json.loads((sweep_dir / "search_summary.json").read_text())
    assert again.cost["cost_per_correct_result"] == pytest.approx(summary["winner"]["cost_per_correct_result"])


def test_invalid_combinations_get_the_invalid_objective() -> None:
    cfg = configs.compose_plain("search", ["mechanism.check_policy.q=1.5"])
    result = evaluate(cfg)
    assert result["objective"] == cfg["invalid_objective"] and "check_policy.q" in result["error"]
