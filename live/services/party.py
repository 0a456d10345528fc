"""A party to deals (the job creator and the resource provider): it learns its deals from the solver's feed, reads
them on chain as they change, and decides for its policy with its own seeded randomness."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from live.services.base import FEED_WAIT_S, Service
from live.services.chainio import ChainClient, DealWatch
from live.services.results import unpack_verified


class DealParty(Service, ABC):
    def __init__(
        self, name: str, state_dir: Path, chain: ChainClient, address: str, solver_url: str, seed: int, **kw: Any
    ) -> None:
        super().__init__(name, state_dir, **kw)
        self.chain, self.address, self.solver_url = chain, address, solver_url
        self.rng = np.random.default_rng(np.random.SeedSequence(seed))
        self.watch = DealWatch(chain)
        self.wake = asyncio.Event()  # something happened to one of this party's deals: look now

    def loops(self) -> list[Callable[[], Awaitable[None]]]:
        return [self.deal_loop, self.feed_loop]

    async def start(self) -> DealParty:
        await super().start()
        await self.chain.run(self.chain.setup_account, self.address)
        await self.feedback(None)
        return self

    @abstractmethod
    async def deal_loop(self) -> None:
        """Advance this party's open deals."""

    @abstractmethod
    async def feedback(self, outcome: Any) -> None:
        """Tell the policy how a deal ended (None at start: the party's opening record)."""

    async def feed_loop(self) -> None:
        """Learn this party's deals from the solver as they are published (a long poll; no polling), store each new
        one as open and wake the deal loop."""
        while True:
            known = int(self.store.get_value("deals_known", 0))
            new = await self.get_json(f"{self.solver_url}/deals", party=self.address, known=known, wait=FEED_WAIT_S)
            for deal in new:
                if self.store.get(deal["deal_id"]) is None:
                    self.store.put(deal["deal_id"], "open", {"deal": deal})
            if new:
                self.store.set_value("deals_known", known + len(new))
                self.wake.set()

    async def fetch_result(self, node_url: str, deal_id: str, dest: Path, expected: str) -> Path:
        """A deal's result archive fetched from the node serving it, unpacked into `dest` and checked to be
        `expected` (aiohttp's ClientError when the node does not serve it, ResultMismatch when it is another)."""
        assert self.http is not None
        async with self.http.get(f"{node_url}/results/{deal_id}") as r:
            r.raise_for_status()
            body = await r.read()
        return await asyncio.to_thread(unpack_verified, body, dest, expected)
