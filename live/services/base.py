"""What every live service shares: an aiohttp API on loopback, its SQLite store, background loops, input checks.

A service binds to 127.0.0.1 unless told otherwise (a public address must be asked for by name). Bad requests get
HTTP 400 with a JSON body naming the field and what is allowed, before the service acts on anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from live.services.store import Store

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
FEED_WAIT_S = 5.0  # how long one long poll for new deals is held by the solver


class BadRequest(web.HTTPBadRequest):
    """A refused request: the body names the field and the allowed values."""

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        msg = f"{field}={value!r} is invalid: allowed {allowed}"
        super().__init__(text=f'{{"error": {_json_str(msg)}}}', content_type="application/json")
        self.message = msg


def _json_str(s: str) -> str:
    import json

    return json.dumps(s)


def need(body: Mapping[str, Any], field: str, kind: type | tuple[type, ...], allowed: str, check: Any = None) -> Any:
    """`body[field]` if it has type `kind` (bool is never an int) and passes `check`, else BadRequest."""
    value = body.get(field) if isinstance(body, Mapping) else None
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, (int,)))
    if not ok or (check is not None and not check(value)):
        raise BadRequest(field, value, allowed)
    return value


def check_bind(host: str, allow_public: bool) -> str:
    """Services bind to loopback; any other address must be allowed explicitly."""
    if not ipaddress.ip_address(host).is_loopback and not allow_public:
        raise ValueError(f"host={host!r} is invalid: allowed a loopback address (set allow_public=true to expose it)")
    return host


class Service:
    """Base of the four services: `start()` serves the API and runs the loops, `stop()` ends both."""

    role = "service"

    def __init__(
        self, name: str, state_dir: Path, host: str = LOOPBACK, port: int = 0, allow_public: bool = False
    ) -> None:
        self.name = name
        self.host, self.port = check_bind(host, allow_public), port
        self.state_dir = Path(state_dir)
        self.store = Store(self.state_dir / f"{name}.sqlite")
        self.app = web.Application(client_max_size=64 << 20)
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.http: ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def loops(self) -> list[Callable[[], Awaitable[None]]]:
        """The service's background loops (each restarted on an unexpected error)."""
        return []

    async def start(self) -> Service:
        self.http = ClientSession(timeout=ClientTimeout(total=30))
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._tasks = [
            asyncio.create_task(self._guard(loop), name=f"{self.name}:{loop.__name__}") for loop in self.loops()
        ]
        return self

    async def _guard(self, loop: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # a loop must survive a node restart or a peer going away
                log.exception("%s: %s failed; restarting it", self.name, loop.__name__)
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._runner is not None:
            await self._runner.cleanup()
        if self.http is not None:
            await self.http.close()
        self.close()

    def close(self) -> None:
        self.store.close()

    async def get_json(self, url: str, **params: Any) -> Any:
        assert self.http is not None
        async with self.http.get(url, params=params) as r:
            if r.status != 200:
                raise RuntimeError(f"GET {url} -> {r.status}: {await r.text()}")
            return await r.json()

    async def post_json(self, url: str, body: Mapping[str, Any]) -> Any:
        assert self.http is not None
        async with self.http.post(url, json=dict(body)) as r:
            data = await r.json()
            if r.status != 200:
                raise RuntimeError(f"POST {url} -> {r.status}: {data.get('error', data)}")
            return data
