"""`python -m experiments.train [+experiment=NAME] [key=value ...]`: train the focal market agents with RLlib.

RLlib's new API stack, PPO by default (`algo.name` picks any registered algorithm; `algo.training` goes to its
`.training()`), one module per role with parameter sharing (`algo.mapping=role`) or one per agent
(`algo.mapping=agent`). The agents not listed in `env.focal` keep their scripted strategies.

Outputs in `run_dir` (default `outputs/train/<name>`): `metrics.parquet` (one row per iteration, columns as in
`metric_row`), TensorBoard event files under `tb/`, checkpoints under `checkpoints/iter_NNNNNN/` every
`train.checkpoint_every` iterations and at the end, and `config.yaml` (the resolved config, read by evaluate).
`resume=true` continues from the run's latest checkpoint (metrics rows after it are dropped and re-run).

With a `scan` section (`{key: dotted.config.key, values: [...]}`) each value is trained into `run_dir/<key>=<v>/`,
evaluated (`evaluation.*`), and `scan.parquet` plus `scan.png` (the evaluated rates against the value) are written
into `run_dir`. Ray runs locally unless `ray.address` names a cluster; one Ray session serves the whole run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from experiments.analysis.analytic import register_resolver
from experiments.evaluate import evaluate
from marl.config import ENV_KEYS
from marl.counters import role_rates
from marl.env import MarketEnv
from marl.heads import ROLES
from marl.rllib import (
    ENV_NAME,
    MAPPINGS,
    METRICS_KEY,
    STATE_FILE,
    AgentToModule,
    LearnedPolicy,
    MarketMetrics,
    RLlibMarketEnv,
    checkpoint_path,
    latest_checkpoint,
    module_spaces,
    split_logits,
)
from marl.vector import VecMarketEnv, market_env_runner
from mechanisms.config import ConfigError, from_mapping, require, require_int
from twin.build import check_keys

register_resolver()  # configs/experiment/cheat_threshold.yaml draws `${inspection_threshold:}`
TRAIN_KEYS = (*ENV_KEYS, "name", "run_dir", "resume", "algo", "train", "ray", "scan", "evaluation")
SCOPES = ("focal", "market")
HEADLINE = ("cheat_rate", "check_rate", "bribe_acceptance")


@dataclass(frozen=True)
class TrainSettings:
    iterations: int = 20
    checkpoint_every: int = 5  # also at the end
    progress: bool = True  # one line per iteration

    def validate(self, path: str) -> None:
        require_int(self.iterations, f"{path}.iterations", 1, 10**9)
        require_int(self.checkpoint_every, f"{path}.checkpoint_every", 1, 10**9)
        require(isinstance(self.progress, bool), f"{path}.progress", self.progress, "true or false")


@dataclass(frozen=True)
class AlgoSettings:
    name: str = "PPO"  # any algorithm RLlib registers (PPO, APPO, IMPALA, ...)
    mapping: str = "role"  # agent -> module: role (parameter sharing) | agent
    torch_threads: int = 1  # intra-op threads per process; tiny networks run fastest on one
    model: dict = field(default_factory=dict)  # DefaultModelConfig fields (fcnet_hiddens, ...)
    training: dict = field(default_factory=dict)  # AlgorithmConfig.training(**...); gamma comes from env.discount
    env_runners: dict = field(default_factory=dict)  # AlgorithmConfig.env_runners(**...)
    learners: dict = field(default_factory=dict)  # AlgorithmConfig.learners(**...)
    # module id -> one offset per logit (Discrete/MultiDiscrete layout), added to the policy head's output bias of
    # the untrained modules (not on resume): a policy that starts from a given behaviour, e.g. an existing cartel
    initial_logits: dict = field(default_factory=dict)

    def validate(self, path: str) -> None:
        require(self.mapping in MAPPINGS, f"{path}.mapping", self.mapping, f"one of {sorted(MAPPINGS)}")
        require_int(self.torch_threads, f"{path}.torch_threads", 1, 1024)
        require(
            "gamma" not in self.training,
            f"{path}.training.gamma",
            self.training.get("gamma"),
            "no value here: the discount is env.discount",
        )


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None  # null: a local Ray session; else e.g. "auto" or "ray://host:10001"
    num_cpus: int | None = None  # local session only

    def validate(self, path: str) -> None:
        if self.num_cpus is not None:
            require_int(self.num_cpus, f"{path}.num_cpus", 1, 10**6)


@dataclass(frozen=True)
class EvalSettings:
    episodes: int = 10
    seed: int = 1000
    explore: bool = True  # sample the policy's actions (false: the most likely action)


@dataclass(frozen=True)
class ScanSettings:
    key: str = ""  # dotted config key, list indices allowed (agents.clients.0.q)
    values: tuple = ()
    theory: float | None = None  # drawn as a vertical line in the plot, e.g. ${inspection_threshold:} (analytic q*)


@dataclass(frozen=True)
class RunConfig:
    env: dict[str, Any]
    train: TrainSettings
    algo: AlgoSettings
    ray: RaySettings
    evaluation: EvalSettings
    scan: ScanSettings | None


def parse_run(cfg: Mapping[str, Any]) -> RunConfig:
    """Validate a train config (a plain mapping) before anything starts; the env sections via `MarketEnv`."""
    require(isinstance(cfg, Mapping), "config", cfg, "a mapping")
    check_keys(cfg, TRAIN_KEYS)
    env_cfg = {k: cfg[k] for k in ENV_KEYS if cfg.get(k) is not None}
    env = MarketEnv(env_cfg)  # validates seed, market, mechanism, agents and env
    scan = from_mapping(ScanSettings, cfg["scan"], "scan") if cfg.get("scan") else None
    if scan is not None:
        require(bool(scan.key) and len(scan.values) > 0, "scan", cfg["scan"], "a key and a list of values")
    run = RunConfig(
        env_cfg,
        *(
            from_mapping(cls, cfg.get(name), name)
            for name, cls in (
                ("train", TrainSettings),
                ("algo", AlgoSettings),
                ("ray", RaySettings),
                ("evaluation", EvalSettings),
            )
        ),
        scan,
    )
    check_initial_logits(run.algo, env)
    if markets_per_runner(run.algo) != 1:
        VecMarketEnv(env_cfg, markets_per_runner(run.algo))  # validates K markets settled together
    return run


def markets_per_runner(algo: AlgoSettings) -> Any:
    """Markets each env runner samples (`num_envs_per_env_runner`): more than one runs them in one engine."""
    return algo.env_runners.get("num_envs_per_env_runner", 1)


def check_initial_logits(algo: AlgoSettings, env: MarketEnv) -> None:
    """`algo.initial_logits` names modules the focal agents map to, with one number per logit."""
    spaces = module_spaces(env, algo.mapping)
    for module_id, offsets in algo.initial_logits.items():
        width = sum(split_logits(spaces[module_id][1])) if module_id in spaces else 0
        require(
            module_id in spaces
            and isinstance(offsets, (list, tuple))
            and len(offsets) == width
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in offsets),
            f"algo.initial_logits.{module_id}",
            offsets,
            f"a list of {width} numbers (one per logit)" if width else f"a module of {sorted(spaces)}",
        )


# ------------------------------------------------------------------------------------------------------- RLlib
def ensure_ray(settings: RaySettings) -> None:
    """Start (or connect to) the one Ray session of this process, unless one is already up."""
    import ray

    if ray.is_initialized():
        return
    if settings.address:
        ray.init(address=settings.address)
    else:
        ray.init(
            num_cpus=settings.num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
        )


def algorithm_config(run: RunConfig) -> Any:
    """The RLlib AlgorithmConfig: env, one module per role (or agent), the market metrics callback, seeds."""
    import torch
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.tune.registry import get_trainable_cls, register_env

    torch.set_num_threads(run.algo.torch_threads)
    register_env(ENV_NAME, RLlibMarketEnv)
    env = MarketEnv(run.env)
    require(len(env.possible_agents) > 0, "env.focal", run.env.get("env", {}).get("focal"), "at least one focal agent")
    spaces = module_spaces(env, run.algo.mapping)
    specs = {m: RLModuleSpec(observation_space=obs, action_space=act) for m, (obs, act) in spaces.items()}
    config = get_trainable_cls(run.algo.name).get_default_config()
    return (
        config.environment(ENV_NAME, env_config=run.env)
        .multi_agent(
            policies=sorted(specs),
            policy_mapping_fn=AgentToModule(run.algo.mapping, env.possible_agents),
            policies_to_train=sorted(specs),
        )
        .rl_module(
            rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs), model_config=DefaultModelConfig(**run.algo.model)
        )
        .env_runners(**run.algo.env_runners, **vector_runner(run.algo))
        .learners(**run.algo.learners)
        .training(gamma=env.discount, **run.algo.training)
        .callbacks(MarketMetrics)
        .debugging(seed=int(run.env.get("seed", 0)))
    )


def vector_runner(algo: AlgoSettings) -> dict[str, Any]:
    """With several markets per env runner, the runner that settles them in one engine round (`marl.vector`)."""
    return {"env_runner_cls": market_env_runner()} if markets_per_runner(algo) != 1 else {}


def shift_initial_logits(algo: Any, offsets: Mapping[str, Any]) -> None:
    """Add `offsets[module]` to the bias of each module's last policy layer (RLlib's default torch modules), on the
    learner, then copy the weights to the env runners."""
    if not offsets:
        return
    import torch

    def shift(learner: Any) -> None:
        for module_id, values in offsets.items():
            layer = learner.module[module_id].pi.net.mlp[-1]
            with torch.no_grad():
                layer.bias += torch.as_tensor(list(values), dtype=layer.bias.dtype)

    algo.learner_group.foreach_learner(shift)
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True)


def metric_row(iteration: int, result: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """One iteration's metrics. Unprefixed = focal agents, `market_` = every agent of the market. NaN where the
    iteration saw nothing to count (e.g. no bribe was offered)."""
    runners = result.get("env_runners", {})
    market = runners.get(METRICS_KEY, {})
    row: dict[str, Any] = {
        "iteration": iteration,
        "seconds": seconds,
        "env_steps": int(result.get("num_env_steps_sampled_lifetime", 0)),
        "episodes": _count(market.get("episodes", 0)),
    }
    for scope in SCOPES:
        rates = role_rates(market.get(scope, {}))
        prefix = "" if scope == "focal" else "market_"
        row.update({prefix + k: (math.nan if v is None else float(v)) for k, v in rates.items()})
    returns = runners.get("module_episode_returns_mean", {})
    row.update({f"module_return_{m}": float(v) for m, v in sorted(returns.items())})
    return row


def _count(value: Any) -> int:
    """An episode count from RLlib's metrics: NaN (nothing logged yet: no episode ended) counts as none."""
    return 0 if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def progress_line(row: Mapping[str, Any], total: int) -> str:
    def f(key: str, fmt: str = ".3f") -> str:
        v = row.get(key, math.nan)
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    rets = " ".join(f"{r} {f(f'return_{r}', '.2f')}" for r in ROLES if not math.isnan(row.get(f"return_{r}", math.nan)))
    return (
        f"iter {row['iteration']:>5}/{total}  {row['seconds']:6.1f}s  steps {row['env_steps']:>9,}  return {rets}"
        f"  | cheat {f('cheat_rate')}  collude {f('collusion_rate')}  fake/deal {f('fake_accepted_per_deal')}"
        f"  check {f('check_rate')}  bribe-take {f('bribe_acceptance')}"
    )


class MetricsSink:
    """metrics.parquet (rewritten whole each iteration: small, and a crash never leaves half a file) + TensorBoard."""

    def __init__(self, run_dir: Path, keep_until: int | None) -> None:
        from tensorboardX import SummaryWriter

        self.path = run_dir / "metrics.parquet"
        self.rows: list[dict[str, Any]] = []
        if keep_until is not None and self.path.is_file():
            old = pd.read_parquet(self.path)
            self.rows = old[old["iteration"] <= keep_until].to_dict("records")
        self.tb = SummaryWriter(str(run_dir / "tb"))

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        for key, value in row.items():
            if key != "iteration" and isinstance(value, (int, float)) and not math.isnan(value):
                self.tb.add_scalar(key, value, row["iteration"])
        self.tb.flush()
        tmp = self.path.with_name(".metrics.parquet.tmp")
        pd.DataFrame(self.rows).to_parquet(tmp, index=False)
        os.replace(tmp, self.path)

    def close(self) -> None:
        self.tb.close()


def save_checkpoint(algo: Any, run_dir: Path, iteration: int) -> Path:
    path = checkpoint_path(run_dir, iteration)
    algo.save_to_path(str(path.resolve()))
    (path / STATE_FILE).write_text(json.dumps({"iteration": iteration}) + "\n")  # marks the checkpoint complete
    return path


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    metrics: pd.DataFrame
    algo: Any = None  # the live algorithm when `keep_algo`; the caller stops it


def train(
    cfg: Mapping[str, Any],
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    keep_algo: bool = False,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train one config into `run_dir` (the Hydra-free core, for tests and scans). Uses the current Ray session or
    starts one per `ray.*`."""
    run = parse_run(cfg)
    run_dir = Path(run_dir)
    start_ckpt = latest_checkpoint(run_dir)
    if start_ckpt is not None and not resume:
        raise ConfigError(
            f"run_dir={str(run_dir)!r} already holds checkpoints: use resume=true to continue it, or another run_dir"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(dict(cfg))))
    ensure_ray(run.ray)
    algo = algorithm_config(run).build_algo()
    done = 0
    if resume and start_ckpt is not None:
        algo.restore_from_path(str(start_ckpt.resolve()))
        done = json.loads((start_ckpt / STATE_FILE).read_text())["iteration"]
        log(f"resumed from {start_ckpt} (iteration {done})")
    else:
        shift_initial_logits(algo, run.algo.initial_logits)
    sink = MetricsSink(run_dir, done if resume else None)
    ckpt = start_ckpt
    try:
        for it in range(done + 1, run.train.iterations + 1):
            t0 = time.perf_counter()
            result = algo.train()
            row = metric_row(it, result, time.perf_counter() - t0)
            sink.add(row)
            if run.train.progress:
                log(progress_line(row, run.train.iterations))
            if it % run.train.checkpoint_every == 0 or it == run.train.iterations:
                ckpt = save_checkpoint(algo, run_dir, it)
    finally:
        sink.close()
        if not keep_algo:
            algo.stop()
    return TrainResult(run_dir, ckpt, pd.DataFrame(sink.rows), algo if keep_algo else None)


# ----------------------------------------------------------------------------------------------------------- scan
def with_value(cfg: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of `cfg` with the dotted `key` (list indices allowed, e.g. agents.clients.0.q) set to `value`."""
    conf = OmegaConf.create(dict(cfg))
    require(OmegaConf.select(conf, key) is not None, "scan.key", key, "a key present in the config")
    OmegaConf.update(conf, key, value, merge=False)
    return OmegaConf.to_container(conf, resolve=True)


def run_scan(
    cfg: Mapping[str, Any], run_dir: str | os.PathLike[str], *, resume: bool = False, log: Callable[[str], None] = print
) -> pd.DataFrame:
    """Train and evaluate one run per scan value; write scan.parquet and scan.png into `run_dir`."""
    run = parse_run(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(dict(cfg))))
    base = {k: v for k, v in cfg.items() if k != "scan"}
    rows = []
    for value in run.scan.values:
        sub = with_value(base, run.scan.key, value)
        log(f"--- {run.scan.key}={value}")
        result = train(sub, run_dir / f"{run.scan.key}={value}", resume=resume, keep_algo=True, log=log)
        env_cfg = parse_run(sub).env
        try:
            policy = LearnedPolicy.from_algorithm(result.algo, run.algo.mapping, MarketEnv(env_cfg))
            ev = evaluate(env_cfg, policy, run.evaluation.episodes, run.evaluation.seed, run.evaluation.explore)
        finally:
            result.algo.stop()
        focal, market = (_nan(ev.summary[scope]["rates"]) for scope in SCOPES)
        rows.append(
            {
                "key": run.scan.key,
                "value": value,
                **focal,
                **{f"market_{k}": v for k, v in market.items()},
                "train_iterations": run.train.iterations,
                "eval_episodes": run.evaluation.episodes,
            }
        )
        log("    evaluated: " + "  ".join(f"{k} {focal[k]:.3f}" for k in HEADLINE if not math.isnan(focal[k])))
    table = pd.DataFrame(rows)
    table.to_parquet(run_dir / "scan.parquet", index=False)
    plot_scan(table, run_dir / "scan.png", run.scan.theory)
    return table


def _nan(rates: Mapping[str, float | None]) -> dict[str, float]:
    return {k: math.nan if v is None else float(v) for k, v in rates.items()}


def plot_scan(table: pd.DataFrame, path: Path, theory: float | None = None) -> None:
    """Evaluated rates against the swept value; a dashed line at the theoretical threshold when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for col, label in (
        ("cheat_rate", "cheat rate (learned nodes)"),
        ("check_rate", "check rate (learned clients)"),
        ("bribe_acceptance", "bribe acceptance (learned mediators)"),
    ):
        if col in table and table[col].notna().any():
            ax.plot(table["value"], table[col], "o-", label=label)
    if theory is not None:
        ax.axvline(theory, ls="--", c="grey", label=f"theory: threshold {theory}")
    ax.set_xlabel(str(table["key"].iloc[0]))
    ax.set_ylabel("rate after training (evaluation)")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    plain = OmegaConf.to_container(cfg, resolve=True)
    run_dir = Path(plain.pop("run_dir"))
    resume = bool(plain.pop("resume", False))
    log = logging.getLogger("experiments.train").info  # console and Hydra's train.log in the run directory
    try:
        if plain.get("scan"):
            table = run_scan(plain, run_dir, resume=resume, log=log)
            shown = table[["value", *HEADLINE, "fake_accepted_per_deal"]].dropna(axis=1, how="all")
            log(f"{table['key'].iloc[0]} scan (evaluated, focal agents):\n{shown.to_string(index=False)}")
            log(f"scan table and plot: {run_dir / 'scan.parquet'}, {run_dir / 'scan.png'}")
        else:
            result = train(plain, run_dir, resume=resume, log=log)
            log(f"final checkpoint {result.checkpoint}; metrics {run_dir / 'metrics.parquet'}")
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
