"""The project's own Docker engine: found when one answers, started (as root) when none does, stopped only by
whoever started it.

Jobs need a real engine, and CI runs on a fresh machine with no engine running and no registry reachable. So the
project can start `dockerd` itself, with every file under its runtime directory (`.runtime/docker`): its own data
root, config file, managed containerd namespace and socket, so it never touches a system engine that may also run.
Containers of the live stack always run with no network, so the engine starts without a bridge or iptables rules.

Several processes may share the engine (pytest workers, services): each user holds a shared lock on
`users.lock`; the process that started the engine stops it only once it can take that lock exclusively.

CLI: ``python -m live.docker_engine install|start|stop|status``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import docker
from docker.errors import DockerException
from requests.exceptions import RequestException

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNTIME = PROJECT_ROOT / ".runtime" / "docker"
SYSTEM_SOCKET = "unix:///var/run/docker.sock"
PACKAGES = ("docker.io", "busybox-static")  # Debian packages `install` adds when missing
MIN_API = docker.constants.MINIMUM_DOCKER_API_VERSION  # enough for a ping
MAX_SOCKET_DIR = 60  # unix socket paths are limited to 108 bytes; containerd nests its sockets below exec-root


class EngineError(RuntimeError):
    """No Docker engine answers and none could be started (the message says why and what to do)."""


@dataclass(frozen=True)
class EngineLayout:
    """Where an engine started by the project keeps its files; `root` is the project's runtime directory."""

    root: Path

    @classmethod
    def default(cls) -> EngineLayout:
        return cls(Path(os.environ.get("LIVE_DOCKER_RUNTIME", DEFAULT_RUNTIME)).resolve())

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        """Sockets live here: under the runtime directory when its path is short enough, else under /tmp."""
        if len(str(self.root)) <= MAX_SOCKET_DIR:
            return self.root / "run"
        return Path("/tmp") / f"twin-docker-{hashlib.sha256(str(self.root).encode()).hexdigest()[:12]}"

    @property
    def host(self) -> str:
        return f"unix://{self.exec_root / 'docker.sock'}"

    @property
    def pidfile(self) -> Path:
        return self.root / "docker.pid"

    @property
    def users_lock(self) -> Path:
        return self.root / "users.lock"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def namespace(self) -> str:
        """containerd namespace: distinct per runtime directory, should dockerd attach to a system containerd."""
        return f"twin-{hashlib.sha256(str(self.root).encode()).hexdigest()[:12]}"

    def dockerd_command(self, dockerd: str) -> list[str]:
        config = self.root / "daemon.json"
        return [
            dockerd,
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.exec_root),
            "--host",
            self.host,
            "--pidfile",
            str(self.pidfile),
            "--config-file",
            str(config),
            "--containerd-namespace",
            self.namespace,
            "--containerd-plugins-namespace",
            f"{self.namespace}-p",
            "--bridge",
            "none",
            "--iptables=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            "--log-level",
            "warn",
        ]


def answers(host: str, timeout: float = 3.0) -> bool:
    """Whether a Docker engine answers a ping at `host`."""
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False  # no engine there (and the SDK would leave the socket of a failed connect open)
    try:  # no version negotiation here: a constructor that asks and fails would leave its socket open
        client = docker.DockerClient(base_url=host, version=MIN_API, timeout=timeout)
    except DockerException:
        return False
    try:
        return bool(client.ping())
    except (DockerException, RequestException):  # the engine's error, or no engine behind the socket
        return False
    finally:
        client.close()


def client(host: str, timeout: float = 120.0) -> docker.DockerClient:
    """A client for the engine at `host`, speaking the engine's own API version."""
    c = docker.DockerClient(base_url=host, version="auto", timeout=timeout)
    if host.startswith("unix://"):  # no proxy or netrc applies to a socket: skip requests' per-call lookups
        c.api.trust_env = False
    return c


def candidates(layout: EngineLayout) -> list[str]:
    """Engines to try, in order: $DOCKER_HOST, the project's own engine, the system engine."""
    hosts = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else []
    return [*hosts, layout.host, SYSTEM_SOCKET]


def find_engine(layout: EngineLayout) -> str | None:
    """The first engine that answers, or None."""
    return next((h for h in candidates(layout) if answers(h)), None)


def dockerd_path() -> str | None:
    """The dockerd binary (root's PATH includes /usr/sbin, a user's may not)."""
    return shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/bin:/sbin:/bin")


def _pid_alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _our_dockerd(layout: EngineLayout) -> int | None:
    """The pid of the dockerd this layout started, if it is still running (checked against its command line, so a
    stale pidfile never makes us signal an unrelated process)."""
    try:
        pid = int(layout.pidfile.read_text().strip())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    ours = bool(argv) and Path(argv[0].decode()).name == "dockerd" and str(layout.data_root).encode() in argv
    return pid if ours and _pid_alive(pid) else None


def start(layout: EngineLayout, timeout: float = 60.0) -> subprocess.Popen[bytes]:
    """Start dockerd for `layout` in its own session and wait until it answers; raise EngineError with the log's
    tail if it cannot start."""
    dockerd = dockerd_path()
    if dockerd is None:
        raise EngineError(
            "dockerd is not installed: run `make setup` (installs Debian's docker.io as root) or "
            "`python -m live.docker_engine install`"
        )
    if os.geteuid() != 0:
        raise EngineError("starting dockerd needs root (or point DOCKER_HOST at a running engine)")
    stop(layout)  # one of ours that no longer answers (hung, or its socket removed) would block the pidfile
    for d in (layout.root, layout.data_root, layout.exec_root):
        d.mkdir(parents=True, exist_ok=True)
    config = layout.root / "daemon.json"
    if not config.exists():
        config.write_text("{}\n")
    with open(layout.log, "ab") as log:
        proc = subprocess.Popen(
            layout.dockerd_command(dockerd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EngineError(f"dockerd exited with {proc.returncode}; last log lines:\n{_tail(layout.log)}")
        if answers(layout.host, timeout=1.0):
            return proc
        time.sleep(0.2)
    _terminate(proc.pid, 10.0)
    raise EngineError(f"dockerd did not answer within {timeout:.0f} s; last log lines:\n{_tail(layout.log)}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM (dockerd then stops its containers and containerd), SIGKILL if it does not exit in time."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:  # reap it if it is our child; otherwise its parent (init) does
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                pass
            if not _pid_alive(pid):
                return
            time.sleep(0.1)


def stop(layout: EngineLayout, timeout: float = 30.0) -> bool:
    """Stop the dockerd this layout started; False if none of ours runs. Never touches any other engine."""
    pid = _our_dockerd(layout)
    if pid is None:
        return False
    _terminate(pid, timeout)
    return True


@contextmanager
def _flock(path: Path, mode: int) -> Iterator[IO[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, mode)
        try:
            yield f
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def engine(layout: EngineLayout | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Yield the host of a Docker engine that answers, starting the project's own when none does; on exit stop it
    if this context started it, once no other user of the engine remains."""
    layout = layout or EngineLayout.default()
    with _flock(layout.root / "start.lock", fcntl.LOCK_EX):
        host = find_engine(layout)
        proc = None if host else start(layout, timeout)
        host = host or layout.host
        users = open(layout.users_lock, "a")  # noqa: SIM115 - held for the whole context
        fcntl.flock(users, fcntl.LOCK_SH)
    try:
        yield host
    finally:
        fcntl.flock(users, fcntl.LOCK_UN)
        if proc is not None:
            with _flock(layout.root / "start.lock", fcntl.LOCK_EX), _flock(layout.users_lock, fcntl.LOCK_EX):
                _terminate(proc.pid, 30.0)
        users.close()


def missing_packages() -> list[str]:
    """The Debian packages the live stack needs that are not installed (dockerd from any source counts)."""
    from live.modules.images import find_static_busybox  # the image builder owns what "static busybox" means

    missing = [] if dockerd_path() else ["docker.io"]
    try:
        find_static_busybox()
    except FileNotFoundError:
        missing.append("busybox-static")
    return missing


def install() -> int:
    """Install the missing packages with apt-get when root on Debian; explain and return 0 otherwise (the live
    tests then say why they skip). Idempotent."""
    missing = missing_packages()
    if not missing:
        print("live: docker.io and busybox-static present")
        return 0
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"live: missing {missing}; install them as root with apt-get (the live tests skip without them)")
        return 0
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], check=True, env=env)
    return 0


def status(layout: EngineLayout) -> dict[str, object]:
    """Which engine answers, and whether it is the one the project started."""
    host = find_engine(layout)
    return {
        "host": host,
        "ours": host == layout.host and _our_dockerd(layout) is not None,
        "pid": _our_dockerd(layout),
        "runtime": str(layout.root),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m live.docker_engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["install", "start", "stop", "status"])
    args = parser.parse_args(argv)
    layout = EngineLayout.default()
    if args.command == "install":
        return install()
    if args.command == "status":
        print(json.dumps(status(layout)))
        return 0
    if args.command == "start":
        host = find_engine(layout)
        if host is None:
            start(layout)
            host = layout.host
        print(f"export DOCKER_HOST={host}")
        return 0
    with _flock(layout.users_lock, fcntl.LOCK_EX | fcntl.LOCK_NB):
        print("stopped" if stop(layout) else "no engine started by this project is running")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (EngineError, BlockingIOError) as exc:
        msg = "the engine is in use by another process" if isinstance(exc, BlockingIOError) else str(exc)
        print(f"live.docker_engine: {msg}", file=sys.stderr)
        sys.exit(1)
