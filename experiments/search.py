"""`python -m experiments.search +experiment=search`: search mechanism parameters with Hydra's Optuna sweeper.

Each trial composes the mechanism with the sampled parameters and returns its objective: cost per correct result
plus `penalty` x how far the worst covered deviation or coalition gain's upper bound is above the tolerance, so a
configuration that lets cheating or collusion pay is never cheaper than a secure one (`invalid_objective` when the
config validation rejects the combination). Trials write `trial.json` and `mechanism.yaml` into their job
directories.

When the sweep ends, `WriteWinner` (a Hydra callback) takes the cheapest secure trial (the cheapest trial when none
is secure, flagged), writes its mechanism in the mechanism-group format (`order` plus one section per mechanism,
every parameter spelt out) to `<sweep dir>/mechanism/<winner.name>.yaml`, measures the `reference` (a preset with
clients checking at `check_rate`) on the same study, writes `search_summary.json` and prints both. The winner loads
unchanged wherever a mechanism option is accepted:

    python -m experiments.simulate hydra.searchpath=[file://<sweep dir>] mechanism=searched
    python -m experiments.analyze searchpath=[<sweep dir>] mechanisms=[lilypad_v2,searched]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from experiments.analysis import configs
from experiments.analysis.assess import assess, make_scenario, parse_study
from experiments.analysis.report import text_table
from mechanisms.config import ConfigError

SHOWN = (
    "secure",
    "max_gain",
    "max_gain_lo",
    "max_gain_hi",
    "worst",
    "cost_per_correct_result",
    "client_cost_per_correct_result",
    "mediation_fees_per_job",
    "collateral_blocks_per_job",
)


def evaluate(cfg: Mapping[str, Any], name: str = "trial") -> dict[str, Any]:
    """Objective and metrics of the config's mechanism (invalid combinations get `invalid_objective`)."""
    try:
        study = parse_study(cfg.get("study"))
        a = assess(make_scenario(cfg, study, name), study)
    except ConfigError as exc:
        return {"objective": float(cfg.get("invalid_objective", 1e6)), "secure": False, "error": str(exc)}
    cost = a.cost["cost_per_correct_result"]
    objective = (
        float(cfg.get("invalid_objective", 1e6))
        if cost is None
        else cost + float(cfg.get("penalty", 100.0)) * a.security["violation"]
    )
    return {"objective": objective, **a.row()}


def majority_threshold(cfg: DictConfig, trial: Any) -> None:
    """Optuna custom search space: a consortium's threshold k drawn from the majorities of its sampled size n."""
    size = int(trial.params.get("mechanism.consortium.size", 3))
    trial.suggest_int("mechanism.consortium.threshold", size // 2 + 1, size)


@hydra.main(config_path="../configs", config_name="search", version_base="1.3")
def main(cfg: DictConfig) -> float:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    plain = OmegaConf.to_container(cfg, resolve=True)
    result = evaluate(plain)
    out_dir.mkdir(parents=True, exist_ok=True)
    job = HydraConfig.get().job
    record = {
        "job": int(job.num) if job.get("num") is not None else 0,
        "overrides": list(HydraConfig.get().overrides.task),
        **result,
    }
    (out_dir / "trial.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    (out_dir / "mechanism.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(plain["mechanism"])))
    status = (
        "invalid: " + result["error"]
        if "error" in result
        else (
            f"{'secure' if result['secure'] else 'INSECURE'}, worst gain {result['max_gain']:+.3f}, "
            f"cost {result['cost_per_correct_result']:.3f}"
        )
    )
    print(f"objective {result['objective']:.4f} ({status}) {' '.join(record['overrides'])}", flush=True)
    return float(result["objective"])


def write_winner(sweep_dir: Path, name: str, mechanism: Mapping[str, Any], note: str) -> Path:
    """`<sweep_dir>/mechanism/<name>.yaml`, in the mechanism-group format (no defaults list: every value spelt
    out), so `hydra.searchpath=[file://<sweep_dir>] mechanism=<name>` loads it as it is."""
    path = sweep_dir / "mechanism" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"description": f"{mechanism.get('description', name)} - {note}", "order": list(mechanism["order"])}
    body |= {k: v for k, v in mechanism.items() if k in body["order"]}
    header = f"# Written by experiments.search: {note}\n"
    path.write_text(header + OmegaConf.to_yaml(OmegaConf.create(body)))
    return path


class WriteWinner(Callback):
    """At the end of the sweep: the winner's mechanism file, the reference's metrics, `search_summary.json`."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        trials = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/trial.json"))]
        if not trials:
            print("search: no trial finished; nothing written", file=sys.stderr)
            return
        secure = [t for t in trials if t.get("secure")]
        best = min(secure or trials, key=lambda t: (t["objective"], t["job"]))
        plain = OmegaConf.to_container(OmegaConf.masked_copy(config, [k for k in config if k != "hydra"]), resolve=True)
        mechanism = OmegaConf.to_container(OmegaConf.load(sweep_dir / str(best["job"]) / "mechanism.yaml"))
        note = (
            f"trial {best['job']} of {len(trials)}, objective {best['objective']:.4f}"
            f"{'' if best.get('secure') else ' (NO SECURE TRIAL: cheapest insecure)'}"
        )
        path = write_winner(sweep_dir, plain["winner"]["name"], mechanism, note)
        ref = plain["reference"]
        ref_cfg = {
            **plain,
            "mechanism": configs.mechanism(ref["mechanism"]),
            "agents": {**plain["agents"], "clients": [{"strategy": "checker", "q": ref["check_rate"]}]},
        }
        reference = evaluate(ref_cfg, f"{ref['mechanism']} (q={ref['check_rate']})")
        summary = {
            "winner": {"name": plain["winner"]["name"], "file": str(path), **best},
            "reference": {"name": reference.get("mechanism"), **reference},
            "trials": len(trials),
            "secure_trials": len(secure),
        }
        (sweep_dir / "search_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        rows = [
            {**best, "mechanism": f"{plain['winner']['name']} (trial {best['job']})"},
            {**reference, "mechanism": summary["reference"]["name"]},
        ]
        print(f"\nsearch: {len(secure)} of {len(trials)} trials secure; winner vs reference")
        print(text_table(pd.DataFrame(rows).reindex(columns=["mechanism", *SHOWN])))
        print(f"winner parameters: {' '.join(o for o in best['overrides'] if o.startswith('mechanism.'))}")
        print(
            f"written {path}\nload it: python -m experiments.simulate hydra.searchpath=[file://{sweep_dir.resolve()}]"
            f" mechanism={plain['winner']['name']}"
        )


if __name__ == "__main__":
    main()
