"""The solver service: the order book. Resource providers post offers, job creators post jobs; each tick the
solver matches them with the twin's own rule (`sim.solver.match_reference` over `sim.offers` arrays, offers ranked
by the mechanism stack's `rank_offers`) and publishes each deal's terms (the parties then agree on chain, which
creates the deal; its id is the hash of the terms, so nobody can squat it).

API (JSON, loopback): POST /offers/resource, POST /offers/job, GET /deals?party=<address>, GET /deals/<id>,
POST /directory, GET /directory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from live.chain.binding import Terms
from live.modules import ModuleError, load_module
from live.modules.registry import DEFAULT_LOCK
from live.services.base import BadRequest, Service, need
from live.services.chainio import ChainClient
from live.services.layout import Layout
from live.services.policy import NO_MEDIATOR, LiveMarket, deal_of_one, rank_offers, stack_mediator
from mechanisms.base import MechanismStack
from sim.offers import JobOffers, ResourceOffers
from sim.solver import match_reference

RESOURCE_KEYS = ("cpu", "gpu", "vram", "ram", "disk")
MAX_U64 = 2**64 - 1
#: who draws a checked deal's mediator: the contract's beacon over every mediator both parties trust (`chain`), or
#: the mechanism stack's `select_mediators` at matching time, the terms then naming that one mediator (`stack`)
MEDIATOR_DRAWS = ("chain", "stack")
ADDRESS = "a checksummed address of a registered party"
MAX_WAIT_S = 10.0  # the longest a GET /deals long poll is held


class Solver(Service):
    role = "solver"

    def __init__(
        self,
        state_dir: Path,
        chain: ChainClient,
        stack: MechanismStack,
        market: LiveMarket,
        layout: Layout,
        lock: Path = DEFAULT_LOCK,
        tick_s: float = 0.05,
        mediator_draw: str = "chain",
        seed: int = 0,
        round_keeper: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__("solver", state_dir, **kw)
        self.round_keeper = round_keeper  # the account (its key in `chain`) that ends jackpot rounds
        if mediator_draw not in MEDIATOR_DRAWS:
            raise ValueError(f"mediator_draw={mediator_draw!r} is invalid: allowed one of {list(MEDIATOR_DRAWS)}")
        self.mediator_draw = mediator_draw
        self.rng = np.random.default_rng(np.random.SeedSequence(seed))
        self.chain, self.stack, self.market, self.layout = chain, stack, market, layout
        self.lock, self.tick_s = lock, tick_s
        self.book = layout.book
        self.replicas = stack.replicas  # deals bought per job, each from a different node (replication)
        self.wake = asyncio.Event()  # set by a new offer: match now
        self.published = asyncio.Event()  # set (and replaced) at every published deal: wakes the long polls
        self.app.add_routes(
            [
                web.post("/offers/resource", self.post_resource),
                web.post("/offers/job", self.post_job),
                web.get("/deals", self.list_deals),
                web.get("/deals/{id}", self.get_deal),
                web.post("/directory", self.register),
                web.get("/directory", self.directory),
            ]
        )

    def loops(self) -> list[Callable[[], Awaitable[None]]]:
        jackpot = self.chain.params.jackpot and self.round_keeper is not None
        return [self.match_loop, self.jackpot_loop] if jackpot else [self.match_loop]

    async def jackpot_loop(self) -> None:
        """End each jackpot round once it is due (tax_jackpot): the twin pays its jackpot at every round's end; on
        chain anyone may call `payJackpot` once per `round_blocks`, and the market's operator does."""
        assert self.round_keeper is not None
        while True:
            await self.chain.run(self.chain.pay_jackpot, self.round_keeper)
            await asyncio.sleep(self.tick_s)

    # ---------------------------------------------------------------- API

    async def register(self, req: web.Request) -> web.Response:
        body = await _body(req)
        address = need(body, "address", str, ADDRESS, lambda a: a in self.book)
        url = need(body, "url", str, "an http://127.0.0.1:<port> URL", lambda u: u.startswith("http://"))
        d = self.store.get_value("directory", {})
        d[address] = url
        self.store.set_value("directory", d)
        return web.json_response({"ok": True})

    async def directory(self, req: web.Request) -> web.Response:
        return web.json_response(self.store.get_value("directory", {}))

    async def post_resource(self, req: web.Request) -> web.Response:
        body = await _body(req)
        node = need(
            body, "node", str, "the address of a registered resource provider", lambda a: a in self.layout.nodes
        )
        offer_id = need(body, "offer_id", str, "a non-empty id", lambda s: 0 < len(s) <= 128)
        cap = need(body, "capacity", dict, f"a mapping with integer {list(RESOURCE_KEYS)}")
        capacity = [need(cap, k, int, "a non-negative integer", lambda v: 0 <= v <= MAX_U64) for k in RESOURCE_KEYS]
        price = need(body, "price", int, "an integer price per instruction in [1, 2^32]", lambda v: 1 <= v <= 2**32)
        modules = need(
            body,
            "modules",
            list,
            f"a list of module names of {self.market.module_names} ([] = any)",
            lambda m: all(x in self.market.module_names for x in m),
        )
        trust = _trust(body, self.market.config.n_mediators)
        mult = body.get("multiplier_bps", self.chain.params.base_multiplier_bps)
        try:
            self.chain.params.multiplier_of(mult)
        except (ValueError, TypeError):
            raise BadRequest(
                "multiplier_bps",
                mult,
                f"one of {list(self.chain.params.multipliers_bps or (self.chain.params.base_multiplier_bps,))}",
            ) from None
        key = f"res:{offer_id}"
        if self.store.get(key) is None:  # a replayed offer is the same offer
            allow = sum(1 << self.market.module_names.index(m) for m in modules)
            self.store.put(
                key,
                "open",
                {
                    "node": node,
                    "capacity": capacity,
                    "price": price,
                    "allow": allow,
                    "trust": trust,
                    "multiplier_bps": mult,
                    "arrival": self._arrival(),
                },
            )
        self.wake.set()
        return web.json_response({"offer_id": offer_id})

    async def post_job(self, req: web.Request) -> web.Response:
        body = await _body(req)
        client = need(
            body, "client", str, "the address of a registered job creator", lambda a: a in self.layout.clients
        )
        offer_id = need(body, "offer_id", str, "a non-empty id", lambda s: 0 < len(s) <= 128)
        ref = need(body, "module", str, "a module reference name:tag")
        inputs = need(body, "inputs", dict, "a mapping of input names to strings")
        try:
            module = self.market.module_index(ref)
            spec = load_module(ref, inputs, lock=self.lock)
        except (ModuleError, ValueError) as exc:
            raise BadRequest("module", ref, str(exc)) from None
        fixed = need(body, "fixed", bool, "true or false") if "fixed" in body else False
        max_price = (
            need(body, "max_price", int, "an integer in [0, 2^32]", lambda v: 0 <= v <= 2**32)
            if "max_price" in body
            else 0
        )
        trust = _trust(body, self.market.config.n_mediators)
        key = f"job:{offer_id}"
        if self.store.get(key) is None:
            self.store.put(
                key,
                "open",
                {
                    "client": client,
                    "module": module,
                    "ref": ref,
                    "inputs": inputs,
                    "needs": list(spec.machine.needs()),
                    "spec_id": spec.spec_id,
                    "fixed": fixed,
                    "max_price": max_price,
                    "trust": trust,
                    "arrival": self._arrival(),
                    "offer_id": offer_id,
                },
            )
        self.wake.set()
        return web.json_response({"offer_id": offer_id, "spec_id": spec.spec_id})

    async def list_deals(self, req: web.Request) -> web.Response:
        """The party's deals; with `known=N` only those after its first N, waiting up to `wait` seconds for one
        (a long poll: a party learns of its deal as it is published, without polling)."""
        party = req.query.get("party", "")
        if party not in self.book:
            raise BadRequest("party", party, ADDRESS)
        known = _query_number(req, "known", int, 0, 2**31, "a non-negative integer")
        wait = _query_number(req, "wait", float, 0.0, MAX_WAIT_S, f"seconds in [0, {MAX_WAIT_S}]")
        end = asyncio.get_running_loop().time() + wait
        while len(ids := self.store.get_value(f"by:{party}", [])) <= known:
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):  # not wait_for: on 3.11 it can swallow a cancel racing the wake
                    await self.published.wait()
        return web.json_response([self.store.get(f"deal:{i}")[1] for i in ids[known:]])

    async def get_deal(self, req: web.Request) -> web.Response:
        got = self.store.get(f"deal:{req.match_info['id']}")
        if got is None:
            raise web.HTTPNotFound(text='{"error": "unknown deal"}', content_type="application/json")
        return web.json_response(got[1])

    # ---------------------------------------------------------------- matching

    def _arrival(self) -> int:
        n = int(self.store.get_value("arrival", 0))
        self.store.set_value("arrival", n + 1)
        return n

    async def match_loop(self) -> None:
        """Match at once when an offer arrives, else every `tick_s` (a restarted solver's stored offers)."""
        while True:
            self.wake.clear()
            self.match_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.tick_s)

    def match_once(self) -> list[dict[str, Any]]:
        """Match the open offers (the twin's rule) and publish the deals; returns them."""
        rows = self.store.open_deals()
        jobs = [(k, d) for k, _, d in rows if k.startswith("job:")]
        res = [(k, d) for k, _, d in self.store.open_deals() if k.startswith("res:")]
        if not jobs or not res:
            return []
        r = self.replicas
        idx = np.repeat(np.arange(len(jobs)), r)  # each job once per replica it buys, as the twin posts them
        replica = np.tile(np.arange(r, dtype=np.int64), len(jobs))
        jo = JobOffers(
            client=idx,
            module=_col(jobs, "module")[idx],
            needs=np.array([d["needs"] for _, d in jobs])[idx],
            fixed=np.array([d["fixed"] for _, d in jobs])[idx],
            max_price=_col(jobs, "max_price")[idx],
            trust=_col(jobs, "trust")[idx],
            arrival=_col(jobs, "arrival")[idx] * r + replica,
            jtype=np.zeros(len(idx), dtype=np.int64),
            replica=replica,
            row=np.arange(len(idx)),
        )
        node_acc = np.array([self.book[d["node"]] for _, d in res], dtype=np.int64)
        ro = ResourceOffers(
            node=np.arange(len(res)),
            capacity=np.array([d["capacity"] for _, d in res]),
            price=_col(res, "price"),
            allow=_col(res, "allow"),
            trust=_col(res, "trust"),
            arrival=_col(res, "arrival"),
            rtype=np.zeros(len(res), dtype=np.int64),
        )
        rank = rank_offers(self.stack, node_acc, ro.price, self.market.n_agents)
        if r > 1:  # one offer per node, as each twin node offers once a round: a job's replicas get distinct nodes
            rank = np.where(best_per_node(node_acc, rank, ro.arrival), rank, -1)
        ro = ro.ranked(rank)
        matched = match_reference(jo, ro).reshape(len(jobs), r)
        out = []
        for j in np.flatnonzero((matched >= 0).all(axis=1)):  # a job waits until all its replicas can be bought
            offers = [res[int(ro.node[m])] for m in matched[j]]
            out.extend(self._publish(*jobs[j], offers))
        return out

    def _publish(self, jk: str, job: dict[str, Any], offers: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """The job's deals, one per matched offer in replica order (with replication the client opens them as one
        job before anyone agrees; `replicas` lists their ids)."""
        nonce = int(self.store.get_value("nonce", 1))
        self.store.set_value("nonce", nonce + len(offers))
        terms = [self._terms(job, offer, nonce + k) for k, (_, offer) in enumerate(offers)]
        ids = [self.chain.dep.deal_id(t).hex() for t in terms]
        d = self.store.get_value("directory", {})
        deals = []
        for k, ((rk, offer), t, deal_id) in enumerate(zip(offers, terms, ids, strict=True)):
            deal = {
                "deal_id": deal_id,
                "terms": list(t),
                "module": job["ref"],
                "inputs": job["inputs"],
                "spec_id": job["spec_id"],
                "job_offer": job["offer_id"],
                "resource_offer": rk.removeprefix("res:"),
                "node_url": d.get(offer["node"]),
                **({"replica": k, "replicas": ids} if self.chain.params.replication else {}),
            }
            self.store.put(f"deal:{deal_id}", "done", deal)
            for party in (t.client, t.node):
                known = self.store.get_value(f"by:{party}", [])
                self.store.set_value(f"by:{party}", [*known, deal_id])
            self.store.put(rk, "done", offer)
            deals.append(deal)
        self.store.put(jk, "done", job)
        self.published.set()
        self.published = asyncio.Event()
        return deals

    def _terms(self, job: dict[str, Any], offer: dict[str, Any], nonce: int) -> Terms:
        t = Terms(
            job["client"],
            offer["node"],
            offer["price"],
            self.market.instructions(job["module"]),
            offer["multiplier_bps"],
            job["module"],
            job["trust"] & offer["trust"],
            nonce,
        )
        return t._replace(mediators=self._stack_mask(t)) if self.mediator_draw == "stack" else t

    def _stack_mask(self, t: Terms) -> int:
        """The one-mediator trust mask of the stack's draw (the contract's draw over one bit is that mediator)."""
        u = self.rng.random(max(self.stack.draws_per_deal, 1))
        deal = deal_of_one(t, self.market, self.book[t.client], self.book[t.node], self.stack, u)
        k = stack_mediator(deal, self.stack)
        return 0 if k == NO_MEDIATOR else 1 << k


def best_per_node(node: np.ndarray, rank: np.ndarray, arrival: np.ndarray) -> np.ndarray:
    """Per offer: whether it is its node's best (cheapest effective price, then oldest; -1 ranks are withdrawn)."""
    order = np.lexsort((arrival, rank))
    order = order[rank[order] >= 0]
    _, first = np.unique(node[order], return_index=True)
    best = np.zeros(len(node), dtype=bool)
    best[order[first]] = True
    return best


def _query_number(req: web.Request, name: str, kind: type, low: float, high: float, allowed: str) -> Any:
    """Query parameter `name` as `kind` within [low, high] (`low` when absent), else BadRequest naming it."""
    raw = req.query.get(name)
    if raw is None:
        return kind(low)
    try:
        value = kind(raw)
    except ValueError:
        raise BadRequest(name, raw, allowed) from None
    if not low <= value <= high:
        raise BadRequest(name, raw, allowed)
    return value


def _col(rows: list[tuple[str, dict[str, Any]]], key: str) -> np.ndarray:
    return np.array([d[key] for _, d in rows], dtype=np.int64)


def _trust(body: Mapping[str, Any], n_mediators: int) -> int:
    """A trusted-mediator list ([] or missing = all) as the on-chain bit mask."""
    trust = body.get("trust", [])
    ok = isinstance(trust, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_mediators for i in trust
    )
    if not ok:
        raise BadRequest("trust", trust, f"a list of mediator indices in [0, {n_mediators - 1}] ([] = all)")
    return sum(1 << i for i in set(trust)) if trust else (1 << n_mediators) - 1


async def _body(req: web.Request) -> dict[str, Any]:
    try:
        body = await req.json()
    except ValueError:
        raise BadRequest("body", "<not JSON>", "a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("body", type(body).__name__, "a JSON object")
    return body


if __name__ == "__main__":  # python -m live.services.solver (configs/service.yaml)
    from live.services.cli import run

    run("solver")
