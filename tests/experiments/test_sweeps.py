"""Sweeps: `--multirun` with the joblib and Ray launchers records one row per run in the results dataset; a killed
sweep resumes with only the missing runs; a failing run is recorded with a status that tells a bug (an invariant of
the twin broke) from a config error and other failures, does not stop the others, and makes the sweep end non-zero
with a summary."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments import results
from experiments.results import is_complete, load, run_id, run_recorded, run_seed
from experiments.simulate import run_simulation
from mechanisms.config import ConfigError
from mechanisms.protocol import IllegalTransition
from sim.ledger import InsolventTransfer, Ledger

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
TINY = ("rounds=2", "progress=false", "market.n_clients=20", "market.n_nodes=20", "market.n_stakers=5")
#: 4 presets x 2 replicates = 8 runs
GRID = ("mechanism=lilypad_v2,modicum,truebit_jackpot,none", "seed=0,1")
SWEEP = "t"


@pytest.fixture(scope="module")
def ray_tmp() -> Iterator[str]:
    """A short RAY_TMPDIR (unix socket paths are limited to ~100 characters), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp") as path:
        yield path


def env(ray_tmp: str | None = None) -> dict[str, str]:
    """The environment of a sweep process: Ray's state under a temp dir, not $HOME (a new local cluster otherwise
    writes ~/.ray/auth_token)."""
    extra = (
        {} if ray_tmp is None else {"RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    )
    return {**os.environ, **extra}


def command(tmp: Path, *overrides: str, launcher: str = "joblib") -> list[str]:
    jobs = ("hydra.launcher.n_jobs=2",) if launcher == "joblib" else ()
    return [sys.executable, "-m", "experiments.simulate", "--multirun", f"hydra/launcher={launcher}", *jobs,
            f"hydra.sweep.dir={tmp / 'multirun'}", f"sweep.dataset={tmp / 'data'}", f"sweep.name={SWEEP}", *TINY,
            *overrides]  # fmt: skip


def sweep(cmd: list[str], rc: int = 0, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env(), **kwargs)
    assert proc.returncode == rc, proc.stderr[-3000:]
    return proc


def recorded(tmp: Path) -> list[Path]:
    return sorted((tmp / "data").glob(f"sweep={SWEEP}/run_id=*/{results.PART}"))


def composed(*overrides: str) -> dict[str, Any]:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="simulate", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


# -- the dataset, in process --------------------------------------------------------------------------------------


def test_run_id_ignores_bookkeeping_and_the_seed_rule() -> None:
    cfg = {"seed": 0, "rounds": 2, "market": {"n_nodes": 3}, "sweep": {"name": "a", "dataset": "x", "seed": 0}}
    same = {"market": {"n_nodes": 3}, "rounds": 2, "seed": 0, "progress": False, "sweep": {"name": "b"}}
    rid = run_id("simulate", cfg)
    assert len(rid) == results.RUN_ID_CHARS and rid == run_id("simulate", same)
    assert rid != run_id("train", cfg) != run_id("simulate", {**cfg, "rounds": 3})
    assert rid != run_id("simulate", {**cfg, "seed": 1}) != run_id("simulate", {**cfg, "sweep": {"seed": 1}})
    # derived: a function of (sweep.seed, run_id), distinct per run; explicit (sweep.seed null): the config's seed
    seeds = {run_seed(c, run_id("simulate", c)) for c in ({**cfg, "seed": s} for s in range(50))}
    assert len(seeds) == 50 and all(0 <= s < 2**63 for s in seeds)
    assert run_seed(cfg, rid) == run_seed(same, rid) != run_seed({**cfg, "sweep": {"seed": 1}}, rid)
    explicit = {**cfg, "seed": 7, "sweep": {"seed": None}}
    assert run_seed(explicit, run_id("simulate", explicit)) == 7


@pytest.mark.parametrize(
    ("sweep_cfg", "named"),
    [
        ({"name": "a/b"}, "sweep.name"),
        ({"dataset": ""}, "sweep.dataset"),
        ({"seed": -1}, "sweep.seed"),
        ({"sedd": 1}, "unknown field(s) ['sedd']"),
    ],
)
def test_bad_sweep_section_is_a_config_error(tmp_path: Path, sweep_cfg: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        run_recorded("simulate", {"sweep": {"dataset": str(tmp_path), **sweep_cfg}}, lambda c: {})


def test_recorded_run_ok_skip_fail_retry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {"seed": 2, "x": {"y": [1, 2], "z": None}, "sweep": {"name": "u", "dataset": str(tmp_path)}}
    rid, calls = run_id("e", cfg), []

    def ok(c: dict[str, Any]) -> dict[str, Any]:
        calls.append(c["seed"])
        return {"value": 1.5, "per": {"a": 1}}

    def boom(c: dict[str, Any]) -> None:
        raise ZeroDivisionError("no jobs")

    assert run_recorded("e", cfg, boom) is None  # recorded as failed, not raised
    assert not is_complete(tmp_path, "u", rid)
    assert "FAILED [failed] (ZeroDivisionError: no jobs)" in capsys.readouterr().err
    assert run_recorded("e", cfg, ok) == {"value": 1.5, "per": {"a": 1}}  # a failed run is retried
    assert run_recorded("e", cfg, ok) is None and calls == [run_seed(cfg, rid)]  # an ok run is skipped
    assert "already recorded, skipped" in capsys.readouterr().err
    row = load(tmp_path).iloc[0]
    assert (row.run_id, row.sweep, row.entry_point, row.status, row.seed, row.replicate) == (
        rid, "u", "e", "ok", calls[0], 2)  # fmt: skip
    assert row["x.y"] == "[1, 2]" and row["summary.value"] == 1.5 and row["summary.per.a"] == 1
    assert row["sweep.seed"] == 0 and "sweep.dataset" not in row and row.wall_s >= 0
    assert row.started_at <= row.finished_at <= datetime.now(UTC)
    assert sorted(results.config_columns(load(tmp_path))) == ["sweep.seed", "x.y", "x.z"]


def test_explicit_seeds_are_used_as_given(tmp_path: Path) -> None:
    def cfg(seed: int) -> dict[str, Any]:
        return {"seed": seed, "sweep": {"name": "x", "dataset": str(tmp_path), "seed": None}}

    assert run_recorded("e", cfg(7), lambda c: {"seed": c["seed"]}) == {"seed": 7}
    assert run_recorded("e", cfg(-1), lambda c: {}) is None  # an invalid seed fails that run only
    frame = load(tmp_path).set_index("replicate")
    assert frame.loc[7, "seed"] == 7 and frame.loc[7, "sweep.seed"] is None
    assert frame.loc[-1, "status"] == "config_error" and frame.loc[-1, "error"].startswith("ConfigError: seed=-1")


def test_status_tells_a_bug_from_a_config_error_and_other_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def raising(exc: BaseException) -> Any:
        def run(c: dict[str, Any]) -> None:
            raise exc

        return run

    runs = {
        "insolvent": raising(InsolventTransfer("account 3 would go negative")),
        "illegal": raising(IllegalTransition("illegal deal transition DealAgreed -> ResultsChecked")),
        "config": raising(ConfigError("market.n_nodes=0: allowed 1..")),
        "other": raising(RuntimeError("disk full")),
        "fine": lambda c: {"v": 1},
    }
    for name, run in runs.items():
        run_recorded("e", {"seed": 0, "case": name, "sweep": {"name": "s", "dataset": str(tmp_path)}}, run)
    # a real run whose ledger stops adding up: value not conserved is an invariant, so a bug
    totals = iter(range(10**6))
    monkeypatch.setattr(Ledger, "total", lambda self: next(totals))
    cfg = {**composed(*TINY, "rounds=1"), "case": "leak", "sweep": {"name": "s", "dataset": str(tmp_path)}}
    run_recorded("simulate", cfg, lambda c: run_simulation({k: v for k, v in c.items() if k != "case"}, tmp_path / "o"))
    assert not (tmp_path / "o" / "deals.parquet").exists()  # a bug leaves no tables
    frame = load(tmp_path, "s").set_index("case")
    assert frame.status.to_dict() == {
        "insolvent": "bug",
        "illegal": "bug",
        "config": "config_error",
        "other": "failed",
        "fine": "ok",
        "leak": "bug",
    }
    assert frame.loc["leak", "error"].startswith("InvariantViolation: value not conserved")
    counts, text = results.sweep_report(frame.reset_index())
    assert counts == {"ok": 1, "config_error": 1, "bug": 3, "failed": 1}
    lines = text.splitlines()
    assert lines[0] == "6 run(s) recorded: ok 1, config_error 1, bug 3, failed 1"
    assert [line.split()[0] for line in lines[1:]] == ["bug", "bug", "bug", "failed", "config_error"]
    assert f"run {frame.loc['other', 'run_id']}: RuntimeError: disk full" in text


def test_no_dataset_means_a_plain_run() -> None:
    def fail(c: dict[str, Any]) -> None:
        raise ConfigError("bad")

    assert run_recorded("e", {"seed": 5}, lambda c: {"seed": c["seed"]}) == {"seed": 5}
    with pytest.raises(ConfigError):
        run_recorded("e", {"sweep": {"dataset": None}}, fail)


class Killed(BaseException):
    """Stands in for a kill between writing a row's temp file and renaming it into place."""


def test_a_write_killed_midway_leaves_no_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(src: object, dst: object) -> None:
        raise Killed

    monkeypatch.setattr(results.os, "replace", crash)
    with pytest.raises(Killed):
        run_recorded("e", {"sweep": {"name": "k", "dataset": str(tmp_path)}}, lambda c: {"v": 1})
    assert load(tmp_path).empty and not is_complete(tmp_path, "k", run_id("e", {}))


def test_load_unions_the_columns_of_different_runs(tmp_path: Path) -> None:
    for i, params in enumerate([{"a": 1}, {"a": 2.5, "b": "x"}, {"c": [1]}]):
        cfg = {"seed": i, "p": params, "sweep": {"name": "s1" if i < 2 else "s2", "dataset": str(tmp_path)}}
        run_recorded("e", cfg, lambda c: {"m": None} if c["p"].get("b") else {"m": 3})
    frame = load(tmp_path)
    assert len(frame) == 3 and list(frame.columns[: len(results.COLUMNS)]) == list(results.COLUMNS)
    assert sorted(frame["p.a"].dropna()) == [1.0, 2.5] and frame["p.b"].notna().sum() == 1
    assert frame["summary.m"].notna().sum() == 2
    assert len(load(tmp_path, "s1")) == 2 and load(tmp_path, "nope").empty and load(tmp_path / "missing").empty


# -- sweeps through Hydra ---------------------------------------------------------------------------------------------


def test_joblib_sweep_records_one_row_per_run(tmp_path: Path) -> None:
    err = sweep(command(tmp_path, *GRID)).stderr
    assert "[sweep t] 8 run(s) recorded: ok 8, config_error 0, bug 0, failed 0" in err
    frame = load(tmp_path / "data")
    assert len(frame) == 8 and (frame.status == "ok").all() and frame.run_id.is_unique
    assert frame.seed.is_unique and set(frame.replicate) == {0, 1} and (frame.entry_point == "simulate").all()
    assert sorted(frame["choice.mechanism"].unique()) == ["lilypad_v2", "modicum", "none", "truebit_jackpot"]
    assert (frame["summary.seed"] == frame.seed).all() and (frame["summary.deals"] > 0).all()
    assert frame["mechanism.tax_jackpot.tax_bps"].notna().sum() == 2  # only where the preset has the mechanism
    # a recorded row is reproducible outside the sweep: its config with its seed gives the same summary
    row = frame.loc[frame["choice.mechanism"] == "modicum"].iloc[0]
    summary = json.loads((Path(row.output_dir) / "summary.json").read_text())
    again = run_simulation({**composed(*TINY, "mechanism=modicum"), "seed": int(row.seed)}, tmp_path / "again")
    assert again == summary and again["fake_accepted_per_job"] == row["summary.fake_accepted_per_job"]


def test_killed_sweep_resumes_with_only_the_missing_runs(tmp_path: Path) -> None:
    cmd = command(tmp_path, *GRID, "rounds=3")
    with subprocess.Popen(
        cmd, cwd=REPO, env=env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as proc:  # its own process group: the loky workers too
        deadline = time.monotonic() + 240
        while len(recorded(tmp_path)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(0.5)  # nothing of the killed sweep is still writing
    mtimes = {p: p.stat().st_mtime_ns for p in recorded(tmp_path)}
    first = load(tmp_path / "data").set_index("run_id")
    assert 2 <= len(first) < 8 and len(first) == len(mtimes)
    assert (first.status == "ok").all()  # the runs in flight at the kill left no row
    before = first.started_at

    err = sweep(cmd).stderr
    frame = load(tmp_path / "data").set_index("run_id")
    assert len(frame) == 8 and (frame.status == "ok").all()
    assert (frame.started_at[before.index] == before).all()  # the first pass's rows are untouched
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in mtimes.items())
    assert (frame.drop(before.index).started_at > before.max()).all()
    assert err.count("already recorded, skipped") == len(first) and err.count("; recorded") == 8 - len(first)
    assert f"{8 - len(first)} run(s) recorded: ok {8 - len(first)}," in err  # the report counts this pass only


def test_failed_run_is_recorded_and_the_others_complete(tmp_path: Path) -> None:
    # the basic (sequential, in-process) launcher: one failing job must not stop the jobs after it
    proc = sweep(
        command(tmp_path, "mechanism.lilypad_v2.mediation_fee=60,5,70", launcher="basic"), rc=results.SWEEP_FAILED_EXIT
    )
    frame = load(tmp_path / "data").set_index("mechanism.lilypad_v2.mediation_fee")
    assert sorted(frame.index) == [5, 60, 70]
    assert list(frame.status.sort_index()) == ["config_error", "ok", "ok"]
    failed = frame.loc[5]
    assert failed.error_type == "ConfigError" and failed.error.startswith("ConfigError: mechanism.lilypad_v2")
    assert pd.isna(failed["summary.deals"]) and failed.error_at and "Traceback" not in proc.stderr
    assert "FAILED [config_error] (ConfigError: mechanism.lilypad_v2.mediation_fee" in proc.stderr
    summary = proc.stderr[proc.stderr.index("[sweep t] 3 run(s)") :].splitlines()
    assert summary[0] == "[sweep t] 3 run(s) recorded: ok 2, config_error 1, bug 0, failed 0"
    assert summary[1].split()[:4] == ["config_error", "run", f"{failed.run_id}:", "ConfigError:"]
    assert (frame.loc[[60, 70], "summary.deals"] > 0).all()


@pytest.mark.xdist_group("ray")
def test_ray_launcher_runs_a_sweep_locally(tmp_path: Path, ray_tmp: str) -> None:
    cmd = command(
        tmp_path,
        "mechanism=lilypad_v2,none",
        "hydra.launcher.ray.init.address=null",
        "+hydra.launcher.ray.init.include_dashboard=false",
        "+hydra.launcher.ray.init.num_cpus=2",
        launcher="ray",
    )
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env(ray_tmp))
    assert proc.returncode == 0, proc.stderr[-3000:]
    frame = load(tmp_path / "data")
    assert len(frame) == 2 and (frame.status == "ok").all() and frame.seed.is_unique
    assert sorted(frame["choice.mechanism"]) == ["lilypad_v2", "none"]
    assert all(Path(d).is_relative_to(tmp_path / "multirun") for d in frame.output_dir)
    assert is_complete(tmp_path / "data", SWEEP, frame.run_id[0])


def test_example_sweep_config_composes() -> None:
    cfg = composed("+experiment=sweep_presets")
    assert cfg["sweep"]["name"] == "presets" and cfg["sweep"]["dataset"] == "results"
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        hydra_cfg = compose(config_name="simulate", overrides=["+experiment=sweep_presets"], return_hydra_config=True)
    params: Mapping[str, str] = hydra_cfg.hydra.sweeper.params
    assert len(params["mechanism"].split(",")) == 6 and params["seed"] == "0,1,2"
    assert hydra_cfg.hydra.launcher._target_.endswith("JoblibLauncher")
