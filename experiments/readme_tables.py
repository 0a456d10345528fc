"""`python -m experiments.readme_tables`: the README's measured tables, rendered from what measures them.

Each measured block of README.md sits between `<!-- table:NAME -->` and `<!-- /table:NAME -->`; `tables()` lists
them. Cheap ones are measured here (the preset table and the simulate example: one `simulate` run per mechanism
preset at the simulate defaults, outputs kept under `outputs/readme/`); the others are rendered from the saved
outputs of the command that measures them (the quickstart's `ranked.parquet`, a training scan's `scan.parquet`, an
evaluation's `summary.json`, the search's `search_summary.json`, the benchmarks' JSON), and the command is printed
when that output is missing.

    python -m experiments.readme_tables                      # print every block it can render
    python -m experiments.readme_tables --write              # and replace those blocks in README.md
    python -m experiments.readme_tables --write presets quickstart
    python -m experiments.readme_tables --list               # each block and the command that measures it
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from experiments.analysis.analytic import register_resolver
from experiments.analysis.configs import compose_plain
from experiments.simulate import format_summary, run_simulation

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
OUTPUTS = REPO / "outputs"
PRESETS = sorted(p.stem for p in (REPO / "configs" / "mechanism").glob("*.yaml"))


class Missing(Exception):
    """A saved output a table is rendered from does not exist yet; the message names the command that makes it."""


@dataclass(frozen=True)
class Table:
    """One README block: how to render it (text between the markers) and the command whose output it shows."""

    name: str
    command: str
    render: Callable[[], str]


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def parse_markdown(text: str) -> tuple[list[str], list[str]]:
    """Header cells and first-column row keys of the first markdown table in `text`."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    if len(rows) < 2:
        raise ValueError("no markdown table")
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    return cells[0], [c[0] for c in cells[2:]]


def caption(text: str) -> str:
    """A caption paragraph wrapped like the README's prose."""
    return textwrap.fill(text, 116, break_long_words=False, break_on_hyphens=False)


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None or pd.isna(x) else format(x, fmt)


def _need(path: Path, command: str) -> Path:
    if not path.exists():
        raise Missing(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path} is missing; run: {command}")
    return path


def _json(path: Path, command: str) -> Any:
    """A saved JSON output (Missing names `command` when it is not there)."""
    return json.loads(_need(path, command).read_text())


def _config(path: Path, command: str, resolve: bool = True) -> dict[str, Any]:
    """A saved config (a run's config.yaml) as plain containers."""
    return OmegaConf.to_container(OmegaConf.load(_need(path, command)), resolve=resolve)


# ------------------------------------------------------------------------------------------------ presets (simulate)
PRESET_HEADER = (
    "preset",
    "jobs",
    "deals",
    "fake accepted / job",
    "fake accepted / deal",
    "client cost / job",
    "extra executions / job",
    "always-cheat node profit / deal",
    "honest node profit / deal",
)


def simulate_presets(overrides: Sequence[str] = (), out: Path = OUTPUTS / "readme") -> dict[str, dict[str, Any]]:
    """`python -m experiments.simulate mechanism=<preset> <overrides>` for every preset: preset -> summary."""
    runs = {}
    for preset in PRESETS:
        cfg = compose_plain("simulate", [f"mechanism={preset}", "progress=false", *overrides])
        runs[preset] = run_simulation(cfg, out / preset)
    return runs


def _strategy(summary: Mapping[str, Any], prefix: str) -> Mapping[str, Any] | None:
    return next((v for k, v in summary["profit_per_strategy"].items() if k.startswith(prefix)), None)


def preset_table(runs: Mapping[str, Mapping[str, Any]], overrides: Sequence[str] = ()) -> str:
    """The preset table from the runs' summaries (keys as in summary.json, definitions in sim.metrics)."""
    cfg = compose_plain("simulate", list(overrides))
    m = cfg["market"]
    rows = []
    for preset, s in runs.items():
        cheat, honest = _strategy(s, "node cheater(rate=1.0"), _strategy(s, "node honest")
        rows.append(
            [
                f"`{preset}`",
                f"{s['jobs']:,}",
                f"{s['deals']:,}",
                _num(s["fake_accepted_per_job"], ".4f"),
                _num(s["fake_accepted_per_deal"], ".4f"),
                _num(s["client_cost_per_job"], ",.2f"),
                _num(s["extra_executions_per_job"], ".3f"),
                _num(cheat and cheat["per_deal"], ",.2f"),
                _num(honest and honest["per_deal"], ",.2f"),
            ]
        )
    text = (
        f"`python -m experiments.simulate mechanism=<preset>`: {m['n_clients']:,} clients, {m['n_nodes']:,} "
        f"nodes, the default population, {cfg['rounds']} rounds, seed {cfg['seed']} (`summary.json` of each "
        "run; per job = all replicas of one job offer, per deal = each replica, as defined in `sim.metrics`)."
    )
    return f"{caption(text)}\n\n{markdown(PRESET_HEADER, rows)}\n\n{preset_findings(runs)}"


def preset_findings(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """Under which presets always cheating loses money, and which preset costs clients the most."""
    cheat = {p: _strategy(s, "node cheater(rate=1.0") for p, s in runs.items()}
    losing = [f"`{p}`" for p, c in cheat.items() if c is not None and c["per_deal"] < 0]
    dearest = max(runs, key=lambda p: runs[p]["client_cost_per_job"] or 0)
    return caption(
        f"Always cheating loses money per deal under {', '.join(losing) or 'no preset'}; clients pay the most per "
        f"job under `{dearest}`."
    )


def default_choice(group: str, config_name: str = "simulate") -> str:
    """The option a config's defaults list picks for `group` (e.g. simulate's mechanism)."""
    defaults = OmegaConf.load(REPO / "configs" / f"{config_name}.yaml").defaults
    return next(str(d[group]) for d in defaults if OmegaConf.is_dict(d) and group in d)


def example_block(summary: Mapping[str, Any]) -> str:
    return f"`python -m experiments.simulate` (defaults):\n\n```\n{format_summary(dict(summary))}\n```"


# --------------------------------------------------------------------------------------------------------- quickstart
QUICKSTART_COMMAND = "make run  (python -m experiments.quickstart; links outputs/quickstart/latest)"
SECURITY_HEADER = ("secure", "worst gain [95% CI]", "worst deviation", "cost / correct result")
QUICKSTART_HEADER = ("rank", "mechanism", *SECURITY_HEADER, "extra exec / job", "fake accepted / job")


def security_cells(r: Mapping[str, Any]) -> list[str]:
    """A mechanism's security and cost columns, from an `Assessment.row()` (the quickstart's and the search's)."""
    return [
        "yes" if r["secure"] else "no",
        f"{r['max_gain']:.2f} [{r['max_gain_lo']:.2f}, {r['max_gain_hi']:.2f}]",
        str(r["worst"]),
        _num(r["cost_per_correct_result"], ".2f"),
    ]


def quickstart_table(run_dir: Path = OUTPUTS / "quickstart" / "latest") -> str:
    """The quickstart's ranked table (ranked.parquet, mixed_fake_accepted_per_job per job as in sim.metrics)."""
    ranked = pd.read_parquet(_need(run_dir / "ranked.parquet", QUICKSTART_COMMAND))
    cfg = _config(run_dir / ".hydra" / "config.yaml", QUICKSTART_COMMAND, resolve=False)
    seconds = _json(run_dir / "analysis.json", QUICKSTART_COMMAND)["seconds"]
    rows = [
        [
            str(r["rank"]),
            str(r["mechanism"]),
            *security_cells(r),
            _num(r["extra_executions_per_job"], ".2f"),
            _num(r["mixed_fake_accepted_per_job"], ".3f"),
        ]
        for _, r in ranked.iterrows()
    ]
    study, mixed = cfg["study"], cfg.get("mixed_runs") or {}
    text = (
        f"Measured by the quickstart ({cfg['market']['n_nodes']}-node default market, {study['rounds']} rounds, "
        f"seeds {study['seeds']}; fake accepted per job from the mixed population over seeds "
        f"{mixed.get('seeds')}; {seconds:.0f} s):"
    )
    return f"{caption(text)}\n\n{markdown(QUICKSTART_HEADER, rows)}"


# ---------------------------------------------------------------------------------------------------- search
SEARCH_COMMAND = "python -m experiments.search +experiment=search hydra.sweep.dir=outputs/search/readme"


def _value(value: str) -> str:
    """A fractional value to three significant digits; anything else as written."""
    try:
        return f"{float(value):.3g}" if "." in value else value
    except ValueError:
        return value


def search_settings(overrides: Sequence[str]) -> str:
    """A trial's `mechanism.*` overrides, shortened; a disabled mechanism's other parameters left out."""
    settings = dict(o.removeprefix("mechanism.").split("=", 1) for o in overrides if o.startswith("mechanism."))
    off = {k.removesuffix(".enabled") for k, v in settings.items() if k.endswith(".enabled") and v.lower() == "false"}
    return " ".join(
        f"{k}={_value(v)}" for k, v in settings.items() if k.endswith(".enabled") or k.split(".")[0] not in off
    )


def search_table(sweep_dir: Path = OUTPUTS / "search" / "readme") -> str:
    """The search's winner beside its reference preset (`search_summary.json`, written by `WriteWinner`)."""
    s = _json(sweep_dir / "search_summary.json", SEARCH_COMMAND)
    winner, reference = s["winner"], s["reference"]
    rows = [
        [
            f"`{winner['name']}` (trial {winner['job']})",
            *security_cells(winner),
            f"`{search_settings(winner['overrides'])}`",
        ],
        [str(reference["name"]), *security_cells(reference), "the preset"],
    ]
    text = (
        f"`{SEARCH_COMMAND}`: {s['trials']} trials, {s['secure_trials']} secure; the cheapest secure trial (the "
        "cheapest of all when none is) against the reference preset on the same study (`search_summary.json`):"
    )
    return f"{caption(text)}\n\n{markdown(('mechanism', *SECURITY_HEADER, 'parameters'), rows)}"


# ------------------------------------------------------------------------------------------------ training scans
SCANS = {
    "cheat_threshold": "python -m experiments.train +experiment=cheat_threshold",
    "learned_nodes": "python -m experiments.train +experiment=learned_nodes",
    "learned_mediators": "python -m experiments.train +experiment=learned_mediators",
}


def load_scan(name: str, root: Path = OUTPUTS / "train") -> tuple[pd.DataFrame, dict[str, Any]]:
    """A scan's table and resolved config (`run_dir/scan.parquet`, `run_dir/config.yaml`)."""
    run_dir = root / name
    table = pd.read_parquet(_need(run_dir / "scan.parquet", SCANS[name]))
    return table, _config(run_dir / "config.yaml", SCANS[name])


def threshold_table(root: Path = OUTPUTS / "train") -> str:
    """Learned cheat rate per check probability, from `+experiment=cheat_threshold`."""
    table, cfg = load_scan("cheat_threshold", root)
    first = table.iloc[0]
    header = ["q", *(f"{v:.2f}" for v in table["value"])]
    text = (
        f"`{SCANS['cheat_threshold']}` ({cfg['env']['focal']['node']} learning nodes, "
        f"{first['train_iterations']} PPO iterations, {first['eval_episodes']} evaluation episodes per q; "
        f"analytic threshold q* = {_num(cfg['scan'].get('theory'), '.2f')}):"
    )
    row = ["learned cheat rate", *(f"{v:.3f}" for v in table["cheat_rate"])]
    return f"{caption(text)}\n\n{markdown(header, [row])}"


LEARNED_HEADER = ("setting", "learned rate", "theory")


def learned_table(root: Path = OUTPUTS / "train") -> str:
    """The acceptance settings (tests/experiments/test_train.py) as two scans, beside what theory predicts."""
    nodes, ncfg = load_scan("learned_nodes", root)
    meds, mcfg = load_scan("learned_mediators", root)
    qstar = ncfg["scan"]["theory"]
    rows = [
        [
            f"nodes vs clients checking at q = {v:g}",
            f"cheat rate {r:.3f}",
            f"cheat (q < {qstar:g})" if v < qstar else f"honest (q > {qstar:g})",
        ]
        for v, r in zip(nodes["value"], nodes["cheat_rate"], strict=True)
    ]
    bribe = max(g.get("bribe", 0) for g in mcfg["agents"]["nodes"])
    rerun = max(m["compute_cost"] for m in mcfg["market"]["modules"])
    rows += [
        [
            f"mediators, bribe {bribe}, expected loss {v:g}",
            f"bribe acceptance {r:.3f}",
            f"take ({bribe} + {rerun} > {v:g})" if bribe + rerun > v else f"refuse ({bribe} + {rerun} < {v:g})",
        ]
        for v, r in zip(meds["value"], meds["bribe_acceptance"], strict=True)
    ]
    first = nodes.iloc[0]
    text = (
        f"`{SCANS['learned_nodes']}` and `{SCANS['learned_mediators']}` (real PPO, fixed seeds, "
        f"{first['train_iterations']} iterations, {first['eval_episodes']} evaluation episodes: the settings "
        "of the acceptance tests):"
    )
    return f"{caption(text)}\n\n{markdown(LEARNED_HEADER, rows)}"


#: The collusion experiment's mechanisms (replication alone, and with Dong et al.'s contracts) -> run directory
COLLUSION = {"collusion/replication": "collusion_replication", "dong_counter_collusion": "collusion_dong"}
COLLUSION_HEADER = ("mechanism", "run directory", "collusion rate", "profit per learning node and round")


def collusion_command(mechanism: str, run: str) -> str:
    """Train the cartel under `mechanism`, then evaluate it into `<run_dir>/evaluation`."""
    run_dir = f"outputs/train/{run}"
    return (
        f"python -m experiments.train +experiment=node_collusion mechanism={mechanism} run_dir={run_dir}; "
        f"python -m experiments.evaluate run_dir={run_dir} out_dir={run_dir}/evaluation"
    )


def collusion_table(root: Path = OUTPUTS / "train") -> str:
    """Collusion rate and profit of the learning nodes under each mechanism (evaluate's `summary.json`, focal)."""
    rows = []
    for mechanism, run in COLLUSION.items():
        command = collusion_command(mechanism, run)
        cfg = _config(root / run / "config.yaml", command)
        summary = _json(root / run / "evaluation" / "summary.json", command)
        focal = summary["focal"]
        per_round = focal["counts"]["node_profit"] / focal["counts"]["node_agents"] / cfg["env"]["rounds"]
        rows.append(
            [
                f"`{mechanism}`",
                f"`outputs/train/{run}`",
                _num(focal["rates"]["collusion_rate"], ".4f"),
                f"{per_round:.2f}",
            ]
        )
    text = (
        f"`{collusion_command('<mechanism>', '<run>')}` ({cfg['env']['focal']['node']} learning nodes, "
        f"{cfg['train']['iterations']} PPO iterations, {summary['episodes']} evaluation episodes):"
    )
    return f"{caption(text)}\n\n{markdown(COLLUSION_HEADER, rows)}"


# -------------------------------------------------------------------------------------------------------- benchmarks
BENCH = {
    "engine": "make bench  (python -m benchmarks.engine --out outputs/bench/engine.json)",
    "rl_env": (
        "make bench  (benchmarks/rl_env.py --sizes 8 --markets 1 5 16 21 --steps 1008 --repeats 4 "
        "--out outputs/bench/rl_env.json)"
    ),
    "live_docker": "make bench  (benchmarks/live_docker.py --out outputs/bench/live_docker.json)",
    "gas": "python benchmarks/gas.py --readme",
    "live": "python benchmarks/live_stack.py",
}
ENGINE_HEADER = (
    "clients = nodes",
    "deals per round",
    "engine (deals/s)",
    "kernel (deals/s)",
    "engine / kernel",
    "engine bytes per deal",
    "kernel bytes per deal",
    "Mesa reference (deals/s)",
    "engine / reference",
    "engine (deals/s, wall)",
)
LIVE_DOCKER_HEADER = (
    "module",
    "executor (s)",
    "docker run, contained (s)",
    "docker run, bare (s)",
    "executor / contained",
    "executor / bare",
)
RL_HEADER = (
    "learning agents per market",
    "markets per env step",
    "market rounds/s",
    "no-op rounds/s",
    "decisions/s",
    "added sampling time",
)


def _bench(name: str, root: Path) -> Any:
    return _json(root / f"{name}.json", BENCH[name])


def engine_caption(run: Mapping[str, Any]) -> str:
    """How the engine figures were taken (rates on CPU time: the machine is shared)."""
    kept = "kept" if run["freed_memory_kept"] else "returned"
    text = (
        f"{run['rounds']} rounds per size, best of {run['repeats']} interleaved engine/kernel passes; rates on "
        f"CPU time (wall in the last column); freed memory {kept} (sim.memory); {run['cpus']} CPUs, load average "
        f"{run['load_start']:.1f} at start"
    )
    if "load_end" in run:
        text += f", {run['load_end']:.1f} at end; process peak RSS {run['peak_rss_gib']:.2f} GiB"
    return text


def engine_cells(r: Mapping[str, Any]) -> list[str]:
    """One size's row of the engine table."""
    no_ref = r["reference_deals_per_s"] is None
    return [
        f"{r['size']:,}",
        f"{r['deals_per_round']:,.0f}",
        f"{r['engine_deals_per_s']:,.0f}",
        f"{r['kernel_deals_per_s']:,.0f}",
        f"{r['engine_over_kernel']:.1f}x",
        f"{r['engine_bytes_per_deal']:,.0f}",
        f"{r['kernel_bytes_per_deal']:,.0f}",
        "skipped (too slow)" if no_ref else f"{r['reference_deals_per_s']:,.0f}",
        "-" if no_ref else f"{r['engine_over_reference']:,.0f}x",
        f"{r['engine_wall_deals_per_s']:,.0f}",
    ]


def engine_table(root: Path = OUTPUTS / "bench") -> str:
    data = _bench("engine", root)
    rows = [engine_cells(r) for r in data["rows"]]
    text = caption(f"`{BENCH['engine']}`: {engine_caption(data['run'])}")
    return f"{text}\n\n{markdown(ENGINE_HEADER, rows)}"


#: Issue 12's sampling targets at 8 learning agents per market: added sampling time at most 25%, decisions/s at
#: least 5x the one-market env's.
RL_TARGET = {"agents": 8, "overhead": 0.25, "speedup": 5.0}


def rl_targets(rows: Sequence[Mapping[str, Any]]) -> str:
    """Which markets-per-step rows meet both sampling targets (against the one-market row of the same size)."""
    rows = [r for r in rows if r["agents"] == RL_TARGET["agents"]]
    one = next((r["market_decisions_per_s"] for r in rows if r["markets"] == 1), None)
    met = [
        str(r["markets"])
        for r in rows
        if one and r["overhead"] <= RL_TARGET["overhead"] and r["market_decisions_per_s"] >= RL_TARGET["speedup"] * one
    ]
    return caption(
        f"Targets at {RL_TARGET['agents']} learning agents per market: added sampling time at most "
        f"{RL_TARGET['overhead']:.0%} and decisions/s at least {RL_TARGET['speedup']:g}x the one-market env's; both "
        f"met at markets per step: {', '.join(met) or 'none measured'}."
    )


def rl_table(root: Path = OUTPUTS / "bench") -> str:
    data = _bench("rl_env", root)
    run = data["run"]
    rows = [
        [
            str(r["agents"]),
            str(r["markets"]),
            f"{r['market_steps_per_s']:,.0f}",
            f"{r['noop_steps_per_s']:,.0f}",
            f"{r['market_decisions_per_s']:,.0f}",
            f"{r['overhead']:.0%}",
        ]
        for r in data["rows"]
    ]
    text = caption(f"`{BENCH['rl_env']}`: best of {run['repeats']} interleaved timings of {run['steps']} market "
                   f"rounds; {run['cpus']} CPUs, load average {run['load_start']:.1f} at start, "
                   f"{run['load_end']:.1f} at end")  # fmt: skip
    return f"{text}\n\n{markdown(RL_HEADER, rows)}\n\n{rl_targets(data['rows'])}"


def live_docker_table(root: Path = OUTPUTS / "bench") -> str:
    data = _bench("live_docker", root)
    rows = [
        [
            r["module"],
            f"{r['executor']:.3f}",
            f"{r['contained']:.3f}",
            f"{r['bare']:.3f}",
            f"{r['executor'] / r['contained']:.2f}x",
            f"{r['executor'] / r['bare']:.2f}x",
        ]
        for r in data
    ]
    first = data[0] if data else {"repeats": 0, "cpus": 0, "load": 0.0}
    text = (
        f"`{BENCH['live_docker']}`: {first['repeats']} interleaved runs per way after a warm-up, median wall time; "
        f"{first['cpus']} CPUs, load average {first['load']:.1f} at the start."
    )
    return f"{caption(text)}\n\n{markdown(LIVE_DOCKER_HEADER, rows)}"


def gas_markdown(data: Mapping[str, Any]) -> str:
    """Gas per deal for each terminal path (cold / warm) and preset, the deployment and the batched mode."""
    presets, rows = data["presets"], data["rows"]
    header = ["terminal path", *(f"{p} cold / warm" for p in presets), "target"]
    lines = []
    for path in data["paths"]:
        target = data["targets"].get(path)
        cells = [f"{rows[p][path][0]:,} / {rows[p][path][1]:,}" for p in presets]
        lines.append([path, *cells, "" if target is None else f"<= {target:,}"])
    lines.append(["deployment (token, beacon, deals, module)", *(f"{data['deploy_gas'][p]:,}" for p in presets), ""])
    batch = f"batched happy path, per deal over {data['batch_size']} (EIP-712, one settle tx)"
    lines.append([batch, f"{data['batch']:,}", *([""] * (len(presets) - 1)), f"<= {data['batch_target']:,}"])
    return markdown(header, lines)


def gas_table(root: Path = OUTPUTS / "bench") -> str:
    return gas_markdown(_bench("gas", root))


LIVE_HEADER = ("measure", "live stack", "bare `docker run`", "ratio", "target")


def live_markdown(r: Mapping[str, Any]) -> str:
    """Per-job latency through the live stack against bare `docker run`, and settled deals per second."""
    rows = [
        [
            f"job latency, median of {r['repeats']} ({r['module']})",
            f"{r['stack']:.2f} s",
            f"{r['bare']:.2f} s",
            f"{r['stack'] / r['bare']:.2f}x",
            "<= 1.5x",
        ],
        [
            f"throughput, {r['providers']} providers x {r['slots']} slots, {r['jobs']} jobs",
            f"{r['settled'] / r['wall']:.1f} settled deals/s",
            f"{r['ceiling']:.1f} jobs/s (executor alone, {r['providers'] * r['slots']} at once)",
            f"{r['settled'] / r['wall'] / r['ceiling']:.2f} of the ceiling",
            ">= 20 deals/s",
        ],
    ]
    note = (
        f"anvil (latency: automine; throughput: a block every {r['block_s']} s), {r['cpus']} CPUs, load average "
        f"{r['load']:.1f} at the start (the machine is shared)."
    )
    if "cpu" in r:  # where the time goes (benchmarks written before they were measured lack it)
        c, settled = r["cpu"], max(r["settled"], 1)
        phases = ", ".join(f"{name} {1000 * s:.0f}" for name, s in r["phases"].items())
        note += (
            f" Throughput run: the machine busy {c['busy_s'] / r['wall']:.2f} of {r['cpus']} cores; CPU per settled "
            f"deal: services and executors {1000 * c['services_s'] / settled:.0f} ms, anvil "
            f"{1000 * c['anvil_s'] / settled:.0f} ms, everything else on the machine (the Docker engine, containers, "
            f"other users) {1000 * (c['busy_s'] - c['services_s'] - c['anvil_s']) / settled:.0f} ms. Executor alone: "
            f"{1000 * c['executor_busy_per_job_s']:.0f} ms of machine CPU per job at the ceiling; one job at a time "
            f"(ms, median): {phases}."
        )
    return f"{markdown(LIVE_HEADER, rows)}\n\n{note}"


def live_table(root: Path = OUTPUTS / "bench") -> str:
    return live_markdown(_bench("live", root))


LIVE_MAIN_COMMAND = 'make live ARGS="out=outputs/live/main"'


def live_main_block(run: Path = OUTPUTS / "live" / "main") -> str:
    """What `make live` printed (live.main writes it to `summary.txt` next to the trace)."""
    text = _need(run / "summary.txt", LIVE_MAIN_COMMAND).read_text().rstrip()
    return f"`{LIVE_MAIN_COMMAND}` printed:\n\n```text\n{text}\n```"


# ------------------------------------------------------------------------------------------------ reproduced results
def reproduced_table(path: Path | None = None) -> str:
    """The literature's results as `python -m experiments.reproduce all` saved them."""
    from experiments.reproduction import table

    return table.markdown(table.load_results(_need(path or table.RESULTS, table.COMMAND)))


# ------------------------------------------------------------------------------------------------------------ README
def tables(overrides: Sequence[str] = ()) -> list[Table]:
    """Every README block, in README order; the two simulate blocks share one set of runs."""
    runs: dict[str, dict[str, Any]] = {}

    def presets() -> dict[str, dict[str, Any]]:
        if not runs:
            runs.update(simulate_presets(overrides))
        return runs

    return [
        Table(
            "presets", "python -m experiments.simulate mechanism=<preset>", lambda: preset_table(presets(), overrides)
        ),
        Table(
            "simulate_example",
            "python -m experiments.simulate",
            lambda: example_block(presets()[default_choice("mechanism")]),
        ),
        Table("learned_rates", f"{SCANS['learned_nodes']}; {SCANS['learned_mediators']}", learned_table),
        Table("cheat_threshold", SCANS["cheat_threshold"], threshold_table),
        Table("collusion", "; ".join(collusion_command(*c) for c in COLLUSION.items()), collusion_table),
        Table("quickstart", QUICKSTART_COMMAND, quickstart_table),
        Table("search", SEARCH_COMMAND, search_table),
        Table("gas", BENCH["gas"], gas_table),
        Table("live_main", LIVE_MAIN_COMMAND, live_main_block),
        Table("live", BENCH["live"], live_table),
        Table("live_docker", BENCH["live_docker"], live_docker_table),
        Table("reproduced", "python -m experiments.reproduce all --readme", reproduced_table),
        Table("engine_benchmark", BENCH["engine"], engine_table),
        Table("rl_benchmark", BENCH["rl_env"], rl_table),
    ]


def block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- table:{name} -->\n)(.*?)(\n<!-- /table:{name} -->)", re.S)


def readme_block(text: str, name: str) -> str:
    """The text between a block's markers; a README without exactly one such block is an error."""
    found = block_pattern(name).findall(text)
    if len(found) != 1:
        raise ValueError(f"README.md has {len(found)} blocks <!-- table:{name} --> (want exactly one)")
    return found[0][1]


def replace_block(text: str, name: str, body: str) -> str:
    readme_block(text, name)
    return block_pattern(name).sub(lambda m: m.group(1) + body + m.group(3), text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="blocks to render (default: all)")
    parser.add_argument("--write", action="store_true", help="replace the blocks in README.md")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--list", action="store_true", help="list the blocks and the commands that measure them")
    args = parser.parse_args(argv)
    register_resolver()
    every = {t.name: t for t in tables()}
    if args.list:
        print("\n".join(f"{t.name:<18} {t.command}" for t in every.values()))
        return 0
    unknown = sorted(set(args.names) - set(every))
    if unknown:
        parser.error(f"unknown table(s) {unknown}: allowed {sorted(every)}")
    text = args.readme.read_text()
    for name in args.names or list(every):
        try:
            body = every[name].render()
        except Missing as exc:
            print(f"<!-- table:{name} --> not rendered: {exc}", file=sys.stderr)
            continue
        print(f"<!-- table:{name} -->\n{body}\n<!-- /table:{name} -->\n")
        text = replace_block(text, name, body)
    if args.write:
        args.readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
