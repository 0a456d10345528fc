"""CLI: run one module job on this host, contained, and print its result: `python -m live.executor cowsay:v1 -i
Message=moo`. This is what a resource provider (or a mediator re-running a job) does with a deal's job, without the
market around it. The engine must answer (`python -m live.docker_engine start`) and the images be built
(`python -m live.modules build`)."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing
from pathlib import Path

from live import docker_engine
from live.executor.capabilities import Capabilities
from live.executor.runner import Executor, ExecutorError
from live.modules.registry import DEFAULT_LOCK, ModuleError, load_module, parse_inputs

DEFAULT_WORK = Path(__file__).resolve().parents[2] / ".runtime" / "jobs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m live.executor", description=__doc__.split(".")[0])
    parser.add_argument("module", help="name:tag")
    parser.add_argument("-i", "--input", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK, help="where result directories go")
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK, help="the pinned-images lock file")
    args = parser.parse_args(argv)
    spec = load_module(args.module, parse_inputs(args.input), lock=args.lock)
    host = docker_engine.find_engine(docker_engine.EngineLayout.default())
    if host is None:
        raise docker_engine.EngineError("no Docker engine answers: run `python -m live.docker_engine start`")
    with closing(docker_engine.client(host)) as client:
        result = Executor(client, args.work_dir, Capabilities.detect(args.work_dir)).run(spec)
    sys.stdout.write((result.result_dir / "stdout").read_text(errors="replace"))
    summary = {
        "status": result.status,
        "error": result.error,
        "exit_code": result.exit_code,
        "result_id": result.result_id,
        "result_dir": str(result.result_dir),
        "seconds": round(result.seconds, 3),
    }
    print(json.dumps(summary))
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ModuleError, ExecutorError, docker_engine.EngineError) as exc:
        print(f"live.executor: {exc}", file=sys.stderr)
        sys.exit(2)
