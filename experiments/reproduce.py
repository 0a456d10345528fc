"""Reproduce a published result of the verifiable-computing literature with the twin.

    python -m experiments.reproduce <game>|all [--small] [--readme]
    python -m experiments.reproduce +experiment=repro_<game> [small=true]      (the same, composed by Hydra)

Prints, per claim, the closed form derived from the paper's model (experiments.analysis.analytic), the value the
twin measured and its 99% interval, and whether the interval covers the closed form. Games: inspection, modicum,
dong, repeated (the Prisoner's contract on a fixed pair), repeated_ppo (PPO learning it against grim trigger), truebit,
bribe; presets in configs/reproduce/. `--small`
runs the sizes the tests use; `--readme` (with `all`) rewrites the README's "Reproduced results" table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from experiments.reproduction import GAMES
from experiments.reproduction.common import Result
from experiments.reproduction.table import number, save, write_readme
from mechanisms.config import ConfigError, require

README = Path(__file__).resolve().parents[1] / "README.md"


def reproduce(games: list[str], small: bool = False) -> list[Result]:
    results: list[Result] = []
    for game in games:
        start = time.perf_counter()
        rows = GAMES[game](small)
        for r in rows:
            m = r.measured
            verdict = "agrees" if r.agrees else "DISAGREES"
            print(
                f"{r.game:<10} {r.claim}\n           closed form {number(r.closed_form)}   measured "
                f"{number(m.value)} [{number(m.lo)}, {number(m.hi)}]   {verdict}"
            )
        print(f"{game}: {time.perf_counter() - start:.1f} s", flush=True)
        results += rows
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("game", choices=[*GAMES, "all"])
    parser.add_argument("--small", action="store_true", help="the small sizes the tests run")
    parser.add_argument("--readme", action="store_true", help="rewrite README.md's Reproduced results (with all)")
    args = parser.parse_args(argv)
    if args.readme and (args.game != "all" or args.small):
        parser.error("--readme needs `all` at full size")
    results = reproduce(list(GAMES) if args.game == "all" else [args.game], args.small)
    if args.game == "all" and not args.small:
        save(results)
    if args.readme:
        write_readme(results, README)
    return 0 if all(r.agrees for r in results) else 1


@hydra.main(config_path="../configs", config_name="repro", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    """`+experiment=repro_<game>` (configs/experiment/repro_<game>.yaml) runs that game."""
    try:
        require(cfg.game in GAMES, "game", cfg.game, f"one of {sorted(GAMES)} (+experiment=repro_<game>)")
        require(isinstance(cfg.small, bool), "small", cfg.small, "true or false")
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        sys.exit(2)
    results = reproduce([cfg.game], cfg.small)
    if not all(r.agrees for r in results):
        sys.exit(1)


def hydra_form(argv: list[str]) -> bool:
    """Hydra overrides (key=value) rather than the argparse form."""
    return any("=" in a for a in argv)


if __name__ == "__main__":
    if hydra_form(sys.argv[1:]):
        hydra_main()
    else:
        sys.exit(main())
