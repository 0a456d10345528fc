"""`python -m experiments.quickstart`: the main job, a minute or two on 2 cores (it prints its run time).

The analysis of `experiments.analyze` with the quickstart's settings (configs/quickstart.yaml): every mechanism
preset on a 200-node market, fixed-behaviour runs recorded as a results dataset, deviation and coalition gains,
costs, meta-games, the threshold curve beside the inspection game, the heatmaps, the cartel curve, the report. It
prints the ranked table and links `outputs/quickstart/latest` to the run's directory (the notebooks read it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from experiments.analyze import print_ranked, run_app


def link_latest(out_dir: Path) -> Path:
    """`<parent>/latest` -> out_dir (replaced atomically)."""
    latest = out_dir.parent / "latest"
    tmp = out_dir.parent / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(out_dir.resolve(), target_is_directory=True)
    os.replace(tmp, latest)
    return latest


@hydra.main(config_path="../configs", config_name="quickstart", version_base="1.3")
def main(cfg: DictConfig) -> None:
    start = time.perf_counter()
    table, out_dir = run_app(cfg)
    link_latest(out_dir)
    print()
    print_ranked(table)
    print(
        f"\n{time.perf_counter() - start:.0f} s; report: {out_dir / 'report.md'} "
        f"(self-contained: {out_dir / 'report.html'}); notebooks read {out_dir.parent / 'latest'}"
    )


if __name__ == "__main__":
    main()
