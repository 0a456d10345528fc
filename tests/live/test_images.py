"""Locally built module images: static busybox detection, byte-reproducible archives, ids that are content digests."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import docker
import pytest

from live.modules import load_module
from live.modules.build import build
from live.modules.images import archive, find_static_busybox, is_static_elf, load, module_archive
from live.modules.registry import BUILTIN_ROOT, read_lock


@pytest.fixture(scope="module")
def busybox() -> Path:
    try:
        return find_static_busybox()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_static_elf_detection(busybox: Path, tmp_path: Path) -> None:
    assert is_static_elf(busybox)
    assert not is_static_elf(Path(sys.executable).resolve())  # a dynamically linked interpreter
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert not is_static_elf(tmp_path / "script")


def test_archives_are_byte_reproducible_and_the_id_is_the_config_digest(busybox: Path) -> None:
    first = module_archive("cowsay", "v1", BUILTIN_ROOT / "cowsay" / "v1", busybox)
    second = module_archive("cowsay", "v1", BUILTIN_ROOT / "cowsay" / "v1", busybox)
    assert first.data == second.data
    with tarfile.open(fileobj=io.BytesIO(first.data)) as tar:
        [manifest] = json.load(tar.extractfile("manifest.json"))
        config = tar.extractfile(manifest["Config"]).read()
        layers = [tar.extractfile(name).read() for name in manifest["Layers"]]
    assert first.image_id == "sha256:" + hashlib.sha256(config).hexdigest()
    assert json.loads(config)["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]
    assert json.loads(config)["config"]["User"] == "1000:1000"
    assert manifest["RepoTags"] == ["twin/cowsay:v1"]
    with tarfile.open(fileobj=io.BytesIO(layers[1])) as tar:
        assert tar.getnames() == ["module/cowsay.sh"]  # /module itself is in the shared base layer
        assert {m.mtime for m in tar.getmembers()} == {0} and {m.uid for m in tar.getmembers()} == {0}
    other = module_archive("hashseq", "v1", BUILTIN_ROOT / "hashseq" / "v1", busybox)
    assert other.image_id != first.image_id
    assert archive("x/y:z", layers[:1]).image_id != first.image_id


@pytest.mark.xdist_group("docker")
def test_building_twice_gives_the_same_pinned_image(
    docker_client: docker.DockerClient, images_lock: Path, tmp_path: Path
) -> None:
    pinned = read_lock(images_lock)
    assert set(pinned) == {
        "cowsay:v1",
        "hashseq:v1",
        "random:v1",
        "gpu-probe:v1",
        "fault-crash:v1",
        "fault-memory:v1",
        "fault-timeout:v1",
    }
    image = module_archive("random", "v1", BUILTIN_ROOT / "random" / "v1")
    docker_client.images.remove(image.image_id, force=True)  # gone, then rebuilt from the same content
    again = tmp_path / "lock.json"
    assert build(docker_client, ["random:v1"], again) == {"random:v1": pinned["random:v1"]}
    assert docker_client.images.get(image.image_id).tags == ["twin/random:v1"]
    assert load(docker_client, image) == image.image_id  # already there: found, not loaded again
    spec = load_module("random:v1", lock=again)
    assert spec.image == pinned["random:v1"] == f"twin/random:v1@{image.image_id}"
