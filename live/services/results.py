"""Content-addressed result store (a resource provider keeps each result under its result id for the retention
window) and the transfer format (a tar archive) with its verification: whoever fetches a result recomputes the id
and refuses anything whose id is not the one posted on chain."""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from live.executor import result_id

HEX64 = frozenset("0123456789abcdef")


def is_result_id(s: str) -> bool:
    return len(s) == 64 and set(s) <= HEX64


class ResultStore:
    """`root/<result id>/` directories; `put` copies a result in (once), `sweep` drops those past retention."""

    def __init__(self, root: Path, retention_s: float) -> None:
        self.root, self.retention_s = Path(root), retention_s
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, result_dir: Path) -> str:
        rid = result_id(result_dir)
        dest = self.root / rid
        if not dest.exists():
            tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".in-"))
            shutil.copytree(result_dir, tmp / "r", symlinks=True)
            (tmp / "r").rename(dest)
            tmp.rmdir()
        return rid

    def path(self, rid: str) -> Path | None:
        p = self.root / rid
        return p if is_result_id(rid) and p.is_dir() else None

    def archive(self, rid: str) -> bytes | None:
        p = self.path(rid)
        return None if p is None else pack(p)

    def sweep(self, now: float | None = None) -> list[str]:
        """Remove results stored longer than the retention window; the ids removed."""
        now = time.time() if now is None else now
        gone = []
        for p in self.root.iterdir():
            if is_result_id(p.name) and now - p.stat().st_mtime > self.retention_s:
                shutil.rmtree(p)
                gone.append(p.name)
        return gone


def pack(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(root.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(root)), recursive=False)
    return buf.getvalue()


class ResultMismatch(Exception):
    """A fetched result's content id is not the one posted on chain."""


def unpack_verified(data: bytes, dest: Path, expected: str) -> Path:
    """Extract a result archive into `dest` (regular files and directories only, nothing outside `dest`) and check
    its id; raises ResultMismatch (and leaves nothing behind) when it is not `expected`."""
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            tar.extractall(tmp, filter="data")
        got = result_id(tmp)
        if got != expected:
            raise ResultMismatch(f"fetched result {got[:16]}... is not the posted {expected[:16]}...")
        shutil.rmtree(dest)
        tmp.rename(dest)
        return dest
    except (tarfile.TarError, OSError) as exc:
        raise ResultMismatch(f"unreadable result archive: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
