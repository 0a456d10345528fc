"""The twin calibrated from a live run reproduces it: terminal-state shares and the cheat-caught rate of the twin
on the calibrated config lie within the live run's 99% intervals (Wilson score intervals on the live counts)."""

from __future__ import annotations

import asyncio
import collections
import math

import pyarrow.parquet as pq
import pytest

from experiments.analysis.configs import compose_plain, searchpath_override
from experiments.calibrate import calibrate
from experiments.simulate import run_simulation
from live.chain.node import anvil_available
from live.main import run_live

pytestmark = [pytest.mark.xdist_group("docker")]
Z99 = 2.5758


def wilson(k: int, n: int, z: float = Z99) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_twin_calibrated_from_a_live_run_matches_it(docker_host, docker_client, images_lock, tmp_path) -> None:
    if not anvil_available():
        pytest.skip("anvil is not installed (npm ci)")
    cfg = compose_plain("live", ["block_s=0.05", "bare_runs=1"])
    live = tmp_path / "live"
    asyncio.run(run_live(cfg, live, docker_host, docker_client, images_lock))
    calibrate(live, tmp_path / "cal")
    twin_cfg = compose_plain(
        "simulate",
        [
            "market=calibrated",
            "agents=calibrated",
            "mechanism=calibrated",
            "rounds=400",
            "progress=false",
            *searchpath_override([tmp_path / "cal"]),
        ],
    )
    run_simulation(twin_cfg, tmp_path / "twin")
    live_d = pq.read_table(live / "deals.parquet").to_pydict()
    twin_d = pq.read_table(tmp_path / "twin" / "deals.parquet").to_pydict()
    n_live, n_twin = len(live_d["state"]), len(twin_d["state"])
    assert n_live == 30 and n_twin > 500
    live_states = collections.Counter(map(str, live_d["state"]))
    twin_states = collections.Counter(map(str, twin_d["state"]))
    for state in set(live_states) | set(twin_states):
        lo, hi = wilson(live_states[state], n_live)
        assert lo <= twin_states[state] / n_twin <= hi, (state, live_states, twin_states)

    def caught(d: dict) -> tuple[int, int]:
        cheats = [i for i, c in enumerate(d["cheated"]) if c]
        return sum(str(d["state"][i]) == "MediationRejected" for i in cheats), len(cheats)

    k, n = caught(live_d)
    tk, tn = caught(twin_d)
    assert n > 0 and tn > 0
    lo, hi = wilson(k, n)
    assert lo <= tk / tn <= hi
