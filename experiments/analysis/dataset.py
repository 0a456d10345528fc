"""Fixed-behaviour runs of several mechanisms, recorded as a results dataset (`experiments.results`): the same
rows a `simulate --multirun` sweep writes, so notebooks and plots read both the same way (`results.load`).

Runs are made in-process with `run_simulation` (a sweep inside an analysis needs no second Hydra app); each row
is labelled with the group options it was composed from (`choice.mechanism`, `choice.agents`). Seeds are used as
given (`sweep.seed: null`): every mechanism sees the same markets and draws, so differences are paired.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from experiments import results
from experiments.simulate import run_simulation

ENTRY_POINT = "simulate"


def record(
    runs: Iterable[tuple[Mapping[str, str], Mapping[str, Any]]],
    dataset: str | os.PathLike[str],
    sweep: str,
    runs_dir: str | os.PathLike[str],
) -> pd.DataFrame:
    """Run each `(choices, config)` not yet recorded in `dataset` (sweep `sweep`) and return the sweep's rows."""
    dataset = Path(dataset).resolve()
    for choices, cfg in runs:
        cfg = {**cfg, "progress": False, results.SWEEP_KEY: {"name": sweep, "dataset": str(dataset), "seed": None}}
        rid = results.run_id(ENTRY_POINT, cfg)
        if results.is_complete(dataset, sweep, rid):
            continue
        out = Path(runs_dir) / rid
        started, start = datetime.now(UTC), time.perf_counter()
        seed = results.run_seed(cfg, rid)
        summary = run_simulation({**cfg, "seed": seed}, out)
        row = results.make_row(
            ENTRY_POINT,
            cfg,
            seed=seed,
            status="ok",
            started_at=started,
            wall_s=time.perf_counter() - start,
            summary=summary,
            output_dir=str(out),
            choices=dict(choices),
        )
        results.write_row(dataset, row)
    return results.load(dataset, sweep)


def per_choice(frame: pd.DataFrame, by: str, metrics: Iterable[str]) -> pd.DataFrame:
    """Mean of `summary.<metric>` over replicates, per value of `choice.<by>` (columns named after the metrics)."""
    cols = {f"summary.{m}": m for m in metrics}
    ok = frame[frame["status"] == "ok"]
    return ok.groupby(f"choice.{by}")[list(cols)].mean().rename(columns=cols)
