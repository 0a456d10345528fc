"""The resource provider service: posts offers, agrees, runs the job in Docker (or, if its behaviour says so,
posts a fake result without running it), keeps results in a content-addressed store for the retention window and
serves them, submits the result hash, and claims the judge timeout when a client goes silent.

Its behaviour is a `agents` policy (scripted or learned) acting through the node's action interface: per deal it
commits to a cheat rate and a bribe, and the deal's cheat decision is drawn from the service's own seeded stream
(stored, so a restart never redraws it). API: GET /results/<deal id> (the result archive), GET /health.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from live.chain.binding import Terms
from live.executor import Capabilities, Executor
from live.modules import load_module
from live.modules.registry import DEFAULT_LOCK
from live.services.base import Service
from live.services.chainio import TERMINAL, ChainClient, S
from live.services.learned import DealOutcome
from live.services.policy import LiveMarket, Policy, node_actions
from live.services.results import ResultStore


class Provider(Service):
    role = "node"

    def __init__(
        self,
        name: str,
        state_dir: Path,
        chain: ChainClient,
        address: str,
        solver_url: str,
        executor: Executor | None,
        caps: Capabilities,
        policy: Policy,
        market: LiveMarket,
        price: int,
        seed: int,
        modules: list[str] | None = None,
        trust: list[int] | None = None,
        lock: Path = DEFAULT_LOCK,
        retention_s: float = 3600.0,
        poll_s: float = 0.05,
        **kw: Any,
    ) -> None:
        super().__init__(name, state_dir, **kw)
        self.chain, self.address, self.solver_url = chain, address, solver_url
        self.executor, self.caps, self.policy, self.market = executor, caps, policy, market
        self.price, self.modules, self.trust = price, modules or [], trust or []
        self.lock, self.poll_s = lock, poll_s
        self.results = ResultStore(self.state_dir / f"{name}-results", retention_s)
        self.rng = np.random.default_rng(np.random.SeedSequence(seed))
        self.app.add_routes([web.get("/results/{deal}", self.get_result), web.get("/health", self.health)])

    def loops(self) -> list[Callable[[], Awaitable[None]]]:
        return [self.deal_loop]

    async def start(self) -> Provider:
        await super().start()
        await self.chain.run(self.chain.setup_account, self.address)
        await self.feedback(None)
        await self.post_json(f"{self.solver_url}/directory", {"address": self.address, "url": self.url})
        return self

    async def health(self, req: web.Request) -> web.Response:
        return web.json_response({"ok": True, "address": self.address})

    async def get_result(self, req: web.Request) -> web.Response:
        got = self.store.get(req.match_info["deal"])
        rid = got[1].get("result_id") if got else None
        data = self.results.archive(rid) if rid else None
        if data is None:
            raise web.HTTPNotFound(text='{"error": "no result for this deal here"}', content_type="application/json")
        return web.Response(body=data, content_type="application/x-tar", headers={"X-Result-Id": rid})

    # ---------------------------------------------------------------- the deal loop

    async def deal_loop(self) -> None:
        while True:
            await self.offer_if_idle()
            deals = await self.get_json(f"{self.solver_url}/deals", party=self.address)
            for deal in deals:
                if self.store.get(deal["deal_id"]) is None:
                    self.store.put(deal["deal_id"], "open", {"deal": deal})
            for deal_id, _, data in list(self.store.open_deals()):
                await self.advance(deal_id, data)
            self.results.sweep()
            await asyncio.sleep(self.poll_s)

    async def offer_if_idle(self) -> None:
        """One open offer at a time while no deal is open (a node serves one job at a time)."""
        if any(True for _ in self.store.open_deals()) or self.store.get_value("offer_open", False):
            return
        n = int(self.store.get_value("offers", 0))
        body = {
            "node": self.address,
            "offer_id": f"{self.name}-{n}",
            "capacity": dict(zip(("cpu", "gpu", "vram", "ram", "disk"), self.caps.vector(), strict=True)),
            "price": self.price,
            "modules": self.modules,
            "trust": self.trust,
        }
        await self.post_json(f"{self.solver_url}/offers/resource", body)
        self.store.set_value("offers", n + 1)
        self.store.set_value("offer_open", True)

    async def advance(self, deal_id: str, data: dict[str, Any]) -> None:
        """One step of the node's side of a deal, from its state on chain (safe to repeat)."""
        self.store.set_value("offer_open", False)
        deal = data["deal"]
        t = Terms(*deal["terms"])
        c = self.chain
        d = await c.run(c.deal, bytes.fromhex(deal_id))
        block = await c.run(c.block)
        if d.exists and d.state in TERMINAL:
            outcome = DealOutcome(d.state, bool(data.get("cheat")), int(data.get("bribe") or 0), 0)
            await self.feedback(outcome)
            self.store.put(deal_id, "done", {**data, "state": d.state.name})
            return
        if not d.exists or d.state == S.DealNegotiating:
            if d.exists and block > c.deadline(d):
                await c.run(c.step, "timeout_agree", t, self.address)
            elif not (d.flags & 2):
                await c.run(c.agree, t, self.address)
        elif d.state == S.DealAgreed:
            if "result_id" not in data:
                data = await self.produce(deal_id, deal, data)
            if block <= c.deadline(d):
                await c.run(c.step, "submit", t, self.address, result_hash=bytes.fromhex(data["result_id"]))
        elif d.state == S.ResultsSubmitted and block > c.deadline(d):
            await c.run(c.step, "timeout_judge", t, self.address)
        elif d.state == S.ResultsChecked:
            await self.maybe_bribe(deal_id, data)
            if block > c.deadline(d):
                await c.run(c.step, "timeout_mediate", t, self.address)

    async def feedback(self, outcome: DealOutcome | None) -> None:
        """Tell a policy that learns from its record (`see`) the node's balance and a finished deal's outcome."""
        see = getattr(self.policy, "see", None)
        if see is not None:
            wealth = await self.chain.run(self.chain.dep.balance, self.address)
            see(None if outcome is None else dataclasses.replace(outcome, wealth=wealth), wealth)

    async def produce(self, deal_id: str, deal: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """The deal's result: a decision to cheat is drawn once (and stored); an honest node runs the container."""
        if "cheat" not in data:
            rate, bribe = node_actions(self.policy, int(self.store.get_value("offers", 0)))
            data = {**data, "cheat": bool(self.rng.random() < rate), "bribe": bribe}
            self.store.put(deal_id, "open", data)
        if data["cheat"]:
            rid, seconds, error = self._fake(deal_id), 0.0, None
        else:
            spec = load_module(deal["module"], deal["inputs"], lock=self.lock)
            if spec.spec_id != deal["spec_id"]:
                raise RuntimeError(f"deal {deal_id[:12]}: the module renders to another spec than the client's")
            assert self.executor is not None
            res = await asyncio.to_thread(self.executor.run, spec, deal_id)
            rid, seconds, error = self.results.put(res.result_dir), res.seconds, res.error
        data = {**data, "result_id": rid, "run_s": seconds, "error": error}
        self.store.put(deal_id, "open", data)
        return data

    def _fake(self, deal_id: str) -> str:
        """A plausible-looking result that was never computed (what a cheating node posts and serves)."""
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "outputs").mkdir()
            (root / "outputs" / "result.txt").write_text(f"fake {deal_id}\n")
            (root / "stdout").write_text("")
            (root / "stderr").write_text("")
            (root / "exitCode").write_text("0")
            return self.results.put(root)

    async def maybe_bribe(self, deal_id: str, data: dict[str, Any]) -> None:
        """A cheating node offers its bribe to the drawn mediator once (off chain, as in the twin)."""
        if not data.get("cheat") or not data.get("bribe") or data.get("bribed"):
            return
        d = await self.chain.run(self.chain.deal, bytes.fromhex(deal_id))
        if d.mediator == 0:
            return
        mediator = self.chain.dep.mediators[d.mediator - 1]
        url = (await self.get_json(f"{self.solver_url}/directory")).get(mediator)
        if url:
            await self.post_json(f"{url}/bribes", {"deal": deal_id, "amount": data["bribe"], "node": self.address})
        self.store.put(deal_id, "open", {**data, "bribed": True})
