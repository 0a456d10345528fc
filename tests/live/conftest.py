"""Fixtures for the live tests: a real Docker engine, the example modules built into it, an executor.

The engine is the one that answers ($DOCKER_HOST, the project's own, the system's) or the project's own started
under `.runtime/docker` for this session and stopped at its end. Tests that use it carry
`pytest.mark.xdist_group("docker")`, so `pytest -n 2 --dist loadgroup` runs them on one worker. Without dockerd
(not installed, not root) they skip and say why, except under CI (`CI` set), where they fail: CI must run them.
The images' lock file is a session temporary file, so the tests never rewrite the user's lock.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from functools import partial
from pathlib import Path

import docker
import pytest

from live import docker_engine
from live.executor import Capabilities, Executor
from live.modules import JobSpec, load_module
from live.modules.build import build

LoadModule = Callable[..., JobSpec]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    """The host of a Docker engine that answers (started for the session when none did)."""
    with ExitStack() as stack:
        try:
            host = stack.enter_context(docker_engine.engine())
        except docker_engine.EngineError as exc:
            if _in_ci():
                pytest.fail(f"CI must run the live tests, but no Docker engine: {exc}")
            pytest.skip(f"no Docker engine could be found or started: {exc}")
        yield host


@pytest.fixture(scope="session")
def docker_client(docker_host: str) -> Iterator[docker.DockerClient]:
    with closing(docker_engine.client(docker_host)) as client:
        yield client


@pytest.fixture(scope="session")
def images_lock(docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example modules built into the engine; the lock file that pins them."""
    lock = tmp_path_factory.mktemp("modules") / "images.json"
    build(docker_client, lock=lock)
    return lock


@pytest.fixture(scope="session")
def load(images_lock: Path) -> LoadModule:
    """`load(ref, inputs=None)`: a module rendered and validated against the session's built images."""
    return partial(load_module, lock=images_lock)


@pytest.fixture(scope="session")
def capabilities(tmp_path_factory: pytest.TempPathFactory) -> Capabilities:
    """This host's capabilities, as a resource provider would advertise them."""
    return Capabilities.detect(tmp_path_factory.mktemp("caps"))


@pytest.fixture
def executor(docker_client: docker.DockerClient, capabilities: Capabilities, tmp_path: Path) -> Executor:
    return Executor(docker_client, tmp_path / "jobs", capabilities)
