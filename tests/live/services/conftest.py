"""A live network per test: anvil (the pinned npm binary), the session's Docker engine and built modules, and the
four services on loopback. `run_net(overrides, body)` composes the `live` config with overrides, starts the chain
and the services, runs the async `body(net)` and always takes everything down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import docker
import pytest

from experiments.analysis.configs import compose_plain
from live.chain.node import anvil_available
from live.run_job import ONE
from live.services.network import Network

Body = Callable[[Network], Awaitable[Any]]
SMALL = ONE  # the smallest network: one of each role, as `live.run_job` runs


@pytest.fixture
def run_net(docker_client: docker.DockerClient, images_lock: Path, tmp_path: Path) -> Callable[..., Any]:
    if not anvil_available():
        pytest.skip("anvil is not installed (npm ci)")

    def run(overrides: Sequence[str], body: Body, start: Sequence[str] | None = None, **kw: Any) -> Any:
        cfg = compose_plain("live", [*SMALL, *overrides])

        async def main() -> Any:
            net = Network(cfg, tmp_path / "state", docker_client, images_lock, **kw)
            net.start_chain()
            try:
                await net.start_services(start)
                return await body(net)
            finally:
                await net.stop()

        return asyncio.run(main())

    return run
