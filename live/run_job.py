"""`python -m live.run_job <name:tag> [-i Key=Value ...] [key=value ...]`: run one module job through the live stack.

The module and inputs are validated first (a bad module or input is an error before anything starts or is paid).
Then a local network (anvil, one solver, one resource provider, one mediator, this job creator; `configs/live.yaml`
with the given overrides) runs the job as a deal on chain; it prints the deal's terminal state, whether the fetched
result matched the posted hash, the result id and the job's stdout.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from contextlib import closing
from pathlib import Path

from experiments.analysis.configs import compose_plain
from live import docker_engine
from live.modules import ModuleError, load_module, parse_inputs
from live.modules.build import build
from live.modules.registry import DEFAULT_LOCK
from live.services.network import Network

ONE = [
    "market.n_clients=1",
    "market.n_nodes=1",
    "market.n_mediators=1",
    "network.providers=[{strategy: honest}]",
    "network.creators=[{strategy: checker, q: 0.0}]",
    "network.mediators=[{strategy: honest}]",
    "block_s=0.05",
]


def split_args(argv: list[str]) -> tuple[str, list[str], list[str]]:
    """(module ref, -i pairs, Hydra overrides)."""
    if not argv or argv[0].startswith("-"):
        raise ModuleError("module is missing: allowed python -m live.run_job <name:tag> [-i Key=Value ...]")
    ref, pairs, overrides, rest = argv[0], [], [], argv[1:]
    while rest:
        a = rest.pop(0)
        if a in ("-i", "--input"):
            if not rest:
                raise ModuleError("-i needs a Key=Value pair")
            pairs.append(rest.pop(0))
        else:
            overrides.append(a)
    return ref, pairs, overrides


async def _run(cfg: dict, state: Path, client: object, ref: str, inputs: dict[str, str]) -> dict:
    net = Network(cfg, state, client, DEFAULT_LOCK)  # type: ignore[arg-type]
    net.start_chain()
    try:
        await net.start_services()
        return await net.creators[0].run_job(ref, inputs, float(cfg["timeout_s"]))
    finally:
        await net.stop()


def main(argv: list[str]) -> int:
    try:
        ref, pairs, overrides = split_args(argv)
        inputs = parse_inputs(pairs)
        with docker_engine.engine() as host, closing(docker_engine.client(host)) as client:
            build(client, [ref], lock=DEFAULT_LOCK)
            load_module(ref, inputs)  # refused here, before any chain or deposit
            cfg = compose_plain("live", [*ONE, *overrides])
            with tempfile.TemporaryDirectory() as tmp:
                rec = asyncio.run(_run(cfg, Path(tmp), client, ref, inputs))
                result = Path(tmp) / "creator0-results" / rec["deal_id"] / "stdout"
                stdout = result.read_text() if result.is_file() else ""
    except ModuleError as exc:
        print(f"live.run_job: {exc}", file=sys.stderr)
        return 2
    print(f"deal {rec['deal_id'][:16]}...: {rec['state']} (result verified: {rec['verified']})")
    print(stdout, end="")
    return 0 if rec["state"] in ("ResultsAccepted", "MediationAccepted") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
