"""The resource provider service: posts offers, agrees, runs the job in Docker (or, if its behaviour says so,
posts a fake result without running it), keeps results in a content-addressed store for the retention window and
serves them, submits the result hash, and claims the judge timeout when a client goes silent.

Its behaviour is a `agents` policy (scripted or learned) acting through the node's action interface: per deal it
commits to a cheat rate and a bribe, and the deal's cheat decision is drawn from the service's own seeded stream
(stored, so a restart never redraws it). API: GET /results/<deal id> (the result archive), GET /health.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientError, web

from live.chain.binding import Terms
from live.executor import Capabilities, Executor
from live.modules import load_module
from live.modules.registry import DEFAULT_LOCK
from live.services.chainio import TERMINAL, ChainClient, OnChain, S
from live.services.learned import DealOutcome
from live.services.party import DealParty
from live.services.policy import LiveMarket, Policy, node_plan
from live.services.results import ResultMismatch, ResultStore

SWEEP_S = 1.0  # how often expired results are looked for


class Provider(DealParty):
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
        poll_s: float = 0.02,
        slots: int = 1,
        **kw: Any,
    ) -> None:
        super().__init__(name, state_dir, chain, address, solver_url, seed, **kw)
        if not (isinstance(slots, int) and slots >= 1):
            raise ValueError(f"slots={slots!r} is invalid: allowed a positive integer (jobs run at once)")
        self.slots = slots
        self.producing: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.executor, self.caps, self.policy, self.market = executor, caps, policy, market
        self.price, self.modules, self.trust = price, modules or [], trust or []
        self.lock, self.poll_s = lock, poll_s
        self.results = ResultStore(self.state_dir / f"{name}-results", retention_s)
        self.swept_at = 0.0  # a finished run also sets self.wake
        self.app.add_routes([web.get("/results/{deal}", self.get_result), web.get("/health", self.health)])

    async def start(self) -> Provider:
        await super().start()
        await self.post_json(f"{self.solver_url}/directory", {"address": self.address, "url": self.url})
        return self

    async def stop(self) -> None:
        for task in self.producing.values():  # a crash stops a run in flight; the restarted node runs it again
            task.cancel()
        for task in self.producing.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.producing.clear()
        await super().stop()

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
            self.wake.clear()
            await self.offer_while_free()
            # every open deal at once (one deal's receipt wait never holds up another's deadline), each only when
            # the head moved since it was read or its run finished
            await self.chain.run(self.watch.poll)
            due = [(k, data) for k, _, data in self.store.open_deals() if self.watch.due(k)]
            acted = any(await asyncio.gather(*(self.advance(k, data) for k, data in due)))
            if time.monotonic() - self.swept_at > SWEEP_S:
                self.results.sweep()
                self.swept_at = time.monotonic()
            if not acted:  # a step just taken may have unlocked the next one: look again at once
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a stop's cancel racing the wake
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        await self.wake.wait()

    async def offer_while_free(self) -> None:
        """Keep one open offer per free slot: `slots` jobs run at once, each offer a 1/slots share of the machine."""
        n = int(self.store.get_value("offers", 0))
        taken = set(self.store.get_value("offers_taken", []))
        open_offers = n - len(taken)
        running = sum(1 for _ in self.store.open_deals())
        share = [v // self.slots for v in self.caps.vector()]
        for k in range(n, n + max(0, self.slots - running - open_offers)):
            body = {
                "node": self.address,
                "offer_id": f"{self.name}-{k}",
                "capacity": dict(zip(("cpu", "gpu", "vram", "ram", "disk"), share, strict=True)),
                "price": self.price,
                "modules": self.modules,
                "trust": self.trust,
            }
            await self.post_json(f"{self.solver_url}/offers/resource", body)
            self.store.set_value("offers", k + 1)

    async def advance(self, deal_id: str, data: dict[str, Any]) -> bool:
        """One step of the node's side of a deal, from its state on chain (safe to repeat); True when it acted."""
        deal = data["deal"]
        offer = deal.get("resource_offer")
        if offer is not None and offer not in (taken := self.store.get_value("offers_taken", [])):
            self.store.set_value("offers_taken", [*taken, offer])
        t = Terms(*deal["terms"])
        c = self.chain
        d, block = await c.run(c.deal_and_block, bytes.fromhex(deal_id))
        self.watch.read(deal_id, d)
        if d.exists and d.state in TERMINAL:
            self.watch.forget(deal_id)
            outcome = DealOutcome(d.state, bool(data.get("cheat")), int(data.get("bribe") or 0), 0)
            await self.feedback(outcome)
            self.store.put(deal_id, "done", {**data, "state": d.state.name})
            self.producing.pop(deal_id, None)
            return False
        if not d.exists or d.state == S.DealNegotiating:
            if d.exists and block > c.deadline(d):
                return await c.run(c.step, "timeout_agree", t, self.address, known=d)
            self.start_producing(deal_id, deal, data)  # the run overlaps the agreement
            if "replicas" in deal and (await c.run(c.replica, bytes.fromhex(deal_id))).job == 0:
                return False  # a replica joins only the job it sees opened (agreeing first would block the open)
            if not d.flags & 2:
                return await c.run(c.agree, t, self.address, known=d)
        elif d.state == S.DealAgreed:
            task = self.start_producing(deal_id, deal, data)
            if not task.done() or task.cancelled() or task.exception() is not None:
                return False  # running (its end wakes this deal) or failed (started again on the next look)
            data = task.result()
            if block > c.deadline(d):
                return False
            if "replicas" in deal:
                return await self.post_replica(deal_id, deal, data, t, d, block)
            return await c.run(c.step, "submit", t, self.address, known=d, result_hash=bytes.fromhex(data["result_id"]))
        elif d.state == S.ResultsSubmitted and block > c.deadline(d):
            return await c.run(c.step, "timeout_judge", t, self.address, known=d)
        elif d.state == S.ResultsChecked:
            await self.maybe_bribe(deal_id, data)
            if block > c.deadline(d):
                return await c.run(c.step, "timeout_mediate", t, self.address, known=d)
        return False

    # ---------------------------------------------------------------- replication

    async def post_replica(
        self, deal_id: str, deal: dict[str, Any], data: dict[str, Any], t: Terms, d: OnChain, block: int
    ) -> bool:
        """Post a replica's result through the replication module: with commit-reveal commit its hash (salted)
        first and reveal once the job's reveals open; without, post it (a node that skipped the work posts a result
        another replica of its job already posted, as the twin's lazy replica copies)."""
        c = self.chain
        if not c.params.commit_reveal:
            if data["cheat"]:
                data = await self.copy_result(deal_id, deal, data, d, block)
                if data is None:
                    self.watch.wake(deal_id)  # waiting for a result to copy
                    return False
            return await c.run(c.step, "submit", t, self.address, known=d, result_hash=bytes.fromhex(data["result_id"]))
        if "salt" not in data:  # stored before the commit, so a restarted node can still reveal
            data = {**data, "salt": self.rng.bytes(32).hex()}
            self.store.put(deal_id, "open", data)
        result, salt = bytes.fromhex(data["result_id"]), bytes.fromhex(data["salt"])
        rep = await c.run(c.replica, bytes.fromhex(deal_id))
        opened, committed = await c.run(c.reveal_open, rep.job), rep.posted != bytes(32)
        if opened and committed:
            return await c.run(c.step, "reveal", t, self.address, known=d, result_hash=result, salt=salt)
        if opened:  # too late: a commit after the reveals opened is refused, and the submit timeout follows
            return False
        # the other replicas' commits or the commit window open the reveals: no event of the deal contract says
        # so, so look again at the next poll
        self.watch.wake(deal_id)
        if not committed:
            return await c.run(c.step, "commit", t, self.address, known=d, result_hash=result, salt=salt)
        return False

    async def copy_result(
        self, deal_id: str, deal: dict[str, Any], data: dict[str, Any], d: OnChain, block: int
    ) -> dict[str, Any] | None:
        """The result a node that skipped the work posts without commit-reveal: the first one another replica of
        its job posted (fetched from that replica's node, so it can serve it), else its own fake. A node that waits
        (the timing attack, `NodeActions.wait`) waits for one until half its submit window has passed (None)."""
        if "copied" in data:
            return data
        c = self.chain
        others = [bytes.fromhex(i) for i in deal["replicas"] if i != deal_id]
        posted = await c.run(c.revealed, others)
        source = next((o for o in others if o in posted), None)
        if source is None and data.get("wait") and block <= d.since + c.params.deadline_submit // 2:
            return None
        if source is not None:
            rid = posted[source].hex()
            with contextlib.suppress(ClientError, ResultMismatch, TimeoutError, RuntimeError):  # post the hash anyway
                rid = await self.copy_from(source.hex(), rid)
            data = {**data, "result_id": rid, "copied": source.hex()}
        else:
            data = {**data, "copied": None}
        self.store.put(deal_id, "open", data)
        return data

    async def copy_from(self, other: str, rid: str) -> str:
        """Another deal's posted result, fetched from its node and kept here (its id, verified)."""
        deal = await self.get_json(f"{self.solver_url}/deals/{other}")
        with tempfile.TemporaryDirectory() as tmp:
            return self.results.put(await self.fetch_result(deal["node_url"], other, Path(tmp) / "r", rid))

    def start_producing(self, deal_id: str, deal: dict[str, Any], data: dict[str, Any]) -> asyncio.Future[Any]:
        """The deal's result, produced once (a task, so the container runs while the parties agree)."""
        if "result_id" in data:
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(data)
            return done
        task = self.producing.get(deal_id)
        if task is not None and task.done() and (task.cancelled() or task.exception() is not None):
            task = None  # failed (e.g. the engine restarting): try again
        if task is None:
            task = self.producing[deal_id] = asyncio.ensure_future(self.produce(deal_id, deal, data))
            task.add_done_callback(lambda _: self._woken(deal_id))  # submit at once, not at the next block
        return task

    def _woken(self, deal_id: str) -> None:
        self.watch.wake(deal_id)
        self.wake.set()

    async def feedback(self, outcome: DealOutcome | None) -> None:
        """Tell a policy that learns from its record (`see`) the node's balance and a finished deal's outcome."""
        see = getattr(self.policy, "see", None)
        if see is not None:
            wealth = await self.chain.run(self.chain.dep.balance, self.address)
            see(None if outcome is None else dataclasses.replace(outcome, wealth=wealth), wealth)

    async def produce(self, deal_id: str, deal: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """The deal's result: a decision to cheat is drawn once (and stored); an honest node runs the container."""
        if "cheat" not in data:
            plan = node_plan(self.policy, int(self.store.get_value("offers", 0)))
            cheat, bribe = bool(self.rng.random() < plan.cheat_rate[0]), int(plan.bribe[0])
            data = {**data, "cheat": cheat, "bribe": bribe, "wait": bool(plan.wait[0])}
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
        got = self.store.get(deal_id)
        if got is not None and got[0] == "open":  # a deal that ended meanwhile stays ended
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
        """A cheating node offers its bribe (off chain, as in the twin) to the drawn mediator, or with a consortium
        to every seated panel member (the twin's briber may pay every seat): once to each, as each is reachable.
        Under whistleblowing the offer carries the node's EIP-712 signature over `Bribe(deal)`: what makes the offer
        credible to the mediator, and the proof the mediator may present against the node (`reportBribe`)."""
        if not data.get("cheat") or not data.get("bribe") or data.get("bribed"):
            return
        c, deal = self.chain, bytes.fromhex(deal_id)
        if c.params.consortium:
            members = await c.run(c.panel_of, deal)
        else:
            d = await c.run(c.deal, deal)
            members = [c.dep.mediators[d.mediator - 1]] if d.mediator else []
        if not members:
            return
        directory = await self.get_json(f"{self.solver_url}/directory")
        offered = list(data.get("bribed_to", []))
        body = {"deal": deal_id, "amount": data["bribe"], "node": self.address}
        if c.params.whistleblowing:
            typed = await c.run(c.dep.bribe_typed, deal)
            body["signature"] = "0x" + c.chain.signers[self.address].sign_typed(typed).hex()
        for m in members:
            if m not in offered and directory.get(m):
                await self.post_json(f"{directory[m]}/bribes", body)
                offered.append(m)
        self.store.put(deal_id, "open", {**data, "bribed_to": offered, "bribed": len(offered) == len(members)})
        if len(offered) < len(members):
            self.watch.wake(deal_id)  # look again for the members not reachable yet


if __name__ == "__main__":  # python -m live.services.provider (configs/service.yaml)
    from live.services.cli import run

    run("provider")
