"""Every named mechanism preset composes through Hydra, validates and runs in `simulate`."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.simulate import run_simulation

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PRESETS = sorted(p.stem for p in (CONFIGS / "mechanism").glob("*.yaml"))


def test_the_issue_presets_exist() -> None:
    assert {
        "lilypad_v2",
        "modicum",
        "dong_counter_collusion",
        "truebit_jackpot",
        "consortium_staking_reputation",
        "none",
    } <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_in_simulate(preset: str, tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="simulate",
            overrides=[
                f"mechanism={preset}",
                "rounds=3",
                "progress=false",
                "market.n_clients=60",
                "market.n_nodes=60",
                "market.n_stakers=20",
            ],
        )
    summary = run_simulation(OmegaConf.to_container(cfg, resolve=True), tmp_path)
    assert summary["value_conserved"] and summary["deals"] > 0
    assert summary["client_cost_per_job"] > 0
    if preset == "none":
        assert summary["checks"] == 0 and summary["extra_executions_per_job"] == 0
    if preset == "dong_counter_collusion":
        assert summary["deals"] > summary["jobs"]  # replicas
