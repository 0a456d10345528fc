"""Build every module's image into an engine and record the pinned references in the lock file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import docker

from live.modules.images import load, module_archive
from live.modules.registry import DEFAULT_LOCK, available, resolve, write_lock


def build(client: docker.DockerClient, refs: Iterable[str] | None = None, lock: Path = DEFAULT_LOCK) -> dict[str, str]:
    """Build (or find, the build being reproducible) the images of `refs` (default: every module that ships
    image files) in the engine behind `client`; return and record `name:tag -> twin/name:tag@sha256:<id>`."""
    modules = [resolve(r) for r in (refs if refs is not None else available())]
    pinned = {}
    for m in modules:
        if m.has_image:
            image = module_archive(m.name, m.tag, m.path)
            pinned[m.ref] = f"{image.repo_tag}@{load(client, image)}"
    write_lock(pinned, lock)
    return pinned
