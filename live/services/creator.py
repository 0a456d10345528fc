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
from live.services.chainio import TERMINAL, ChainClient, OnChain, S
from live.services.learned import DealOutcome
from live.services.party import DealParty
from live.services.policy import LiveMarket, Policy, client_actions, job_batch, job_checks
from live.services.results import ResultMismatch
from mechanisms.base import MechanismStack

UPHELD = ("ResultsAccepted", "MediationAccepted")  # the client holds a result it accepted or a mediator upheld


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
            if "replicas" in deal and not d.exists and not await self.job_open(deal):
                return False  # opening (or a sibling opens it): agree at the next look (an unknown deal is read
                # at every poll)
            if not (d.exists and d.flags & 1):
                return await c.run(c.agree, t, self.address, known=d)
        elif d.state == S.DealAgreed and block > c.deadline(d):
            return await c.run(c.step, "timeout_submit", t, self.address, known=d)
        elif d.state == S.ResultsSubmitted:
            if "replicas" in deal and not await self.siblings_posted(deal, d, block):
                self.watch.wake(deal_id)  # a sibling's result may still come: look again at the next poll
                return False
            data = await self.judge(deal_id, deal, data)
            return await c.run(c.step, "check" if data["check"] else "accept", t, self.address, known=d)
        elif d.state == S.ResultsChecked and block > c.deadline(d):
            return await c.run(c.step, "timeout_mediate", t, self.address, known=d)
        return False

    # ---------------------------------------------------------------- replication: one job, several deals

    def replica_terms(self, deal: dict[str, Any]) -> list[Terms] | None:
        """The terms of the deal's job's replicas in replica order (None until the feed brought all of them)."""
        got = [self.store.get(i) for i in deal["replicas"]]
        return None if any(g is None for g in got) else [Terms(*g[1]["deal"]["terms"]) for g in got]

    async def job_open(self, deal: dict[str, Any]) -> bool:
        """Whether the deal's job is open on chain: the first replica's turn opens it (every replica's terms, in
        replica order) before anyone agrees, so each node sees the job it joins; the others wait for it."""
        c, ts = self.chain, self.replica_terms(deal)
        if ts is None:
            return False
        if (await c.run(c.replica, c.dep.deal_id(ts[deal["replica"]]))).job != 0:
            return True
        if deal["replica"] == 0:
            await c.run(c.open_job, self.address, ts)
        return False

    async def siblings_posted(self, deal: dict[str, Any], d: OnChain, block: int) -> bool:
        """Whether to judge a replica now: every replica of its job has posted or ended (their results can be
        compared), or half the judge window has passed (a silent replica must not cost the judge timeout)."""
        if block > d.since + self.chain.params.deadline_judge // 2:
            return True
        c = self.chain
        states = await asyncio.gather(*(c.run(c.deal, bytes.fromhex(i)) for i in deal["replicas"]))
        return all(s.exists and s.state not in (S.DealNegotiating, S.DealAgreed) for s in states)

    async def judge(self, deal_id: str, deal: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """Fetch and verify the result, then decide (once, stored) whether to check it: with replicas, by the
        stack's rule on all the results its job's nodes posted (replicas that disagree are checked)."""
        if "check" in data:
            return data
        posted = await self.chain.run(self.chain.posted_hash, bytes.fromhex(deal_id))
        verified = await self.verify(deal_id, deal, posted)
        t = Terms(*deal["terms"])
        ts = self.replica_terms(deal) if "replicas" in deal else [t]
        assert ts is not None  # its job was opened, so the feed brought every replica
        if len(ts) > 1:
            c = self.chain
            ids = [c.dep.deal_id(x) for x in ts]
            results = await c.run(c.revealed, ids)
            results[ids[deal["replica"]]] = posted
            results_in_order = [results.get(i) for i in ids]
        else:
            results_in_order = [posted]
        u = self.rng.random((len(ts), max(self.stack.draws_per_deal, 1)))
        batch = job_batch(ts, self.market, self.book[t.client], [self.book[x.node] for x in ts], self.stack, u)
        rate = client_actions(self.policy, int(self.store.get_value("jobs", 0)))
        checks = job_checks(batch, self.stack, rate, results_in_order)
        check = (not verified) or bool(checks[ts.index(t)])
        data = {**data, "verified": verified, "check": check, "judged_at": time.time()}
        self.store.put(deal_id, "open", data)
        return data

    async def verify(self, deal_id: str, deal: dict[str, Any], posted: bytes | None) -> bool:
        """Fetch the result from the deal's node and check it is the one posted on chain."""
        url = deal.get("node_url")
        if not url or posted is None:
            return False
        try:
            await self.fetch_result(url, deal_id, self.state_dir / f"{self.name}-results" / deal_id, posted.hex())
        except (TimeoutError, ResultMismatch, ClientError):
            return False
        return True

    def finish(self, deal_id: str, data: dict[str, Any], state: S) -> None:
        """The deal ended; its job is done once every replica has (the record names the replica whose result the
        client keeps: the first one upheld, and lists them all when there are several)."""
        self.store.put(deal_id, "done", {**data, "state": state.name})
        deal = data["deal"]
        job = deal["job_offer"]
        got = self.store.get(f"job:{job}")
        ids = deal.get("replicas", [deal_id])
        ends = [self.store.get(i) for i in ids]
        if got is None or got[0] == "done" or any(e is None or e[0] != "done" for e in ends):
            return
        rows = [
            {
                "deal_id": i,
                "state": e[1]["state"],
                "verified": e[1].get("verified", False),
                "checked": e[1].get("check", False),
            }
            for i, e in zip(ids, ends, strict=True)
        ]
        kept = next((r for r in rows if r["state"] in UPHELD), rows[0])
        rec = {**got[1], **kept, "finished_at": time.time(), **({"replicas": rows} if len(rows) > 1 else {})}
        self.store.put(f"job:{job}", "done", rec)
        self.done.setdefault(job, asyncio.Event()).set()


if __name__ == "__main__":  # python -m live.services.creator (configs/service.yaml)
    from live.services.cli import run

    run("creator")
