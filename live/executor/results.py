"""A job's result directory and its content hash, the result id that a mediator recomputes.

The layout follows Bacalhau's (which Lilypad publishes): `outputs/` (what the job wrote to /outputs), `stdout`,
`stderr` and `exitCode`. The id is a sha256 over the tree, entry by entry in sorted path order, each entry bound
to its path, kind and content, so equal trees give equal ids on any machine and any change (a renamed file, an
extra empty directory, a different exit status) gives another.

The tree was written by an untrusted container, so it is read without following links (a link is hashed as its
target text, never opened), anything that is not a file, directory or link is refused, and the total size is
capped.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

RESULT_VERSION = b"twin-result-v1\0"


class ResultError(ValueError):
    """The result tree cannot be hashed: too large, or holding something other than files, directories, links."""


def _entries(root: Path) -> list[tuple[bytes, os.stat_result, Path]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out.append((path.relative_to(root).as_posix().encode("utf-8", "surrogateescape"), path.lstat(), path))
    return sorted(out, key=lambda e: e[0])


def _file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def result_id(root: Path, max_bytes: int = 1 << 30) -> str:
    """The content hash of the tree under `root`, hex; ResultError past `max_bytes` or on a special file."""
    h = hashlib.sha256(RESULT_VERSION)
    total = 0
    for rel, st, path in _entries(root):
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
            if total > max_bytes:
                raise ResultError(f"result exceeds {max_bytes} bytes at {rel.decode(errors='replace')!r}")
            kind, digest = b"f", _file_digest(path)
        elif stat.S_ISDIR(st.st_mode):
            kind, digest = b"d", b""
        elif stat.S_ISLNK(st.st_mode):
            kind, digest = b"l", hashlib.sha256(os.fsencode(os.readlink(path))).digest()
        else:
            raise ResultError(
                f"result holds a special file at {rel.decode(errors='replace')!r}: allowed files, directories and links"
            )
        h.update(kind + len(rel).to_bytes(8, "big") + rel + digest)
    return h.hexdigest()
