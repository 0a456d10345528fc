"""The project's own Docker engine: its files stay under the runtime directory, it is found when it answers,
started when nothing does, and stopped only by whoever started it once no other user remains."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from live import docker_engine
from live.docker_engine import EngineLayout, answers, engine

pytestmark = pytest.mark.xdist_group("docker")


def test_layout_keeps_everything_under_the_runtime_dir() -> None:
    layout = EngineLayout(Path("/srv/project/.runtime/docker"))  # a short path: sockets stay under it
    cmd = layout.dockerd_command("/usr/sbin/dockerd")
    assert cmd[cmd.index("--data-root") + 1] == "/srv/project/.runtime/docker/data"
    assert cmd[cmd.index("--host") + 1] == "unix:///srv/project/.runtime/docker/run/docker.sock" == layout.host
    assert cmd[cmd.index("--exec-root") + 1] == "/srv/project/.runtime/docker/run"
    assert cmd[cmd.index("--pidfile") + 1] == "/srv/project/.runtime/docker/docker.pid"
    assert cmd[cmd.index("--config-file") + 1] == "/srv/project/.runtime/docker/daemon.json"
    assert {"--iptables=false", "--ip-masq=false"} <= set(cmd) and cmd[cmd.index("--bridge") + 1] == "none"
    long = EngineLayout(Path("/srv") / ("x" * 80))  # too long for unix sockets nested below it
    assert str(long.exec_root).startswith("/tmp/twin-docker-") and len(long.host) < 100
    assert long.namespace != layout.namespace


def test_stop_never_signals_a_process_that_is_not_its_dockerd(tmp_path: Path) -> None:
    layout = EngineLayout(tmp_path)
    assert docker_engine.stop(layout) is False  # no pidfile
    layout.pidfile.write_text(f"{os.getpid()}\n")  # a live process, but not a dockerd of this layout
    assert docker_engine.stop(layout) is False
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        layout.pidfile.write_text(f"{sleeper.pid}\n")
        assert docker_engine.stop(layout) is False and sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_install_explains_instead_of_failing_when_it_cannot_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(docker_engine, "missing_packages", lambda: ["docker.io"])
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert docker_engine.install() == 0
    assert "missing ['docker.io']; install them as root" in capsys.readouterr().out
    monkeypatch.setattr(docker_engine, "missing_packages", lambda: [])
    assert docker_engine.install() == 0
    assert "present" in capsys.readouterr().out


def test_the_session_engine_answers(docker_host: str) -> None:
    assert answers(docker_host)


def test_start_find_and_stop_only_what_was_started(
    docker_host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second engine under a fresh runtime dir (dockerd runs, so it can be started): nested users share it; the
    starter stops it only after every other user has left."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(docker_engine, "SYSTEM_SOCKET", f"unix://{tmp_path}/no-system-engine.sock")
    layout = EngineLayout(tmp_path / "rt")
    assert docker_engine.find_engine(layout) is None
    outer = engine(layout)
    host = outer.__enter__()
    pid = docker_engine._our_dockerd(layout)
    assert host == layout.host and answers(host) and pid is not None
    with engine(layout) as again:  # found, not started: leaving does not stop it
        assert again == host
    assert answers(host)
    assert docker_engine.status(layout) == {"host": host, "ours": True, "pid": pid, "runtime": str(layout.root)}
    with open(layout.users_lock, "a") as other_user:
        fcntl.flock(other_user, fcntl.LOCK_SH)
        leaving = threading.Thread(target=outer.__exit__, args=(None, None, None))
        leaving.start()
        time.sleep(1.0)
        assert leaving.is_alive() and answers(host)  # the starter waits for the other user
        fcntl.flock(other_user, fcntl.LOCK_UN)
    leaving.join(timeout=60)
    assert not leaving.is_alive()
    assert not answers(host) and docker_engine._our_dockerd(layout) is None
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_cli_status_and_stop(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVE_DOCKER_RUNTIME", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(docker_engine, "SYSTEM_SOCKET", f"unix://{tmp_path}/none.sock")
    assert docker_engine.main(["status"]) == 0
    assert json.loads(capsys.readouterr().out) == {"host": None, "ours": False, "pid": None, "runtime": str(tmp_path)}
    assert docker_engine.main(["stop"]) == 0
    assert capsys.readouterr().out.strip() == "no engine started by this project is running"
