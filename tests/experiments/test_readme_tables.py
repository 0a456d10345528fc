"""The README's measured blocks are the output of `experiments.readme_tables`: every block is marked once, and the
README's tables have the renderer's columns and row keys (cheap tables regenerated at a small size here, the others
rendered from outputs shaped as their commands write them; the full-size values come from running the script)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from experiments import readme_tables as rt
from experiments.analysis.analytic import register_resolver
from experiments.analysis.configs import compose_plain

README = rt.README.read_text()
SMALL = ("rounds=2", "market.n_clients=60", "market.n_nodes=60", "market.n_stakers=20")


def shape(block: str) -> tuple[list[str], list[str]]:
    return rt.parse_markdown(block)


def skeleton(line: str) -> str:
    """A line with its numbers blanked: what the example block's layout is."""
    return re.sub(r"-?[\d][\d,.]*", "#", line)


def test_every_measured_block_is_marked_once() -> None:
    names = [t.name for t in rt.tables()]
    for name in names:
        assert rt.readme_block(README, name).strip()
    assert sorted(re.findall(r"<!-- table:(\w+) -->", README)) == sorted(names)
    with pytest.raises(ValueError, match="table:nope"):
        rt.readme_block(README, "nope")


def test_preset_table_and_simulate_example_regenerate_in_the_readme_format(tmp_path: Path) -> None:
    runs = rt.simulate_presets(SMALL, tmp_path)
    assert shape(rt.preset_table(runs, SMALL)) == shape(rt.readme_block(README, "presets"))
    assert shape(rt.readme_block(README, "presets"))[1] == [f"`{p}`" for p in rt.PRESETS]
    for preset, s in runs.items():
        assert json.loads((tmp_path / preset / "summary.json").read_text()) == s  # the table shows summary.json
    ours = rt.example_block(runs[rt.default_choice("mechanism")]).splitlines()
    theirs = rt.readme_block(README, "simulate_example").splitlines()
    head = next(i for i, line in enumerate(ours) if line.strip().startswith("profit"))
    assert [skeleton(x) for x in ours[: head + 1]] == [skeleton(x) for x in theirs[: head + 1]]


def test_preset_findings_read_the_summaries() -> None:
    def run(cheat: float, cost: float) -> dict[str, object]:
        return {
            "profit_per_strategy": {"node cheater(rate=1.0, bribe=30)": {"per_deal": cheat}},
            "client_cost_per_job": cost,
        }

    runs = {"a": run(-1.0, 9.0), "b": run(2.0, 3.0), "c": run(-0.5, 1.0)}
    assert rt.preset_findings(runs) == (
        "Always cheating loses money per deal under `a`, `c`; clients pay the most per job under `a`."
    )
    assert rt.preset_findings({"b": run(2.0, 3.0)}).startswith("Always cheating loses money per deal under no preset;")


def scan_dir(root: Path, name: str, rates: dict[str, list[float]]) -> None:
    """A run directory as `experiments.train.run_scan` writes it (config.yaml, scan.parquet), made-up rates."""
    cfg = compose_plain("train", [f"+experiment={name}"])
    values = cfg["scan"]["values"]
    table = pd.DataFrame(
        {
            "key": cfg["scan"]["key"],
            "value": values,
            **rates,
            "train_iterations": cfg["train"]["iterations"],
            "eval_episodes": 10,
        }
    )
    (root / name).mkdir(parents=True)
    table.to_parquet(root / name / "scan.parquet")
    (root / name / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))


def test_training_tables_render_in_the_readme_format(tmp_path: Path) -> None:
    register_resolver()
    with pytest.raises(rt.Missing, match="experiment=learned_nodes"):
        rt.learned_table(tmp_path)
    scan_dir(tmp_path, "learned_nodes", {"cheat_rate": [0.9, 0.1]})
    scan_dir(tmp_path, "learned_mediators", {"bribe_acceptance": [0.9, 0.1]})
    scan_dir(tmp_path, "cheat_threshold", {"cheat_rate": [1.0, 1.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0]})
    learned = rt.learned_table(tmp_path)
    assert shape(learned) == shape(rt.readme_block(README, "learned_rates"))
    assert "cheat (q < 0.2)" in learned and "take (20 + 6 > 10)" in learned and "refuse (20 + 6 < 50)" in learned
    assert shape(rt.threshold_table(tmp_path)) == shape(rt.readme_block(README, "cheat_threshold"))


def test_collusion_table_renders_each_mechanism_from_its_evaluation(tmp_path: Path) -> None:
    register_resolver()
    with pytest.raises(rt.Missing, match="experiment=node_collusion mechanism=collusion/replication"):
        rt.collusion_table(tmp_path)
    for k, (mechanism, run) in enumerate(rt.COLLUSION.items()):
        cfg = compose_plain("train", ["+experiment=node_collusion", f"mechanism={mechanism}"])
        (tmp_path / run / "evaluation").mkdir(parents=True)
        (tmp_path / run / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
        counts = {"node_profit": 3200 * (k + 1), "node_agents": 160}  # 10 episodes x 16 nodes, 20 rounds each
        summary = {"episodes": 10, "focal": {"rates": {"collusion_rate": 0.5 / (k + 1)}, "counts": counts}}
        (tmp_path / run / "evaluation" / "summary.json").write_text(json.dumps(summary))
    table = rt.collusion_table(tmp_path)
    assert shape(table) == shape(rt.readme_block(README, "collusion"))
    assert "| `collusion/replication` | `outputs/train/collusion_replication` | 0.5000 | 1.00 |" in table
    assert "| `dong_counter_collusion` | `outputs/train/collusion_dong` | 0.2500 | 2.00 |" in table
    assert "16 learning nodes, 40 PPO iterations, 10 evaluation episodes" in " ".join(table.split())


def test_search_table_shows_the_winner_beside_its_reference(tmp_path: Path) -> None:
    with pytest.raises(rt.Missing, match=re.escape(rt.SEARCH_COMMAND)):
        rt.search_table(tmp_path)
    gains = {"max_gain": 0.0, "max_gain_lo": 0.0, "max_gain_hi": 0.0, "worst": "node: cheater(rate=1.0, bribe=0)"}
    overrides = ["+experiment=search", "mechanism.check_policy.q=0.33124", "mechanism.consortium.enabled=False"]
    overrides += ["mechanism.consortium.size=3", "mechanism.lilypad_v2.mediation_fee=6"]
    summary = {
        "winner": {
            "name": "searched",
            "job": 7,
            "overrides": overrides,
            "secure": True,
            **gains,
            "cost_per_correct_result": 12.5,
        },
        "reference": {"name": "lilypad_v2 (q=0.25)", "secure": False, **gains, "cost_per_correct_result": 25.0},
        "trials": 60,
        "secure_trials": 9,
    }
    (tmp_path / "search_summary.json").write_text(json.dumps(summary))
    table = rt.search_table(tmp_path)
    assert shape(table)[0] == shape(rt.readme_block(README, "search"))[0]
    assert (
        "| `searched` (trial 7) | yes |" in table
        and "`check_policy.q=0.331 consortium.enabled=False lilypad_v2.mediation_fee=6`" in table
    )
    assert "| lilypad_v2 (q=0.25) | no |" in table and "60 trials, 9 secure" in table


def test_rl_targets_name_the_markets_per_step_that_meet_both() -> None:
    def row(markets: int, decisions: float, overhead: float) -> dict[str, float]:
        return {"agents": 8, "markets": markets, "market_decisions_per_s": decisions, "overhead": overhead}

    rows = [row(1, 2000, 0.7), row(5, 9000, 0.3), row(16, 10000, 0.25), row(21, 9999, 0.1)]
    assert rt.rl_targets(rows).endswith("both met at markets per step: 16.")
    assert rt.rl_targets(rows[1:]).endswith("both met at markets per step: none measured.")


def test_benchmark_tables_render_in_the_readme_format(tmp_path: Path) -> None:
    row = {
        "size": 1000,
        "deals_per_round": 998.0,
        "engine_deals_per_s": 1.5e6,
        "kernel_deals_per_s": 3e6,
        "engine_over_kernel": 2.0,
        "engine_bytes_per_deal": 820.0,
        "kernel_bytes_per_deal": 270.0,
        "engine_wall_deals_per_s": 1.4e6,
        "reference_deals_per_s": 700.0,
        "engine_over_reference": 2142.0,
        "agree": True,
    }
    big = {**row, "size": 100000, "reference_deals_per_s": None, "engine_over_reference": None}
    run = {
        "rounds": 3,
        "repeats": 3,
        "cpus": 2,
        "load_start": 1.0,
        "freed_memory_kept": True,
        "load_end": 1.5,
        "peak_rss_gib": 1.9,
    }
    (tmp_path / "engine.json").write_text(json.dumps({"run": run, "rows": [row, big]}))
    rl_row = {
        "agents": 8,
        "markets": 16,
        "market_steps_per_s": 1000.0,
        "noop_steps_per_s": 1300.0,
        "market_decisions_per_s": 8000.0,
        "overhead": 0.3,
        "alone_steps_per_s": 7000.0,
        "env_share": 0.15,
    }
    rl_run = {"steps": 1000, "repeats": 3, "cpus": 2, "load_start": 1.0, "load_end": 1.2}
    (tmp_path / "rl_env.json").write_text(json.dumps({"run": rl_run, "rows": [rl_row]}))
    (tmp_path / "live_docker.json").write_text(
        json.dumps(
            [
                {
                    "module": "cowsay:v1",
                    "executor": 0.3,
                    "contained": 0.5,
                    "bare": 0.3,
                    "repeats": 3,
                    "cpus": 2,
                    "load": 1.0,
                }
            ]
        )
    )
    gas_header = rt.parse_markdown(rt.readme_block(README, "gas"))[0]  # the presets the README shows
    presets = [h.removesuffix(" cold / warm") for h in gas_header[1:-1]]
    gas = {
        "presets": presets,
        "paths": ["ResultsAccepted", "TimeoutAgree"],
        "targets": {"ResultsAccepted": 320000},
        "rows": {p: {"ResultsAccepted": [400000, 200000], "TimeoutAgree": [100000, 90000]} for p in presets},
        "deploy_gas": dict.fromkeys(presets, 4000000),
        "batch": 96000,
        "batch_size": 100,
        "batch_target": 100000,
    }
    (tmp_path / "gas.json").write_text(json.dumps(gas))
    live = {"module": "cowsay:v1", "providers": 8, "cpus": 2, "repeats": 3, "stack": 0.5, "bare": 0.3, "jobs": 40}
    (tmp_path / "live.json").write_text(
        json.dumps({**live, "settled": 40, "wall": 2.0, "block_s": 0.02, "load": 1.0, "slots": 2, "ceiling": 8.0})
    )
    renders = (
        ("gas", rt.gas_table),
        ("live", rt.live_table),
        ("engine_benchmark", rt.engine_table),
        ("rl_benchmark", rt.rl_table),
        ("live_docker", rt.live_docker_table),
    )
    for name, render in renders:
        assert shape(render(tmp_path))[0] == shape(rt.readme_block(README, name))[0], name


def test_the_readme_ranks_the_quickstart_presets() -> None:
    """The quickstart block (rendered from ranked.parquet by test_report) lists every preset the quickstart runs."""
    header, ranks = shape(rt.readme_block(README, "quickstart"))
    assert list(header) == list(rt.QUICKSTART_HEADER) and ranks == [str(i + 1) for i in range(len(ranks))]
    rows = [
        line.split("|")[2].strip()
        for line in rt.readme_block(README, "quickstart").splitlines()
        if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    ]
    assert sorted(rows) == sorted(compose_plain("quickstart")["mechanisms"])


def test_the_live_note_splits_the_cpu_per_deal() -> None:
    """Where a live deal's CPU goes: the services', anvil's and the rest of the machine's share per settled deal,
    the executor's machine CPU per job and its phases, all from the benchmark's numbers."""
    r = {"module": "m:v1", "providers": 8, "cpus": 2, "repeats": 3, "stack": 0.5, "bare": 0.4, "jobs": 40}
    r |= {"settled": 40, "wall": 4.0, "block_s": 0.1, "load": 1.0, "slots": 2, "ceiling": 9.0}
    r["cpu"] = {"services_s": 2.0, "anvil_s": 0.4, "busy_s": 8.0, "executor_busy_per_job_s": 0.2}
    r["phases"] = {"create": 0.025, "start": 0.1}
    note = rt.live_markdown(r).split("\n\n", 1)[1]
    assert "the machine busy 2.00 of 2 cores" in note
    assert "services and executors 50 ms, anvil 10 ms" in note and "other users) 140 ms" in note
    assert "200 ms of machine CPU per job" in note and "create 25, start 100." in note


def test_the_live_main_block_shows_what_make_live_printed(tmp_path: Path) -> None:
    with pytest.raises(rt.Missing, match="make live"):
        rt.live_main_block(tmp_path)
    (tmp_path / "summary.txt").write_text("live run: 30 jobs, 30 deals\n")
    assert rt.live_main_block(tmp_path).endswith("```text\nlive run: 30 jobs, 30 deals\n```")
