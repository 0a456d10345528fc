"""The quickstart's report: it renders, every figure it shows exists and is a real picture, and the ranked table
is printed and saved. Runs the quickstart entry point on the smoke-test-sized analysis (configs/experiment/
analysis_tiny.yaml)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from experiments.analysis.configs import compose_plain

REPO = Path(__file__).resolve().parents[2]
FIGURES = (
    "frontier.png",
    "threshold.png",
    "heatmaps.png",
    "cartel.png",
    "phase_lilypad_v2.png",
    "alpharank_dong_counter_collusion.png",
)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("quickstart") / "run"
    env = {**os.environ, "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR", str(REPO / ".runtime" / "mpl"))}
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.quickstart", "+experiment=analysis_tiny", f"hydra.run.dir={out}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_the_ranked_table_is_printed_and_saved(study: tuple[Path, str]) -> None:
    out, stdout = study
    ranked = pd.read_parquet(out / "ranked.parquet")
    assert sorted(ranked["mechanism"]) == ["dong_counter_collusion", "lilypad_v2"]
    assert ranked["rank"].tolist() == [1, 2]
    for col in (
        "secure",
        "max_gain",
        "max_gain_lo",
        "max_gain_hi",
        "cost_per_correct_result",
        "extra_executions_per_job",
        "mediation_fees_per_job",
        "collateral_blocks_per_job",
        "client_cost_per_correct_result",
        "mixed_fake_accepted_per_job",
        "honest_basin",
    ):
        assert ranked[col].notna().all(), col
    table = stdout[stdout.index("rank ") :]
    assert "lilypad_v2" in table and "dong_counter_collusion" in table and "cost_per_correct_result" in table
    assert (out.parent / "latest").resolve() == out.resolve()


def test_the_report_renders_with_its_figures(study: tuple[Path, str]) -> None:
    out, _ = study
    md = (out / "report.md").read_text()
    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", md)
    assert set(FIGURES) <= set(linked)
    for name in linked:
        path = out / name
        assert path.stat().st_size > 5_000, name
        pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 50, name  # a drawing, not a blank canvas
    assert "## Ranked mechanisms" in md and "| 1 | " in md and "lower bound" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(linked)  # self-contained: every figure embedded
    assert "<table>" in html


def test_the_study_files_the_notebooks_read(study: tuple[Path, str]) -> None:
    out, _ = study
    for name in (
        "gains.parquet",
        "threshold.parquet",
        "heatmap.parquet",
        "cartel.parquet",
        "metagame/lilypad_v2.json",
        "metagame/lilypad_v2_alpharank.parquet",
    ):
        assert (out / name).is_file(), name
    curve = pd.read_parquet(out / "threshold.parquet")
    assert curve["threshold"].eq(0.2).all() and curve["analytic"].notna().all()
    gains = pd.read_parquet(out / "gains.parquet")
    assert {"deviation", "coalition"} == set(gains["kind"]) and (gains["ci_lo"] <= gains["ci_hi"]).all()


def test_the_quickstart_config_covers_every_preset() -> None:
    cfg = compose_plain("quickstart")
    presets = sorted(p.stem for p in (REPO / "configs" / "mechanism").glob("*.yaml"))
    assert sorted(cfg["mechanisms"]) == presets
    assert cfg["market"]["n_nodes"] == 200 and cfg["study"]["rounds"] == 20
