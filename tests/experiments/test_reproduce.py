"""Every reproduced result, at small size: the closed form lies within the twin's measured interval. Plus the
README table's generator and the CLI's errors."""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from experiments import reproduce
from experiments.reproduction import GAMES
from experiments.reproduction.common import CONFIGS, Result, load
from experiments.reproduction.estimate import Estimate, exact
from experiments.reproduction.table import END, START, markdown, write_readme
from mechanisms.config import ConfigError

README = Path(__file__).resolve().parents[2] / "README.md"


@functools.cache
def small(game: str) -> list[Result]:
    """The game's results at small size, measured once per test session (repeated_ppo trains PPO twice)."""
    return GAMES[game](True)


@pytest.mark.parametrize("game", list(GAMES))
def test_closed_form_within_the_measured_interval(game: str) -> None:
    results = small(game)
    assert results
    for r in results:
        assert r.measured.lo <= r.measured.value <= r.measured.hi, r.claim
        assert r.agrees, f"{r.claim}: closed form {r.closed_form} outside {r.measured}"


def test_the_readme_table_lists_every_claim() -> None:
    """The README's table is the generator's output for the same claims (its numbers come from the full run)."""
    text = README.read_text()
    table = text.split(START)[1].split(END)[0]
    claims = [line.split(" | ")[1] for line in table.strip().splitlines()[2:]]
    expected = [r.claim for game in GAMES for r in small(game)]
    assert claims == expected


def test_write_readme_replaces_only_the_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{START}\nold\n{END}\nafter\n")
    rows = [Result("g", "Paper", "a claim", 0.2, Estimate(0.21, 0.19, 0.23)), Result("g", "P", "b", 1, exact(1))]
    write_readme(rows, readme)
    assert readme.read_text() == f"before\n{START}\n{markdown(rows)}\n{END}\nafter\n"
    assert "| Paper | a claim | 0.2 | 0.21 [0.19, 0.23] |" in markdown(rows)
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="must hold"):
        write_readme(rows, readme)


def test_unknown_game_and_bad_flags() -> None:
    with pytest.raises(ConfigError, match="game='nope' is invalid"):
        load("nope")
    with pytest.raises(SystemExit):
        reproduce.main(["inspection", "--readme"])


@pytest.mark.parametrize("game", list(GAMES))
def test_every_game_composes_as_a_hydra_experiment(game: str) -> None:
    """`+experiment=repro_<game>` on configs/repro.yaml names the game (the README's Hydra form)."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("repro", overrides=[f"+experiment=repro_{game}", "small=true"])
    assert cfg.game == game and cfg.small is True


def test_the_hydra_form_runs_a_game_and_refuses_bad_input() -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "experiments.reproduce", *args, "hydra.run.dir=" + tempfile.mkdtemp()]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=README.parent, timeout=300)

    done = run("+experiment=repro_dong", "small=true")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("agrees") == len(small("dong"))
    bad = run("game=nope")
    assert bad.returncode == 2 and "game='nope' is invalid" in bad.stderr


def test_a_side_claim_needs_the_whole_interval_on_the_forms_side() -> None:
    def agrees(form: float, lo: float, hi: float) -> bool:
        return Result("g", "P", "c", form, Estimate((lo + hi) / 2, lo, hi), side=0.5).agrees

    assert agrees(1.0, 0.6, 0.9) and not agrees(1.0, 0.4, 0.9) and not agrees(1.0, 0.1, 0.3)
    assert agrees(0.0, 0.0, 0.4) and not agrees(0.0, 0.2, 0.6)
