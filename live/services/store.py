"""A service's own state in SQLite: its open deals (with everything needed to resume them) and the messages it
has already handled, so a restarted service picks every open deal up where it stopped and a replayed message is
recognised and ignored."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Store:
    """`deals(id, status, data)` and `seen(key)`; one file per service. Thread-safe (one connection, one lock)."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # commits reach the WAL at once (a killed or crashed service loses nothing) but are synced to disk at
        # checkpoints, not per write: an fsync per write (~2.5 ms) blocked the event loop for most of a deal's
        # service time; only an OS crash or power loss can drop the last writes, and the chain (read first by every
        # step) stays the record of what was done
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS deals (id TEXT PRIMARY KEY, status TEXT NOT NULL, data TEXT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY)")
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT)")
        self._lock = threading.Lock()

    def put(self, deal_id: str, status: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.db.execute(
                "INSERT INTO deals VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET status=excluded.status, "
                "data=excluded.data",
                (deal_id, status, json.dumps(data, sort_keys=True)),
            )

    def get(self, deal_id: str) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            row = self.db.execute("SELECT status, data FROM deals WHERE id=?", (deal_id,)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def open_deals(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(id, status, data) of every deal not marked `done`."""
        with self._lock:
            rows = self.db.execute(
                "SELECT id, status, data FROM deals WHERE status != 'done' ORDER BY rowid"
            ).fetchall()
        for i, s, d in rows:
            yield i, s, json.loads(d)

    def all_deals(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self._lock:
            rows = self.db.execute("SELECT id, status, data FROM deals ORDER BY rowid").fetchall()
        return [(i, s, json.loads(d)) for i, s, d in rows]

    def first_time(self, key: str) -> bool:
        """True the first time `key` is seen (and records it); False for a duplicate or replay."""
        with self._lock:
            cur = self.db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (key,))
        return cur.rowcount == 1

    def get_value(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self.db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_value(self, key: str, value: Any) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, json.dumps(value)))

    def close(self) -> None:
        self.db.close()
