"""The mediator service: watches the chain for deals whose check drew it, re-runs the job in Docker, compares the
result id with the hash the node posted and votes on chain. Its behaviour is an `agents` mediator policy: an
incorruptible one votes what the re-run shows; a bribable one votes for the node when the node's bribe reaches its
threshold (the bribe is offered off chain, POST /bribes, as the twin models it).

Under whistleblowing (WhistleModule, or ReplicationModule with it) a node's bribe offer carries its EIP-712
signature over `Bribe(deal)`; the mediator keeps it only when it recovers to the deal's node (else the offer is
refused, HTTP 400: it is not the node's). A bribable mediator whose policy reports (`MediatorActions.report`)
takes such a bribe and presents the signature instead of its verdict (`reportBribe`): the result is rejected and
it keeps `reward_bps` of the node's slashed results collateral. Without the mechanism, or an unsigned offer, a
bribed mediator votes for the node.

With the consortium deployed (PanelModule) the check seats a panel instead of one mediator: every seated member
watches its deal, and when its level votes (the first `size` seats, then each escalation's new seats) it re-runs
the job and calls `vote`, declaring the re-run; a bribed member votes for the node and declares no re-run (the
twin's bribed member does not re-run, so a slashed dissent keeps nothing). The contract tallies, escalates and
settles; a member that never votes leaves the deal to the mediation timeout, which either party claims.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from live.chain.binding import Terms
from live.executor import Executor
from live.modules import load_module
from live.modules.registry import DEFAULT_LOCK
from live.services.base import BadRequest, Service, need
from live.services.chainio import ChainClient, S
from live.services.keys import recover_typed
from live.services.learned import DealOutcome
from live.services.policy import Policy, mediator_actions
from live.services.results import is_result_id

SIGNATURE_HEX = 2 + 2 * 65  # "0x" + r, s, v


class Mediator(Service):
    role = "mediator"

    def __init__(
        self,
        name: str,
        state_dir: Path,
        chain: ChainClient,
        address: str,
        solver_url: str,
        executor: Executor,
        policy: Policy,
        lock: Path = DEFAULT_LOCK,
        poll_s: float = 0.05,
        **kw: Any,
    ) -> None:
        super().__init__(name, state_dir, **kw)
        self.chain, self.address, self.solver_url = chain, address, solver_url
        self.executor, self.policy, self.lock, self.poll_s = executor, policy, lock, poll_s
        self.app.add_routes([web.post("/bribes", self.post_bribe)])

    def loops(self) -> list[Callable[[], Awaitable[None]]]:
        return [self.watch_loop]

    async def start(self) -> Mediator:
        await super().start()
        await self.post_json(f"{self.solver_url}/directory", {"address": self.address, "url": self.url})
        await self.feedback(None)
        return self

    async def feedback(self, outcome: DealOutcome | None) -> None:
        """Tell a policy that learns from its record (`see`, a learned mediator) its balance at start (None), then
        each mediation it gave: its verdict as the deal's state, whether the re-run showed a wrong result, the bribe."""
        see = getattr(self.policy, "see", None)
        if see is not None:
            wealth = await self.chain.run(self.chain.dep.balance, self.address)
            see(None if outcome is None else dataclasses.replace(outcome, wealth=wealth), wealth)

    def decide(self, deal_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """The mediator's choices for this deal (threshold, report), taken once from its policy and stored, so a
        retried step never asks a learned policy twice."""
        if "threshold" not in data:
            n = int(self.store.get_value("decisions", 0))
            threshold, report = mediator_actions(self.policy, n)
            self.store.set_value("decisions", n + 1)
            data = {**data, "threshold": threshold, "report": report}
            self.store.put(deal_id, "open", data)
        return data

    async def settled(self, deal_id: str, data: dict[str, Any], accept: bool, honest: bool) -> None:
        """Record the verdict given (the deal's state follows) and tell the policy how it went."""
        self.store.put(deal_id, "open", data)
        state = S.MediationAccepted if accept else S.MediationRejected
        bribe = int(self.store.get_value(f"bribe:{deal_id}", 0))
        await self.feedback(DealOutcome(state, not honest, bribe, 0))

    async def post_bribe(self, req: web.Request) -> web.Response:
        """A node's bribe offer for a deal (kept once); under whistleblowing its signature, checked against the
        deal's node, is kept with it as the proof."""
        body = await req.json()
        deal = need(body, "deal", str, "a deal id (64 hex digits)", is_result_id)
        amount = need(body, "amount", int, "a positive integer", lambda v: 0 < v < 2**63)
        signature = None
        if "signature" in body:
            raw = need(body, "signature", str, "65 bytes as 0x hex (r, s, v)", _is_signature)
            if self.chain.params.whistleblowing:  # without the mechanism no module can check it: not kept
                signature = await self.check_signature(deal, bytes.fromhex(raw[2:]))
        if self.store.first_time(f"bribe:{deal}"):
            self.store.set_value(f"bribe:{deal}", amount)
            if signature is not None:
                self.store.set_value(f"bribe_signature:{deal}", signature.hex())
        return web.json_response({"ok": True})

    async def check_signature(self, deal: str, signature: bytes) -> bytes:
        """`signature` when it is the deal's node's over `Bribe(deal)` (the terms from the solver), else BadRequest:
        an offer signed by anyone else is not the node's, and the module would refuse it as a proof."""
        try:
            t = Terms(*(await self.get_json(f"{self.solver_url}/deals/{deal}"))["terms"])
        except RuntimeError:
            raise BadRequest("deal", deal, "a deal the solver published") from None
        c = self.chain
        typed = await c.run(c.dep.bribe_typed, bytes.fromhex(deal))
        try:
            signer = recover_typed(typed, signature)
        except ValueError:
            signer = None
        if signer != t.node or c.dep.deal_id(t).hex() != deal:
            raise BadRequest("signature", "0x" + signature.hex(), f"the deal's node {t.node} signing Bribe({deal})")
        return signature

    async def watch_loop(self) -> None:
        while True:
            c = self.chain
            since = int(self.store.get_value("from_block", c.dep.block))
            head = await c.run(c.block)
            drawn = c.panels if c.params.consortium else c.selected
            for deal_id, _ in await c.run(drawn, self.address, since):
                if self.store.get(deal_id.hex()) is None:
                    self.store.put(deal_id.hex(), "open", {})
            self.store.set_value("from_block", max(since, head - 1))
            for deal_id, _, data in list(self.store.open_deals()):
                await self.mediate(deal_id, data)
            await asyncio.sleep(self.poll_s)

    async def mediate(self, deal_id: str, data: dict[str, Any]) -> None:
        c = self.chain
        d = await c.run(c.deal, bytes.fromhex(deal_id))
        if d.state != S.ResultsChecked:
            self.store.put(deal_id, "done", {**data, "state": d.state.name})
            return
        deal = await self.get_json(f"{self.solver_url}/deals/{deal_id}")
        t = Terms(*deal["terms"])
        if c.params.consortium:
            await self.vote(deal_id, deal, t, data)
            return
        data = self.decide(deal_id, await self.rerun(deal_id, deal, data))
        honest = await self.honest(deal_id, data)
        # the twin's bribe buys only a wrong result's vote
        bribed = not honest and self.bribed(deal_id, data["threshold"])
        proof = self.store.get_value(f"bribe_signature:{deal_id}") if bribed and data["report"] else None
        if proof is not None:  # whistleblowing: the node's signed offer instead of the verdict
            kw = {"signature": bytes.fromhex(proof), "correct": bytes.fromhex(data["rerun"])}
            if await c.run(c.step, "report_bribe", t, self.address, **kw):
                await self.settled(deal_id, {**data, "accept": False, "bribed": True, "reported": True}, False, honest)
            else:  # refused on chain (the module is the judge): give the verdict at the next look
                self.store.set_value(f"bribe_signature:{deal_id}", None)
            return
        accept = honest or bribed
        # a rejection declares the correct result (the re-run's), which replication's prisoner's contract pays by
        correct = bytes.fromhex(data["rerun"])
        if await c.run(c.step, "mediate", t, self.address, accept=accept, correct=correct):
            await self.settled(deal_id, {**data, "accept": accept, "bribed": bribed}, accept, honest)

    async def vote(self, deal_id: str, deal: dict[str, Any], t: Terms, data: dict[str, Any]) -> None:
        """A panel member's turn: wait until its level votes, then vote once (the contract refuses a second)."""
        c = self.chain
        if not await c.run(c.may_vote, t, self.address):
            return  # a later level's seat (it may never vote), or already voted: the deal's state ends the watch
        data = self.decide(deal_id, await self.rerun(deal_id, deal, data))  # first, so a bribe meanwhile is seen
        # votes for the node and, as the twin's bribed member, declares no re-run
        bribed = self.bribed(deal_id, data["threshold"])
        honest = await self.honest(deal_id, data)
        accept, reran = (True, False) if bribed else (honest, True)
        if await c.run(c.step, "vote", t, self.address, accept=accept, reran=reran):
            await self.settled(deal_id, {**data, "accept": accept, "bribed": not reran}, accept, honest)

    async def rerun(self, deal_id: str, deal: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """The job re-run here once (its result id stored, so a restart does not run it again)."""
        if "rerun" not in data:
            spec = load_module(deal["module"], deal["inputs"], lock=self.lock)
            res = await asyncio.to_thread(self.executor.run, spec, f"m{deal_id}")
            data = {**data, "rerun": res.result_id}
            self.store.put(deal_id, "open", data)
        return data

    async def honest(self, deal_id: str, data: dict[str, Any]) -> bool:
        """Whether the node's posted hash is the re-run's result id."""
        posted = await self.chain.run(self.chain.posted_hash, bytes.fromhex(deal_id))
        return posted is not None and posted.hex() == data["rerun"]

    def bribed(self, deal_id: str, threshold: int) -> bool:
        """Whether the node's bribe for this deal reaches this mediator's threshold."""
        bribe = int(self.store.get_value(f"bribe:{deal_id}", 0))
        return bribe > 0 and bribe >= threshold


def _is_signature(v: str) -> bool:
    try:
        return v.startswith("0x") and len(v) == SIGNATURE_HEX and bool(bytes.fromhex(v[2:]))
    except ValueError:
        return False


if __name__ == "__main__":  # python -m live.services.mediator (configs/service.yaml)
    from live.services.cli import run

    run("mediator")
