"""Fetched results are verified: a result from the wrong provider, one whose hash does not match the posted one,
or an archive that tries to write outside its directory is refused; the store keeps results for the retention
window only."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest

from live.executor import result_id
from live.services.results import ResultMismatch, ResultStore, pack, unpack_verified


def _result(root: Path, text: str) -> Path:
    (root / "outputs").mkdir(parents=True)
    (root / "outputs" / "out.txt").write_text(text)
    (root / "stdout").write_text(text)
    (root / "exitCode").write_text("0")
    return root


def test_a_result_from_the_wrong_provider_or_with_another_hash_is_refused(tmp_path: Path) -> None:
    mine = _result(tmp_path / "mine", "moo\n")
    other = _result(tmp_path / "other", "baa\n")
    posted = result_id(mine)
    got = unpack_verified(pack(mine), tmp_path / "fetched", posted)
    assert result_id(got) == posted and (got / "outputs" / "out.txt").read_text() == "moo\n"
    with pytest.raises(ResultMismatch, match="not the posted"):
        unpack_verified(pack(other), tmp_path / "wrong", posted)  # another provider's (or a tampered) result
    assert not any((tmp_path / "wrong").iterdir())


def test_an_archive_escaping_its_directory_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../evil")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ResultMismatch):
        unpack_verified(buf.getvalue(), tmp_path / "dest", "0" * 64)
    assert not (tmp_path / "evil").exists()


def test_store_is_content_addressed_and_keeps_results_for_the_retention_window(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store", retention_s=60)
    rid = store.put(_result(tmp_path / "r", "moo\n"))
    assert rid == result_id(tmp_path / "r") and store.put(tmp_path / "r") == rid
    assert store.archive(rid) is not None and store.archive("../" + rid) is None
    assert store.sweep(now=time.time()) == []
    assert store.sweep(now=time.time() + 61) == [rid]
    assert store.archive(rid) is None
