"""CLI: `python -m live.modules build | list | render name:tag -i Key=Value ...`."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing
from pathlib import Path

from live import docker_engine
from live.modules.build import build
from live.modules.registry import DEFAULT_LOCK, ModuleError, available, load_module, parse_inputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m live.modules")
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK, help="the pinned-images lock file")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the example modules' images and write their pinned digests")
    b.add_argument("modules", nargs="*", help="name:tag (default: every module that ships image files)")
    sub.add_parser("list", help="list the available modules")
    r = sub.add_parser("render", help="render and validate a module, print its job spec")
    r.add_argument("module")
    r.add_argument("-i", "--input", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(available()))
        return 0
    if args.command == "render":
        spec = load_module(args.module, parse_inputs(args.input), lock=args.lock)
        print(json.dumps(json.loads(spec.rendered), indent=2))
        return 0
    host = docker_engine.find_engine(docker_engine.EngineLayout.default())
    if host is None:
        raise docker_engine.EngineError("no Docker engine answers: run `python -m live.docker_engine start`")
    with closing(docker_engine.client(host)) as client:
        for ref, pinned in build(client, args.modules or None, args.lock).items():
            print(f"{ref:24s} {pinned}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    """`main`, with a refused module or a missing engine reported as one line and exit status 2."""
    try:
        return main(argv)
    except (ModuleError, docker_engine.EngineError) as exc:
        print(f"live.modules: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
