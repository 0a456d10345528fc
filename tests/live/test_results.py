"""The result id: equal trees give equal ids, any change gives another; links are never followed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from live.executor import ResultError, result_id


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


BASE = {
    "outputs/a.txt": b"alpha\n",
    "outputs/sub/b.bin": bytes(range(256)),
    "stdout": b"hi\n",
    "stderr": b"",
    "exitCode": b"0\n",
}


def test_equal_trees_give_equal_ids_wherever_they_are(tmp_path: Path) -> None:
    a, b = tree(tmp_path / "a", BASE), tree(tmp_path / "b", dict(reversed(list(BASE.items()))))
    os.utime(b / "stdout", (0, 0))  # times and creation order do not matter
    assert result_id(a) == result_id(b)
    assert len(result_id(a)) == 64


def _rename(root: Path) -> None:
    (root / "outputs/a.txt").rename(root / "outputs/c.txt")


def _edit(root: Path) -> None:
    (root / "outputs/a.txt").write_bytes(b"alphA\n")


def _empty_dir(root: Path) -> None:
    (root / "outputs/empty").mkdir()


def _exit_code(root: Path) -> None:
    (root / "exitCode").write_bytes(b"1\n")


def _move_across_dirs(root: Path) -> None:  # same bytes, "outputs/sub" + "b.bin" vs "outputs" + "sub/b.bin"
    shutil.move(root / "outputs/sub/b.bin", root / "outputs/sub.b.bin")


def _link(root: Path) -> None:
    (root / "outputs/l").symlink_to("a.txt")


@pytest.mark.parametrize("change", [_rename, _edit, _empty_dir, _exit_code, _move_across_dirs, _link])
def test_any_change_changes_the_id(tmp_path: Path, change: Callable[[Path], None]) -> None:
    root = tree(tmp_path / "r", BASE)
    before = result_id(root)
    change(root)
    assert result_id(root) != before


def test_links_are_hashed_as_their_target_text_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("one")
    root = tree(tmp_path / "r", BASE)
    (root / "outputs/escape").symlink_to(secret)
    before = result_id(root)
    secret.write_text("two")  # the host file changes; the result does not read it
    assert result_id(root) == before


def test_special_files_and_oversized_results_are_refused(tmp_path: Path) -> None:
    root = tree(tmp_path / "r", BASE)
    with pytest.raises(ResultError, match="exceeds 100 bytes"):
        result_id(root, max_bytes=100)
    assert result_id(root, max_bytes=sum(map(len, BASE.values())))
    os.mkfifo(root / "outputs/pipe")
    with pytest.raises(ResultError, match="special file at 'outputs/pipe'"):
        result_id(root)
