"""`python -m experiments.analyze`: rank mechanisms by security and cost and write a self-contained report.

For every mechanism in `mechanisms` (presets, or searched mechanisms found on `searchpath`): deviation gains per
role and coalition gains over the honest profile (lower bounds, intervals over seeds), the cost of the mechanism,
fixed-behaviour runs of the mixed population (a results dataset), and the empirical meta-game (payoff tables,
alpha-rank, the honest profile's replicator basin). Then the threshold curve beside the inspection game, the
two-parameter heatmaps and the cartel-size curve. Everything lands in the output directory:

    report.md, report.html          the report (the HTML embeds its figures)
    *.png                           the figures
    ranked.parquet, gains.parquet   the ranked table; every deviation and coalition gain
    threshold.parquet, heatmap.parquet, cartel.parquet   the curves behind the figures
    metagame/<mechanism>.json       payoff tables (PayoffTable.load); <mechanism>_alpharank.parquet
    results/                        the fixed-behaviour runs (experiments.results dataset, sweep=analysis)

`run_analysis(cfg, out_dir)` is the Hydra-free core (tests, notebooks, quickstart).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from experiments.analysis import configs, plots
from experiments.analysis.assess import StudyConfig, assess, make_scenario, parse_study, rank
from experiments.analysis.curves import cartel_curve, gain_curve, gain_grid
from experiments.analysis.dataset import per_choice, record
from experiments.analysis.library import ROLES
from experiments.analysis.metagame import Basin, alpha_rank, honest_basin, payoff_table
from experiments.analysis.report import Report, text_table
from experiments.analysis.runner import Scenario
from mechanisms.config import ConfigError, require
from sim import metrics

SWEEP = "analysis"
#: Columns of the printed ranked table (the CSV has every column).
SHOWN = (
    "rank",
    "mechanism",
    "secure",
    "max_gain",
    "max_gain_lo",
    "max_gain_hi",
    "worst",
    "decisive",
    "cost_per_correct_result",
    "client_cost_per_correct_result",
    "extra_executions_per_job",
    "mediation_fees_per_job",
    "collateral_blocks_per_job",
    "mixed_fake_accepted_per_job",
    "honest_basin",
    "honest_basin_free",
)
METRIC_DOC = (
    "Definitions. Gains are utility per member and round over the honest profile (wealth change; a client also "
    "values each correct result at value_multiple x its job cost), measured on common random numbers and given "
    "with a Student-t interval over seeds; the best entry of a finite library is a lower bound on a best "
    "response's gain. max_gain: the worst gain among the covered deviations (roles in the security rule) and "
    "coalitions; secure: no covered gain's upper bound is above the tolerance (decisive: the entry with the "
    "highest upper bound). Costs are measured in the honest "
    f"profile: {metrics.definition(metrics.EXTRA_EXECUTIONS)}; mediation fees, collateral x blocks "
    "(each escrow times the deadlines it spans, stakes for whole rounds) per job, client cost per correct result, "
    "and cost per correct result = (client outlay + capital_rate x collateral blocks) / correct results. "
    f"mixed_{metrics.definition('fake_accepted_per_job')}, with the fixed mixed population. honest_basin: share "
    "of random starting mixes from which replicator dynamics on the meta-game end with no cheating nodes, roles "
    "outside the security rule (clients' committed check rate) keeping the profile's strategy; honest_basin_free: "
    "the same with every role free to switch (clients may stop checking: the verifier's dilemma)."
)


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.merge(OmegaConf.create(dict(base)), OmegaConf.create(dict(overlay))))


def figure_scenario(
    spec: Mapping[str, Any], base: Mapping[str, Any], study: StudyConfig, searchpath: list[str]
) -> Scenario:
    """A figure's scenario: named group options (or the analysis's own sections), then the overlay."""
    sections = {}
    for key in ("market", "mechanism", "agents"):
        option = spec.get(key)
        if option is None:
            require(key in base, f"{key}", None, "a group option for this figure (the analysis has none)")
            sections[key] = base[key]
        else:
            sections[key] = configs.mechanism(option, searchpath) if key == "mechanism" else configs.group(key, option)
    return make_scenario(deep_merge(sections, spec.get("overlay") or {}), study)


@dataclass
class Metagame:
    """One mechanism's meta-game results, for the ranked table and the report."""

    name: str
    ranking: pd.DataFrame  # alpha-rank
    basin: Basin  # committed roles fixed
    basin_free: Basin  # every role free
    portrait: Path
    bars: Path


def assess_all(
    mechs: Mapping[str, Mapping[str, Any]], base: Mapping[str, Any], study: StudyConfig, log: Callable[[str], None]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Incentives and costs of every mechanism: rows of the ranked table (indexed by mechanism) and every gain."""
    rows, gains = [], []
    for name, mech in mechs.items():
        a = assess(make_scenario({**base, "mechanism": mech}, study, name), study)
        rows.append(a.row())
        gains.append(a.gains_table())
        log(
            f"  {name}: worst gain {a.security['max_gain']:+.3f} ({a.security['worst']}), "
            f"cost per correct result {a.cost['cost_per_correct_result'] or float('nan'):.2f}"
        )
    return pd.DataFrame(rows).set_index("mechanism"), pd.concat(gains, ignore_index=True)


def mixed_runs(
    mechs: Mapping[str, Mapping[str, Any]], base: Mapping[str, Any], spec: Mapping[str, Any], rounds: int, out: Path
) -> pd.DataFrame:
    """Fixed-behaviour runs of the mixed population per mechanism and seed, recorded as a results dataset; the
    mean fake results accepted per job, per mechanism."""
    option = spec.get("agents", "default")
    agents = configs.group("agents", option)
    runs = [
        (
            {"mechanism": name, "agents": option},
            {
                "seed": seed,
                "rounds": spec.get("rounds", rounds),
                "market": base["market"],
                "mechanism": mech,
                "agents": agents,
            },
        )
        for name, mech in mechs.items()
        for seed in spec.get("seeds", [0, 1])
    ]
    return per_choice(record(runs, out / "results", SWEEP, out / "runs"), "mechanism", ["fake_accepted_per_job"])


def metagames(
    names: list[str],
    mechs: Mapping[str, Mapping[str, Any]],
    base: Mapping[str, Any],
    study: StudyConfig,
    out: Path,
    log: Callable[[str], None],
) -> list[Metagame]:
    """Payoff tables, alpha-rank, replicator basins and figures of the chosen mechanisms' meta-games."""
    mg = study.metagame
    strategies = mg.behaviours()
    (out / "metagame").mkdir(exist_ok=True)
    fixed = {r: [0] for r in ROLES if r not in study.security.roles}  # committed roles keep the profile's strategy
    results = []
    for name in names:
        scn = make_scenario({**base, "mechanism": mechs[name]}, study, name)
        if mg.rounds is not None:
            scn = replace(scn, rounds=mg.rounds)
        table = payoff_table(scn, strategies, mg.seeds)
        table.save(out / "metagame" / f"{name}.json")
        ar = alpha_rank(table, mg.alpha, mg.population)
        ar.to_parquet(out / "metagame" / f"{name}_alpharank.parquet", index=False)
        result = Metagame(
            name,
            ar,
            honest_basin(table.subgame(fixed), mg),
            honest_basin(table, mg),
            plots.phase_portrait(
                table.subgame(mg.portrait_keep(table)), out / f"phase_{name}.png", f"{name}: replicator dynamics"
            ),
            plots.alpharank_bars(ar, out / f"alpharank_{name}.png", title=f"{name}: alpha-rank"),
        )
        results.append(result)
        log(
            f"  {name}: meta-game top profile {ar['profile'][0]} ({ar['mass'][0]:.2f}), honest basin "
            f"{result.basin.share:.2f} (every role free: {result.basin_free.share:.2f})"
        )
    return results


def curves(
    cfg: Mapping[str, Any], base: Mapping[str, Any], study: StudyConfig, searchpath: list[str], out: Path
) -> dict[str, pd.DataFrame]:
    """The threshold curve, the two-parameter grid and the cartel curve (tables saved beside the report)."""
    tc, hm, cc = cfg["threshold_curve"], cfg["heatmap"], cfg["cartel_curve"]
    mixed = configs.group("agents", hm["mixed_agents"]) if hm.get("mixed_agents") else None
    tables = {
        "threshold": gain_curve(figure_scenario(tc, base, study, searchpath), tc["path"], tc["values"], study),
        "heatmap": gain_grid(
            figure_scenario(hm, base, study, searchpath),
            (hm["x"]["path"], hm["x"]["values"]),
            (hm["y"]["path"], hm["y"]["values"]),
            study,
            mixed,
        ),
        "cartel": cartel_curve(figure_scenario(cc, base, study, searchpath), cc["member"], cc["shares"], study),
    }
    for name, df in tables.items():
        df.to_parquet(out / f"{name}.parquet", index=False)
    return tables


def write_report(
    cfg: Mapping[str, Any],
    study: StudyConfig,
    table: pd.DataFrame,
    gains: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame],
    games: list[Metagame],
    out: Path,
) -> tuple[Path, Path]:
    """Figures and the report (markdown + self-contained HTML)."""
    hm, cc = cfg["heatmap"], cfg["cartel_curve"]
    figs = {
        "frontier": plots.frontier(table, out / "frontier.png"),
        "threshold": plots.threshold_curve(tables["threshold"], out / "threshold.png", cfg["threshold_curve"]["path"]),
        "heatmap": plots.heatmaps(tables["heatmap"], out / "heatmaps.png", hm["x"]["path"], hm["y"]["path"]),
        "cartel": plots.cartel_curve(tables["cartel"], out / "cartel.png", f"When do cartels pay? ({cc['mechanism']})"),
    }
    report = Report(str(cfg.get("title", "Mechanisms")))
    report.text(
        f"{len(table)} mechanisms on a market of {(cfg.get('market') or {}).get('n_nodes', '?')} nodes, "
        f"{study.rounds} rounds, seeds {list(study.seeds)}, deviators {study.deviator_share:.0%} of a role; "
        f"security rule: {list(study.security.roles)} deviations"
        f"{' and coalitions' if study.security.coalitions else ''}."
    )
    report.heading("Ranked mechanisms")
    report.table(table[[c for c in SHOWN if c in table]])
    report.text(METRIC_DOC)
    report.figure(figs["frontier"], "Cost vs security across mechanisms (error bars: interval of the worst gain)")
    report.heading("Deviation and coalition gains (lower bounds)")
    report.table(gains[["mechanism", "kind", "role", "name", "members", "gain", "ci_lo", "ci_hi"]])
    report.heading("The inspection game: measured vs analytic")
    report.text(
        "Best node deviation gain against the check probability, beside the closed-form gain of always "
        "cheating, r (c - q (m + f) p), and its threshold q* = c / ((m + f) p)."
    )
    report.figure(figs["threshold"], "Threshold curve")
    report.table(tables["threshold"])
    report.heading("Two parameters")
    report.figure(
        figs["heatmap"],
        f"{hm['x']['path']} x {hm['y']['path']}: fake results accepted (mixed population) and best node deviation gain",
    )
    report.heading("Cartels")
    report.figure(figs["cartel"], "Gain per cartel member against cartel size")
    report.table(tables["cartel"])
    report.heading("Meta-games")
    report.text(
        "Pure profiles of the library per role, payoff per agent and round; alpha-rank (OpenSpiel) mass and "
        "the replicator dynamics' end points from uniform random starts."
    )
    for g in games:
        report.text(
            f"{g.name}: honest basin {g.basin.share:.2f} of {g.basin.samples} starts with committed roles "
            f"fixed, {g.basin_free.share:.2f} with every role free. Alpha-rank, top profiles:"
        )
        report.table(g.ranking.head(5)[["profile", "mass"]])
        report.text(
            "Replicator end profiles (committed roles fixed): most played strategy per population, its mean "
            "share there, and the share of starts ending so:"
        )
        report.table(g.basin.attractors)
        report.figure(g.portrait, f"{g.name}: replicator phase portrait")
        report.figure(g.bars, f"{g.name}: alpha-rank")
    return report.write(out)


def run_analysis(
    cfg: Mapping[str, Any], out_dir: str | os.PathLike[str], log: Callable[[str], None] = print
) -> pd.DataFrame:
    """Measure, draw and report (module docstring); returns the ranked table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    study = parse_study(cfg.get("study"))
    searchpath = list(cfg.get("searchpath") or [])
    base = {"market": cfg.get("market") or {}, "agents": cfg.get("agents") or {}}
    names = list(cfg["mechanisms"])
    require(len(names) > 0, "mechanisms", names, "at least one mechanism")
    mechs = {name: configs.mechanism(name, searchpath) for name in names}

    ranked, gains = assess_all(mechs, base, study, log)
    mixed = mixed_runs(mechs, base, cfg.get("mixed_runs") or {}, study.rounds, out)
    ranked["mixed_fake_accepted_per_job"] = mixed["fake_accepted_per_job"].reindex(ranked.index)
    chosen = cfg.get("metagame_mechanisms")
    games = metagames(names if chosen is None else list(chosen), mechs, base, study, out, log)
    ranked["honest_basin"] = pd.Series({g.name: g.basin.share for g in games}, dtype=float)
    ranked["honest_basin_free"] = pd.Series({g.name: g.basin_free.share for g in games}, dtype=float)
    table = rank(ranked.reset_index().to_dict("records"))
    table.to_parquet(out / "ranked.parquet", index=False)
    gains.to_parquet(out / "gains.parquet", index=False)

    tables = curves(cfg, base, study, searchpath, out)
    md, page = write_report(cfg, study, table, gains, tables, games, out)
    (out / "analysis.json").write_text(
        json.dumps(
            {
                "mechanisms": names,
                "seconds": time.perf_counter() - start,
                "report": md.name,
                "html": page.name,
                "figures": sorted(p.name for p in out.glob("*.png")),
            },
            indent=2,
        )
    )
    return table


def print_ranked(table: pd.DataFrame) -> None:
    print(text_table(table[[c for c in SHOWN if c in table]]))


def run_app(cfg: DictConfig) -> tuple[pd.DataFrame, Path]:
    """The body the analysis apps share: run into Hydra's output directory; a config error exits 2 with its message."""
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        return run_analysis(OmegaConf.to_container(cfg, resolve=True), out_dir), out_dir
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        sys.exit(2)


@hydra.main(config_path="../configs", config_name="analyze", version_base="1.3")
def main(cfg: DictConfig) -> None:
    table, out_dir = run_app(cfg)
    print_ranked(table)
    print(f"report: {out_dir / 'report.md'} (self-contained: {out_dir / 'report.html'})")


if __name__ == "__main__":
    main()
