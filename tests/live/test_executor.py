"""The executor on a real Docker engine: containment checked on the real container and from inside it, result ids
(deterministic equal, nondeterministic different), fault modules as error results, GPUs when the host has them."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from live.executor import Capabilities, ExecResult, Executor, ExecutorError
from live.executor.runner import PHASES
from live.modules import JobSpec, load_module
from live.modules.registry import read_lock, write_lock

pytestmark = pytest.mark.xdist_group("docker")

PROBE = """{
  "machine": {"gpu": 0, "cpu": 500, "ram": 48},
  "job": {"Spec": {
    "Docker": {"Image": {{ image }}, "Entrypoint": ["/bin/sh", "-c", {{ .Script }}]},
    "Network": {"Type": "None"}, "Outputs": [{"Name": "outputs", "Path": "/outputs"}],
    "Resources": {"Pids": "48"}, "Timeout": 30}}}
"""

Probe = Callable[[str], JobSpec]


@pytest.fixture(scope="module")
def probe(images_lock: Path, tmp_path_factory: pytest.TempPathFactory) -> Probe:
    """`probe(script)`: a job running `script` with busybox sh in the cowsay image (48 MiB, 48 pids)."""
    root = tmp_path_factory.mktemp("probe-modules")
    (root / "probe" / "v1").mkdir(parents=True)
    (root / "probe" / "v1" / "lilypad_module.json.tmpl").write_text(PROBE)
    lock = root / "images.json"
    write_lock({"probe:v1": read_lock(images_lock)["cowsay:v1"]}, lock)
    return lambda script: load_module("probe:v1", {"Script": script}, lock=lock, search=[root])


def output(result: ExecResult, name: str) -> str:
    return (result.result_dir / "outputs" / name).read_text()


def stdout(result: ExecResult) -> str:
    return (result.result_dir / "stdout").read_text()


def test_security_options_on_the_real_container(executor: Executor, probe: Probe) -> None:
    result = executor.run(probe("true"))
    assert result.status == "ok", result.error
    host, config = result.container["HostConfig"], result.container["Config"]
    assert host["NetworkMode"] == "none" and config["NetworkDisabled"] is True
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Privileged"] is False
    assert host["Memory"] == host["MemorySwap"] == 48 << 20
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 48
    assert host["Tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=48m,mode=1777"}
    assert [(m["Destination"], m["RW"]) for m in result.container["Mounts"]] == [("/outputs", True)]
    assert config["User"] == "1000:1000"
    assert config["Image"] == probe("true").digest
    assert not host["DeviceRequests"]


@pytest.fixture
def host_server() -> Iterator[tuple[str, int]]:
    """An HTTP server on every host interface; yields (a non-loopback host address, port)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outward interface's address
        address = s.getsockname()[0]
    try:
        yield address, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_no_network_inside_the_container(executor: Executor, probe: Probe, host_server: tuple[str, int]) -> None:
    address, port = host_server
    for host in ("127.0.0.1", address):  # reachable from the host itself: the probe below is not vacuous
        assert urllib.request.urlopen(f"http://{host}:{port}/", timeout=5).status == 200
    script = (
        f"for h in 127.0.0.1 {address}; do wget -q -T 2 -O /dev/null http://$h:{port}/ && echo reached $h; done;"
        " tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /outputs/interfaces.txt"
    )
    result = executor.run(probe(script))
    assert result.status == "ok", result.error
    assert "reached" not in stdout(result)
    assert output(result, "interfaces.txt").split() == ["lo"]


def test_runs_as_non_root_without_privileges_on_a_read_only_root(executor: Executor, probe: Probe) -> None:
    script = (
        "id -u; id -g; grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status | tr -d '\\t';"
        " touch /evil 2>/dev/null && echo root-writable; echo scratch > /tmp/x && cat /tmp/x;"
        " cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max;"
        " cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
    )
    result = executor.run(probe(script))
    assert result.status == "ok", result.error
    assert stdout(result).split() == [
        "1000",
        "1000",
        "CapPrm:0000000000000000",
        "CapEff:0000000000000000",
        "NoNewPrivs:1",
        "scratch",
        "48",
        str(48 << 20),
    ]


def test_cowsay_says_the_message(executor: Executor, load: Callable[..., JobSpec]) -> None:
    result = executor.run(load("cowsay:v1", {"Message": "moo"}))
    assert result.status == "ok" and result.exit_code == 0
    assert "< moo >" in stdout(result) and output(result, "cow.txt") == stdout(result)
    assert tuple(result.timings) == PHASES and min(result.timings.values()) >= 0
    assert result.timings["start"] + result.timings["wait"] == pytest.approx(result.seconds)


def test_a_relative_work_dir_runs_from_its_absolute_path(
    docker_client: docker.DockerClient,
    capabilities: Capabilities,
    load: Callable[..., JobSpec],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # `make live ARGS="out=outputs/..."` passes a relative directory
    result = Executor(docker_client, Path("jobs"), capabilities).run(load("cowsay:v1", {"Message": "moo"}))
    assert result.status == "ok" and result.result_dir.is_relative_to(tmp_path / "jobs")


def test_deterministic_module_gives_the_same_result_id_twice(executor: Executor, load: Callable[..., JobSpec]) -> None:
    spec = load("hashseq:v1", {"N": "5000"})
    first, second = executor.run(spec, "first"), executor.run(spec, "second")
    assert first.status == second.status == "ok"
    assert first.result_id == second.result_id
    expected = hashlib.sha256("".join(f"{i}\n" for i in range(1, 5001)).encode()).hexdigest()
    assert output(first, "sha256.txt").strip() == expected
    assert executor.run(load("hashseq:v1", {"N": "5001"})).result_id != first.result_id


def test_nondeterministic_module_gives_different_result_ids(executor: Executor, load: Callable[..., JobSpec]) -> None:
    spec = load("random:v1")
    first, second = executor.run(spec, "first"), executor.run(spec, "second")
    assert first.status == second.status == "ok"
    assert first.result_id != second.result_id


def test_crash_is_an_error_result_with_its_partial_output(executor: Executor, load: Callable[..., JobSpec]) -> None:
    first, second = executor.run(load("fault-crash:v1"), "a"), executor.run(load("fault-crash:v1"), "b")
    assert (first.status, first.error, first.exit_code) == ("error", "exit 3", 3)
    assert output(first, "partial.txt") == "partial\n"
    assert (first.result_dir / "stderr").read_text() == "fault-crash: giving up\n"
    assert first.result_id == second.result_id  # a deterministic failure: a re-run can confirm it


def test_exceeding_memory_is_an_error_result(executor: Executor, load: Callable[..., JobSpec]) -> None:
    result = executor.run(load("fault-memory:v1"))
    assert (result.status, result.error) == ("error", "memory")
    assert result.container["State"]["OOMKilled"] is True


def test_exceeding_the_timeout_kills_the_container(
    executor: Executor, load: Callable[..., JobSpec], docker_client: docker.DockerClient
) -> None:
    spec = load("fault-timeout:v1")
    result = executor.run(spec)
    assert (result.status, result.error) == ("error", "timeout")
    assert spec.timeout <= result.seconds < spec.timeout + 10
    assert output(result, "started.txt") == "started\n"
    assert docker_client.containers.list(all=True, filters={"label": f"twin.job={result.job_id}"}) == []


def test_bad_input_to_the_job_is_an_error_result(executor: Executor, load: Callable[..., JobSpec]) -> None:
    result = executor.run(load("hashseq:v1", {"N": "many"}))
    assert (result.status, result.error) == ("error", "exit 2")
    assert "N must be a positive integer" in (result.result_dir / "stderr").read_text()


def test_oversized_outputs_are_dropped_into_an_error_result(
    docker_client: docker.DockerClient, capabilities: Capabilities, probe: Probe, tmp_path: Path
) -> None:
    executor = Executor(docker_client, tmp_path, capabilities, max_output_bytes=1 << 20)
    result = executor.run(probe("head -c 2000000 /dev/zero > /outputs/big"))
    assert result.status == "error" and result.error.startswith("outputs: result exceeds 1048576 bytes")
    assert not (result.result_dir / "outputs").exists()
    assert (result.result_dir / "error").read_text().startswith("outputs:")
    assert len(result.result_id) == 64


def test_a_missing_image_is_refused_before_running(executor: Executor, probe: Probe) -> None:
    spec = probe("true")
    absent = spec.__class__(**{**spec.__dict__, "image": "twin/absent:v1@sha256:" + "0" * 64})
    with pytest.raises(ExecutorError, match="is not in this engine; build it"):
        executor.run(absent)


def test_the_gpu_module_runs_where_a_gpu_exists(
    executor: Executor, capabilities: Capabilities, load: Callable[..., JobSpec]
) -> None:
    spec = load("gpu-probe:v1")
    if capabilities.gpu == 0:
        with pytest.raises(ExecutorError, match="does not fit this node: gpu: needs 1, has 0"):
            executor.run(spec)
        pytest.skip("no GPU on this host: the GPU module was refused (checked); its real run needs a GPU")
    result = executor.run(spec)
    assert result.status == "ok", (result.error, (result.result_dir / "stderr").read_text())
    assert "nvidia0" in output(result, "devices.txt").split()
    assert result.container["HostConfig"]["DeviceRequests"][0]["Count"] == 1


def test_cli_runs_a_module_and_prints_its_result(
    images_lock: Path,
    tmp_path: Path,
    docker_host: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from live.executor.__main__ import main

    monkeypatch.setenv("DOCKER_HOST", docker_host)
    assert main(["cowsay:v1", "-i", "Message=moo", "--lock", str(images_lock), "--work-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    summary = json.loads(out[-1])
    assert "< moo >" in out and summary["status"] == "ok" and len(summary["result_id"]) == 64
    assert main(["fault-crash:v1", "--lock", str(images_lock), "--work-dir", str(tmp_path)]) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["error"] == "exit 3"
