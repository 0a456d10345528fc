"""Module images built locally and reproducibly, without a registry or a Dockerfile.

No registry is reachable, so an image cannot be pinned by a registry's manifest digest. Instead the image is
assembled here as a `docker load` archive whose every byte is fixed (sorted tar entries, zero timestamps, root
owner, a fixed creation date): its image id, the sha256 of its config, then depends only on its content (the static
busybox and the module's files). That id is the digest a module pins (`name:tag@sha256:<id>`): the executor runs
the image by that id, so a node cannot run different content under the same name, and a mediator who builds the
same module on another machine with the same busybox gets the same id.

An image is two layers: a base of Debian's static busybox with a link for every applet (shared by all modules), and
the module's own `image/` directory under `/module`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import struct
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import docker

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
JOB_USER = (1000, 1000)  # uid, gid: the non-root user jobs run as
EPOCH = "1970-01-01T00:00:00Z"
REPO_PREFIX = "twin"
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


def is_static_elf(path: Path) -> bool:
    """An ELF executable with no program interpreter (PT_INTERP), i.e. runnable in an empty image."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return False
        bits64, end = head[4] == 2, "<" if head[5] == 1 else ">"
        phoff, phentsize, phnum = (
            struct.unpack_from(end + "Q", head, 32)[0] if bits64 else struct.unpack_from(end + "I", head, 28)[0],
            *struct.unpack_from(end + "HH", head, 54 if bits64 else 42),
        )
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from(end + "I", table, i * phentsize)[0] != 3 for i in range(phnum))


def find_static_busybox() -> Path:
    """$LIVE_BUSYBOX, or the busybox that Debian's busybox-static installs; FileNotFoundError if none is static."""
    paths = [os.environ["LIVE_BUSYBOX"]] if os.environ.get("LIVE_BUSYBOX") else list(BUSYBOX_CANDIDATES)
    for p in map(Path, paths):
        if p.is_file() and is_static_elf(p):
            return p
    raise FileNotFoundError(
        f"no statically linked busybox at {paths}: install Debian's busybox-static (`make setup` does, as root)"
    )


def _tar(entries: Iterable[tuple[str, bytes | None, int, str | None, tuple[int, int]]]) -> bytes:
    """A tar whose bytes depend only on its entries (name, data or None for a directory, mode, link, owner)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data, mode, link, (uid, gid) in sorted(entries, key=lambda e: e[0]):
            info = tarfile.TarInfo(name)
            info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = mode, 0, uid, gid, "", ""
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _dirs(paths: Iterable[str]) -> set[str]:
    out = set()
    for p in paths:
        parts = p.split("/")[:-1]
        out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return out


@cache
def base_layer(busybox: Path) -> bytes:
    """busybox, a link per applet, /tmp, /outputs, and a passwd entry for the job user."""
    applets = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    root = (0, 0)
    passwd = f"root:x:0:0:root:/root:/bin/sh\njob:x:{JOB_USER[0]}:{JOB_USER[1]}:job:/tmp:/bin/sh\n".encode()
    group = f"root:x:0:\njob:x:{JOB_USER[1]}:\n".encode()
    files = {
        "bin/busybox": (busybox.read_bytes(), 0o755, None),
        "etc/passwd": (passwd, 0o644, None),
        "etc/group": (group, 0o644, None),
    }
    for applet in applets:
        if applet != "bin/busybox":
            files[applet] = (b"", 0o777, "/bin/busybox")
    entries = [(name, data, mode, link, root) for name, (data, mode, link) in files.items()]
    entries += [(d, None, 0o755, None, root) for d in _dirs(files) | {"usr/sbin", "sbin", "usr/bin", "module"}]
    entries += [("tmp", None, 0o1777, None, root), ("outputs", None, 0o755, None, JOB_USER)]
    return _tar(entries)


def module_layer(image_dir: Path) -> bytes:
    """The module's `image/` directory under /module (scripts executable, everything owned by root)."""
    files = sorted(p for p in image_dir.rglob("*") if p.is_file())
    rel = [f"module/{p.relative_to(image_dir).as_posix()}" for p in files]
    entries = [
        (r, p.read_bytes(), 0o755 if os.access(p, os.X_OK) or p.suffix == ".sh" else 0o644, None, (0, 0))
        for r, p in zip(rel, files, strict=True)
    ]
    entries += [(d, None, 0o755, None, (0, 0)) for d in _dirs(rel) - {"module"}]
    return _tar(entries)


@dataclass(frozen=True)
class ImageArchive:
    """A `docker load` archive and the image id loading it yields (sha256 of its config)."""

    repo_tag: str
    data: bytes
    image_id: str  # sha256:<hex>


def archive(repo_tag: str, layers: list[bytes]) -> ImageArchive:
    """The archive of an image made of `layers` (bottom first), tagged `repo_tag`."""
    diff_ids = [hashlib.sha256(layer).hexdigest() for layer in layers]
    config = {
        "architecture": ARCH.get(platform.machine(), platform.machine()),
        "os": "linux",
        "created": EPOCH,
        "config": {
            "User": f"{JOB_USER[0]}:{JOB_USER[1]}",
            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
            "Cmd": ["/bin/sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [
            {"created": EPOCH, "created_by": "live.modules.images: busybox base"},
            {"created": EPOCH, "created_by": "live.modules.images: module files"},
        ][: len(layers)],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_id = hashlib.sha256(config_bytes).hexdigest()
    manifest = [{"Config": f"{config_id}.json", "RepoTags": [repo_tag], "Layers": [f"{d}/layer.tar" for d in diff_ids]}]
    entries = [
        (f"{config_id}.json", config_bytes, 0o644, None, (0, 0)),
        ("manifest.json", json.dumps(manifest).encode(), 0o644, None, (0, 0)),
    ]
    entries += [(f"{d}/layer.tar", layer, 0o644, None, (0, 0)) for d, layer in zip(diff_ids, layers, strict=True)]
    entries += [(d, None, 0o755, None, (0, 0)) for d in diff_ids]
    return ImageArchive(repo_tag, _tar(entries), f"sha256:{config_id}")


def module_archive(name: str, tag: str, module_dir: Path, busybox: Path | None = None) -> ImageArchive:
    """The image of module `name:tag` from its directory's `image/` files."""
    return archive(
        f"{REPO_PREFIX}/{name}:{tag}",
        [base_layer(busybox or find_static_busybox()), module_layer(module_dir / "image")],
    )


def load(client: docker.DockerClient, image: ImageArchive) -> str:
    """Load `image` into the engine unless an image with its id is there already; (re)tag it; return the id."""
    try:
        found = client.images.get(image.image_id)
    except docker.errors.ImageNotFound:
        found = None
    if found is None:
        loaded = client.images.load(image.data)
        found = next((i for i in loaded if i.id == image.image_id), None)
        if found is None:
            raise RuntimeError(f"loading {image.repo_tag} gave {[i.id for i in loaded]}, expected {image.image_id}")
    repo, tag = image.repo_tag.rsplit(":", 1)
    if image.repo_tag not in found.tags:
        found.tag(repo, tag)
    return found.id
