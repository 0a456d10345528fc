"""Fixtures for the RLlib tests: one Ray session for the whole test process, and train configs composed by Hydra.

Ray starts once (about 9 s on two cores) and serves every test that uses `ray_session`; those tests carry
`pytest.mark.xdist_group("rllib")` so that `pytest -n 2 --dist loadgroup` runs them all on one worker. Ray's state
goes to RAY_TMPDIR (default /tmp/ray), token authentication is off for this local session (nothing is written
into the home directory), and torch uses one thread (tiny networks on a shared two-core machine).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

ComposeTrain = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    os.environ.setdefault("RAY_TMPDIR", "/tmp/ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("MPLCONFIGDIR", str(tmp_path_factory.mktemp("mpl")))
    import ray
    import torch

    torch.set_num_threads(1)
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}}
        )
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def train_config() -> ComposeTrain:
    """`train_config(*overrides, config_name="train")`: a composed config as a plain dict (run_dir and resume
    removed, as `experiments.train.main` does)."""

    def make(*overrides: str, config_name: str = "train") -> dict[str, Any]:
        with initialize_config_dir(str(CONFIGS), version_base="1.3"):
            cfg = OmegaConf.to_container(compose(config_name, overrides=list(overrides)), resolve=True)
        cfg.pop("resume", None)
        if config_name == "train":
            cfg.pop("run_dir", None)
        return cfg

    return make


@pytest.fixture(scope="session")
def small_run(ray_session: Any, train_config: ComposeTrain, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 2-iteration training of 2 nodes and 1 client (one module each) with checkpoints at 1 and 2, the live
    algorithm kept for comparisons with its restored checkpoint. Shared by train and evaluate tests."""
    from experiments.train import train

    cfg = train_config(
        "+experiment=node_cheat",
        "env.focal={node: 2, client: 1, mediator: 0}",
        "train.iterations=2",
        "train.checkpoint_every=1",
        "train.progress=false",
        "env.rounds=10",
    )
    result = train(cfg, tmp_path_factory.mktemp("small_run"), keep_algo=True)
    yield cfg, result
    result.algo.stop()
