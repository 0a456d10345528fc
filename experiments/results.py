"""The results dataset: one parquet row per run of any entry point, so sweeps are resumable and analysable.

Layout (hive style, one file per run, so parallel workers never write the same file and a re-run can tell what is
done by looking at the disk)::

    <dataset>/sweep=<name>/run_id=<id>/part-0.parquet

Each file holds one row, in three kinds of columns:

- bookkeeping (`COLUMNS`): `run_id`, `sweep`, `entry_point`, `status` (`STATUSES`: `ok`, `config_error`, `bug`,
  `failed`), `error` (`Type: message`),
  `error_type`, `error_at` (`file:line in function` of the innermost frame; no traceback), `seed` (the seed the
  run used), `replicate` (the config's `seed` before derivation, see below), `started_at` / `finished_at` (UTC),
  `wall_s`, `host`, `output_dir` (the run's own output directory, e.g. its deals.parquet), and `choice.<group>`
  (the config group options of a Hydra run, e.g. `choice.mechanism` = `modicum`: labels, not identity);
- the run's config flattened into dotted columns (`market.n_nodes`, `mechanism.lilypad_v2.mediation_fee`,
  `sweep.seed`; lists as JSON strings; `progress`, `sweep.name` and `sweep.dataset` left out);
- its summary flattened under `summary.` (`summary.cheat_rate`, `summary.profit_per_role.node.total`); none in a
  failed row.

A row is written to a hidden temporary file, fsynced and renamed into place, so a killed run leaves no row (readers
ignore the leftovers).

Run identity and seeds (docs/architecture.md, "Seeds"):

- `run_id` is a hash of the entry point and the run's config minus the keys that cannot change its results (sweep
  name, dataset path, progress bar; `identity`). Hydra's own config (output paths, job numbers) never reaches the
  entry point's config, so the same parameters give the same run_id in any sweep directory, on any worker, on a
  re-run.
- With `sweep.seed` an integer (the default, 0), a run's seed is derived: `SeedSequence(sweep.seed,
  spawn_key=(run_id,))`. The config's own `seed` is then a replicate label (`seed=0,1,2` in a sweep gives three
  independent replicates of each parameter point) and is recorded as `replicate`; no two runs of a sweep share a
  seed, and a re-run reproduces its seed. With `sweep.seed: null` the config's `seed` is used as is: sweeping
  `seed=0,1,2` then gives common random numbers across the other parameters (paired comparisons), a deliberate
  sharing. Either way the `seed` column is the seed the run used: `simulate seed=<seed> <parameters>` repeats it.

Entry points opt in with one call, `run_recorded(entry_point, cfg, run_fn)`; readers use `load`. The Hydra callback
`SweepReport` (in the entry point's config, `hydra.callbacks`) ends a `--multirun` sweep with a summary of its runs
by status, and a non-zero exit status when any run did not succeed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mechanisms.config import ConfigError, from_mapping, require, require_int
from mechanisms.errors import InvariantViolation

#: The config section every recording entry point accepts (add it to the entry point's allowed keys).
SWEEP_KEY = "sweep"
#: Top-level config keys left out of a run's identity and of the config columns (`sweep.seed` is put back).
NOT_IDENTITY = ("progress", SWEEP_KEY)
#: Bookkeeping columns, first in every row; the others are `choice.<group>`, `<config key>` or `summary.<key>`.
COLUMNS = ("run_id", "sweep", "entry_point", "status", "error", "error_type", "error_at", "seed", "replicate",
           "started_at", "finished_at", "wall_s", "host", "output_dir")  # fmt: skip
#: Run statuses: it finished; its config was refused (`ConfigError`, the user's to fix); it broke one of the twin's
#: own invariants (`InvariantViolation`: insolvency, an illegal transition, value not conserved; a bug to report);
#: any other exception.
STATUSES = ("ok", "config_error", "bug", "failed")
#: Exit status of a sweep in which some run did not end `ok`.
SWEEP_FAILED_EXIT = 1
SUMMARY_PREFIX = "summary."
#: `choice.<group>`: the config group options a Hydra run was composed from (e.g. `choice.mechanism` = `modicum`);
#: labels only, not part of the run's identity (the composed values are).
CHOICE_PREFIX = "choice."
PART = "part-0.parquet"
MAX_SEED = 2**63 - 1
RUN_ID_CHARS = 16  # 64 bits of sha256: a collision is unlikely below ~10^8 runs per sweep
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

Summary = TypeVar("Summary", bound=Mapping[str, Any] | None)


@dataclass(frozen=True)
class SweepConfig:
    """The `sweep:` section: where runs are recorded (None = not recorded) and the root of derived seeds."""

    name: str = "default"
    dataset: str | None = None
    seed: int | None = 0

    def validate(self, path: str) -> None:
        require(
            isinstance(self.name, str) and NAME_PATTERN.fullmatch(self.name) is not None,
            f"{path}.name",
            self.name,
            "letters, digits, '_', '.', '-' (a directory name)",
        )
        require(
            self.dataset is None or (isinstance(self.dataset, str) and self.dataset != ""),
            f"{path}.dataset",
            self.dataset,
            "null (not recorded) or a directory path",
        )
        if self.seed is not None:
            require_int(self.seed, f"{path}.seed", 0, MAX_SEED)


def parse_sweep(cfg: Mapping[str, Any]) -> SweepConfig:
    """The validated `sweep` section of a config (missing or null = defaults: not recorded)."""
    return from_mapping(SweepConfig, cfg.get(SWEEP_KEY) or {}, SWEEP_KEY)


# -- identity and seeds -------------------------------------------------------------------------------------------


def _without(cfg: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k not in keys}


def identity(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two runs the same run: the config without the keys that cannot change its results (`progress`,
    `sweep.name`, `sweep.dataset`), with `sweep.seed` spelt out (a missing section and its defaults are the same)."""
    return {**_without(cfg, NOT_IDENTITY), SWEEP_KEY: {"seed": parse_sweep(cfg).seed}}


def run_id(entry_point: str, cfg: Mapping[str, Any]) -> str:
    """A stable short hash of the entry point and the run's identity (key order does not matter)."""
    text = json.dumps(
        {"entry_point": entry_point, "config": identity(cfg)}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:RUN_ID_CHARS]


def run_seed(cfg: Mapping[str, Any], rid: str) -> int:
    """The seed a recorded run uses (module docstring): derived from (sweep.seed, run_id), or the config's own."""
    root = parse_sweep(cfg).seed
    if root is None:
        seed = cfg.get("seed", 0)
        require_int(seed, "seed", 0, MAX_SEED)
        return int(seed)
    state = np.random.SeedSequence(root, spawn_key=(int(rid, 16),)).generate_state(1, np.uint64)
    return int(state[0]) >> 1  # 63 bits: a valid `seed` for every entry point


# -- rows ---------------------------------------------------------------------------------------------------------


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> dotted keys; lists -> JSON strings; numpy scalars -> Python scalars."""
    out: dict[str, Any] = {}
    for key, v in value.items():
        name = f"{prefix}{key}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{name}."))
        elif isinstance(v, (list, tuple)):
            out[name] = json.dumps(v, default=str)
        elif isinstance(v, np.generic):
            out[name] = v.item()
        elif v is None or isinstance(v, (bool, int, float, str)):
            out[name] = v
        else:
            out[name] = str(v)
    return out


def config_row(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The config columns of a run: its identity flattened, without `seed` (that column is the seed the run used)."""
    config = flatten(_without(identity(cfg), ("seed",)))
    clash = sorted(c for c in config if c in COLUMNS or c.startswith((CHOICE_PREFIX, SUMMARY_PREFIX)))
    if clash:
        raise ConfigError(f"config key(s) {clash} clash with the results dataset's own columns")
    return config


def make_row(
    entry_point: str,
    cfg: Mapping[str, Any],
    *,
    seed: int | None,
    status: str,
    started_at: datetime,
    wall_s: float,
    summary: Mapping[str, Any] | None = None,
    error: BaseException | None = None,
    output_dir: str | None = None,
    choices: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """One dataset row for a run of `cfg` (the config as given, before its seed is resolved) that used `seed`."""
    where = traceback.extract_tb(error.__traceback__)[-1] if error is not None and error.__traceback__ else None
    row = {
        "run_id": run_id(entry_point, cfg),
        "sweep": parse_sweep(cfg).name,
        "entry_point": entry_point,
        "status": status,
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "error_type": None if error is None else type(error).__name__,
        "error_at": None if where is None else f"{where.filename}:{where.lineno} in {where.name}",
        "seed": seed,
        "replicate": cfg.get("seed"),
        "started_at": started_at,
        "finished_at": datetime.now(UTC),
        "wall_s": wall_s,
        "host": socket.gethostname(),
        "output_dir": output_dir,
        **flatten(choices or {}, CHOICE_PREFIX),
        **config_row(cfg),
    }
    if summary is not None:
        row.update(flatten(summary, SUMMARY_PREFIX))
    return row


def status_of(error: BaseException | None) -> str:
    """The row status of a run that raised `error` (None: it finished), one of `STATUSES`."""
    if error is None:
        return "ok"
    if isinstance(error, ConfigError):
        return "config_error"
    return "bug" if isinstance(error, InvariantViolation) else "failed"


def run_path(dataset: str | os.PathLike[str], sweep: str, rid: str) -> Path:
    """Where a run's row lives."""
    return Path(dataset) / f"sweep={sweep}" / f"run_id={rid}" / PART


def write_row(dataset: str | os.PathLike[str], row: Mapping[str, Any]) -> Path:
    """Write one run's row atomically (hidden temp file, fsync, rename): a reader sees the whole row or none."""
    path = run_path(dataset, row["sweep"], row["run_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([dict(row)]), buf, write_statistics=False)  # useless on one row
    tmp = path.with_name(f".{PART}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


# -- reading ------------------------------------------------------------------------------------------------------


def is_complete(dataset: str | os.PathLike[str], sweep: str, rid: str) -> bool:
    """True when the run has an `ok` row. A failed run is not complete: re-running the sweep retries it."""
    path = run_path(dataset, sweep, rid)
    if not path.is_file():
        return False
    status = pq.ParquetFile(path).read(columns=["status"]).column("status")
    return status.to_pylist() == ["ok"]


def _files(dataset: Path, sweep: str | None) -> list[Path]:
    return sorted(dataset.glob(f"sweep={sweep or '*'}/run_id=*/{PART}"))


def load(dataset: str | os.PathLike[str], sweep: str | None = None) -> pd.DataFrame:
    """All rows of the dataset (or of one sweep), one per run, ordered by sweep and run_id.

    Runs with different configs have different columns (a mechanism's parameters exist only where it is in the
    stack): the frame has the union, missing values as nulls, integer/float columns promoted as needed. Columns
    come in the order: `COLUMNS`, `choice.` labels, config keys (`config_columns`), `summary.` keys. An empty or
    missing dataset gives an empty frame with the bookkeeping columns.
    """
    tables = [pq.ParquetFile(p).read() for p in _files(Path(dataset), sweep)]
    if not tables:
        return pd.DataFrame(columns=list(COLUMNS))
    table = pa.concat_tables(tables, promote_options="permissive")
    names = table.column_names
    choices = [c for c in names if c.startswith(CHOICE_PREFIX)]
    summary = [c for c in names if c.startswith(SUMMARY_PREFIX)]
    order = [c for c in COLUMNS if c in names] + choices + config_columns(names) + summary
    return table.select(order).to_pandas()


def config_columns(columns: pd.DataFrame | Sequence[str]) -> list[str]:
    """The columns (of a loaded frame, or names) that hold a run's parameters, i.e. neither bookkeeping, choice
    labels nor summary. Group by these (with `dropna=False`: a parameter absent from a run is null) to pool the
    replicates of each parameter point."""
    names = columns.columns if isinstance(columns, pd.DataFrame) else columns
    return [c for c in names if c not in COLUMNS and not c.startswith((CHOICE_PREFIX, SUMMARY_PREFIX))]


# -- recording a run ----------------------------------------------------------------------------------------------


def _hydra_runtime() -> tuple[str | None, str | None, dict[str, str | None]]:
    """(job output dir, launch directory, config group choices) inside a Hydra job, else (None, None, {})."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, None, {}
    runtime = HydraConfig.get().runtime
    choices = {k: v for k, v in runtime.get("choices", {}).items() if not k.startswith("hydra/")}
    return runtime.get("output_dir"), runtime.get("cwd"), choices


def _log(sweep: str, rid: str, message: str) -> None:
    print(f"[sweep {sweep}] run {rid}: {message}", file=sys.stderr, flush=True)


def run_recorded(
    entry_point: str,
    cfg: Mapping[str, Any],
    run_fn: Callable[[dict[str, Any]], Summary],
    *,
    output_dir: str | os.PathLike[str] | None = None,
) -> Summary | None:
    """Run `run_fn(config)` as a run of a sweep: skip it when already recorded, record its row either way.

    Without `sweep.dataset` this is just `run_fn(cfg)`: the config's seed, exceptions propagate. With it:

    - an `ok` row for this run_id already in the dataset: the run is skipped (returns None), so re-running a killed
      sweep completes only the missing runs;
    - otherwise `run_fn` gets the config with its resolved seed (module docstring); its summary is recorded in an
      `ok` row and returned;
    - an exception (not a kill or Ctrl-C) is recorded in a row with its status (`status_of`: `config_error`, `bug`
      or `failed`), reported on one stderr line, and None is returned, so one bad parameter point never stops the
      other runs of the sweep (`SweepReport` makes the sweep's exit status say so at the end).

    A relative `sweep.dataset` is taken from the launch directory (Hydra's runtime.cwd inside a Hydra job, so every
    worker writes to the same place); `output_dir` (default: the Hydra job's output dir) is recorded with the row.
    """
    sweep = parse_sweep(cfg)
    if sweep.dataset is None:
        return run_fn(dict(cfg))
    hydra_out, launch_dir, choices = _hydra_runtime()
    dataset = Path(launch_dir or os.getcwd()) / sweep.dataset
    out = None if output_dir is None and hydra_out is None else str(output_dir or hydra_out)
    rid = run_id(entry_point, cfg)
    if is_complete(dataset, sweep.name, rid):
        _log(sweep.name, rid, "already recorded, skipped")
        return None
    config_row(cfg)  # a column clash is a config error, found before the run
    started_at, start = datetime.now(UTC), time.perf_counter()
    seed, summary, error = None, None, None
    try:
        seed = run_seed(cfg, rid)
        summary = run_fn({**cfg, "seed": seed})
    except Exception as exc:  # a kill or Ctrl-C is no result: it leaves no row and stops the sweep
        error = exc
    wall_s = time.perf_counter() - start
    row = make_row(
        entry_point,
        cfg,
        seed=seed,
        status=status_of(error),
        summary=summary,
        error=error,
        started_at=started_at,
        wall_s=wall_s,
        output_dir=out,
        choices=choices,
    )
    write_row(dataset, row)
    if error is None:
        _log(sweep.name, rid, f"ok in {wall_s:.1f} s (seed {seed}); recorded")
    else:
        _log(sweep.name, rid, f"FAILED [{row['status']}] ({row['error']}) at {row['error_at']}; recorded")
    return summary


# -- the end of a sweep -------------------------------------------------------------------------------------------


def sweep_report(frame: pd.DataFrame) -> tuple[dict[str, int], str]:
    """Counts of runs by status (every status, zeros too) and a summary: the counts, then one line per run that did
    not succeed (its status, run id and error), bugs first."""
    counts = {s: int((frame["status"] == s).sum()) if len(frame) else 0 for s in STATUSES}
    lines = [f"{len(frame)} run(s) recorded: " + ", ".join(f"{s} {n}" for s, n in counts.items())]
    bad = frame[frame["status"] != "ok"] if len(frame) else frame
    rank = {s: i for i, s in enumerate(("bug", "failed", "config_error"))}
    for _, row in sorted(bad.iterrows(), key=lambda item: (rank.get(item[1]["status"], 9), item[1]["run_id"])):
        lines.append(f"  {row['status']:<12} run {row['run_id']}: {row['error']} (at {row['error_at']})")
    return counts, "\n".join(lines)


class SweepReport(Callback):
    """Hydra callback: at the end of a `--multirun`, summarize the runs this sweep recorded (rows of `sweep.name`
    started since the sweep began; runs skipped as already recorded are not counted) and exit with
    `SWEEP_FAILED_EXIT` when any of them is not `ok`. Without `sweep.dataset` it does nothing.

    The launching process's clock bounds the rows: on a cluster, the workers' clocks must agree with it (NTP)."""

    def __init__(self) -> None:
        self.started: datetime | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = datetime.now(UTC)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        section = config.get(SWEEP_KEY)
        sweep = parse_sweep({SWEEP_KEY: None if section is None else OmegaConf.to_container(section, resolve=True)})
        if sweep.dataset is None or self.started is None:
            return
        launch_dir = OmegaConf.select(config, "hydra.runtime.cwd") or os.getcwd()
        frame = load(Path(launch_dir) / sweep.dataset, sweep.name)
        if len(frame):
            frame = frame[frame["started_at"] >= pd.Timestamp(self.started)]
        counts, text = sweep_report(frame)
        print(f"[sweep {sweep.name}] {text}", file=sys.stderr, flush=True)
        if counts["ok"] < len(frame):
            sys.exit(SWEEP_FAILED_EXIT)
