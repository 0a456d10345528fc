"""The job creator service and its client library: validates a module and its inputs before anything is posted or
paid, posts the job, agrees (escrowing payment and judge collateral), fetches the result from the node that won
the deal and verifies it against the hash posted on chain, then accepts it or checks it (the mechanism stack's
`choose_checks` with the client's committed rate; a result that fails verification is always checked), and claims
the submit or mediation timeout when the other side goes silent.

API: POST /jobs {module, inputs} -> {job}, GET /jobs/<job> (its deal, state and result once terminal).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientError, web

from live.chain.binding import Terms
from live.modules import ModuleError, load_module
from live.modules.registry import DEFAULT_LOCK
from live.services.base import BadRequest, need
from live.services.chainio import TERMINAL, ChainClient, S
from live.services.learned import DealOutcome
from live.services.party import DealParty
from live.services.policy import LiveMarket, Policy, client_actions, client_checks, deal_of_one
from live.services.results import ResultMismatch, unpack_verified
from mechanisms.base import MechanismStack


class Creator(DealParty):
    role = "client"

    def __init__(
        self,
        name: str,
        state_dir: Path,
        chain: ChainClient,
        address: str,
        solver_url: str,
        policy: Policy,
        stack: MechanismStack,
        market: LiveMarket,
        seed: int,
        book: dict[str, int],
        lock: Path = DEFAULT_LOCK,
        poll_s: float = 0.02,
        trust: list[int] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(name, state_dir, chain, address, solver_url, seed, **kw)
        self.policy, self.stack, self.market, self.book = policy, stack, market, book
        self.lock, self.poll_s, self.trust = lock, poll_s, trust or []
        self.done: dict[str, asyncio.Event] = {}
        self.app.add_routes([web.post("/jobs", self.post_job), web.get("/jobs/{job}", self.get_job)])

    async def feedback(self, state: S | None) -> None:
        """Tell a policy that learns from its record (`see`) the client's balance and a finished deal's outcome."""
        see = getattr(self.policy, "see", None)
        if see is not None:
            wealth = await self.chain.run(self.chain.dep.balance, self.address)
            see(None if state is None else DealOutcome(state, False, 0, wealth), wealth)

    # ---------------------------------------------------------------- client library

    async def submit(self, module: str, inputs: dict[str, str]) -> str:
        """Post a job; refused (ModuleError) before anything is posted or paid when the module or inputs are bad."""
        spec = load_module(module, inputs, lock=self.lock)  # the first check, before any offer or deposit
        self.market.module_index(module)
        n = int(self.store.get_value("jobs", 0))
        self.store.set_value("jobs", n + 1)
        job = f"{self.name}-{n}"
        self.store.put(
            f"job:{job}",
            "open",
            {"module": module, "inputs": inputs, "spec_id": spec.spec_id, "posted_at": time.time()},
        )
        self.done[job] = asyncio.Event()
        await self.post_json(
            f"{self.solver_url}/offers/job",
            {"client": self.address, "offer_id": job, "module": module, "inputs": inputs, "trust": self.trust},
        )
        return job

    async def wait(self, job: str, timeout: float = 120.0) -> dict[str, Any]:
        """The job's record once its deal is terminal."""
        ev = self.done.setdefault(job, asyncio.Event())
        if self.store.get(f"job:{job}")[0] != "done":
            await asyncio.wait_for(ev.wait(), timeout)
        return self.store.get(f"job:{job}")[1]

    async def run_job(self, module: str, inputs: dict[str, str], timeout: float = 120.0) -> dict[str, Any]:
        return await self.wait(await self.submit(module, inputs), timeout)

    # ---------------------------------------------------------------- API

    async def post_job(self, req: web.Request) -> web.Response:
        try:
            body = await req.json()
        except ValueError:
            raise BadRequest("body", "<not JSON>", "a JSON object") from None
        module = need(body, "module", str, "a module reference name:tag")
        inputs = need(body, "inputs", dict, "a mapping of input names to strings")
        try:
            job = await self.submit(module, inputs)
        except (ModuleError, ValueError) as exc:
            raise BadRequest("module", module, str(exc)) from None
        return web.json_response({"job": job})

    async def get_job(self, req: web.Request) -> web.Response:
        got = self.store.get(f"job:{req.match_info['job']}")
        if got is None:
            raise web.HTTPNotFound(text='{"error": "unknown job"}', content_type="application/json")
        return web.json_response({"status": got[0], **got[1]})

    # ---------------------------------------------------------------- the deal loop

    async def deal_loop(self) -> None:
        while True:
            self.wake.clear()
            # every open deal at once (one deal's receipt wait never holds up another's deadline), each only when
            # the watch says it may have changed
            await self.chain.run(self.watch.poll)
            deals = [(k, d) for k, _, d in self.store.open_deals() if not k.startswith("job:") and self.watch.due(k)]
            acted = any(await asyncio.gather(*(self.advance(k, data) for k, data in deals)))
            if not acted:  # a step just taken may have unlocked the next one: look again at once
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a stop's cancel racing the wake
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        await self.wake.wait()

    async def advance(self, deal_id: str, data: dict[str, Any]) -> bool:
        """One step of the client's side of a deal (safe to repeat); True when it acted."""
        deal = data["deal"]
        t = Terms(*deal["terms"])
        c = self.chain
        d, block = await c.run(c.deal_and_block, bytes.fromhex(deal_id))
        self.watch.read(deal_id, d)
        if d.exists and d.state in TERMINAL:
            self.finish(deal_id, data, d.state)
            self.watch.forget(deal_id)
            await self.feedback(d.state)
        elif not d.exists or d.state == S.DealNegotiating:
            if d.exists and block > c.deadline(d):
                return await c.run(c.step, "timeout_agree", t, self.address, known=d)
            if not (d.exists and d.flags & 1):
                return await c.run(c.agree, t, self.address, known=d)
        elif d.state == S.DealAgreed and block > c.deadline(d):
            return await c.run(c.step, "timeout_submit", t, self.address, known=d)
        elif d.state == S.ResultsSubmitted:
            data = await self.judge(deal_id, deal, data)
            return await c.run(c.step, "check" if data["check"] else "accept", t, self.address, known=d)
        elif d.state == S.ResultsChecked and block > c.deadline(d):
            return await c.run(c.step, "timeout_mediate", t, self.address, known=d)
        return False

    async def judge(self, deal_id: str, deal: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """Fetch and verify the result, then decide (once, stored) whether to check it."""
        if "check" in data:
            return data
        posted = await self.chain.run(self.chain.posted_hash, bytes.fromhex(deal_id))
        verified = False
        try:
            url = deal.get("node_url")
            if url and posted is not None:
                assert self.http is not None
                async with self.http.get(f"{url}/results/{deal_id}") as r:
                    if r.status == 200:
                        dest = self.state_dir / f"{self.name}-results" / deal_id
                        await asyncio.to_thread(unpack_verified, await r.read(), dest, posted.hex())
                        verified = True
        except (TimeoutError, ResultMismatch, ClientError):
            verified = False
        t = Terms(*deal["terms"])
        batch = deal_of_one(
            t,
            self.market,
            self.book[t.client],
            self.book[t.node],
            self.stack,
            self.rng.random(max(self.stack.draws_per_deal, 1)),
        )
        rate = client_actions(self.policy, int(self.store.get_value("jobs", 0)))
        check = (not verified) or client_checks(batch, self.stack, rate)
        data = {**data, "verified": verified, "check": check, "judged_at": time.time()}
        self.store.put(deal_id, "open", data)
        return data

    def finish(self, deal_id: str, data: dict[str, Any], state: S) -> None:
        job = data["deal"]["job_offer"]
        self.store.put(deal_id, "done", {**data, "state": state.name})
        got = self.store.get(f"job:{job}")
        if got is not None and got[0] != "done":
            rec = {
                **got[1],
                "deal_id": deal_id,
                "state": state.name,
                "verified": data.get("verified", False),
                "checked": data.get("check", False),
                "finished_at": time.time(),
            }
            self.store.put(f"job:{job}", "done", rec)
        self.done.setdefault(job, asyncio.Event()).set()


if __name__ == "__main__":  # python -m live.services.creator (configs/service.yaml)
    from live.services.cli import run

    run("creator")
