"""One service's connection to the chain: the deployment from its file, idempotent protocol calls, a block clock.

Services talk to an anvil node the network (or the operator) started; this module never starts one. Each service
signs with its own key only (`live.services.keys`; the node unlocks nothing) and keeps many transactions in flight:
nonces are counted locally (re-read from the node whenever none is in flight, so a restarted node is followed), and
each call waits only for its own receipt (blocks are mined by the `BlockClock`, so a deadline of N blocks is N block
times long). Every protocol call first reads the deal on chain and does nothing when the step is already done or no
longer possible, so a retried or replayed call never acts twice; a call that loses a race (both parties timing out
at once) is reported as not applied, never as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from eth_abi import decode
from web3 import Web3

from contracts.build import load
from live.chain.binding import Deployment, Terms
from live.chain.node import AnvilChain, ChainError, RpcTransport
from live.chain.params import ChainParams
from live.services.keys import Key
from mechanisms.protocol import DealState

log = logging.getLogger(__name__)
S = DealState
RECEIPT_S = 60.0  # a transaction not mined by then is given up (the step is retried; it never acts twice)
RECEIPT_POLL_MAX_S = 0.04  # receipt polls back off from the client's poll_s to this
CLIENT_AGREED, NODE_AGREED = 1, 2
JACKPOT = "0x000000000000000000000000006a61636B706F74"  # JackpotModule.JACKPOT: the pool's keyless account
#: step -> (state the deal must be in, state it moves to when the step succeeds)
STEPS: dict[str, tuple[DealState, tuple[DealState, ...]]] = {
    "submit": (S.DealAgreed, (S.ResultsSubmitted,)),
    "accept": (S.ResultsSubmitted, (S.ResultsAccepted,)),
    "check": (S.ResultsSubmitted, (S.ResultsChecked,)),
    "mediate": (S.ResultsChecked, (S.MediationAccepted, S.MediationRejected)),
    "vote": (S.ResultsChecked, (S.ResultsChecked, S.MediationAccepted, S.MediationRejected)),
    "commit": (S.DealAgreed, (S.DealAgreed,)),
    "reveal": (S.DealAgreed, (S.ResultsSubmitted,)),
    "report_bribe": (S.ResultsChecked, (S.MediationRejected,)),  # whistleblowing: the bribed mediator's proof
    "timeout_agree": (S.DealNegotiating, (S.TimeoutAgree,)),
    "timeout_submit": (S.DealAgreed, (S.TimeoutSubmitResults,)),
    "timeout_judge": (S.ResultsSubmitted, (S.TimeoutJudgeResults,)),
    "timeout_mediate": (S.ResultsChecked, (S.TimeoutMediateResults,)),
}
DEADLINE_OF = {
    S.DealNegotiating: "deadline_agree",
    S.DealAgreed: "deadline_submit",
    S.ResultsSubmitted: "deadline_judge",
    S.ResultsChecked: "deadline_mediate",
}
TERMINAL = frozenset(
    {
        S.ResultsAccepted,
        S.MediationAccepted,
        S.MediationRejected,
        S.TimeoutAgree,
        S.TimeoutSubmitResults,
        S.TimeoutJudgeResults,
        S.TimeoutMediateResults,
    }
)


class RemoteAnvil(AnvilChain):
    """An anvil node someone else started (at `url`): the same JSON-RPC surface, and `close` leaves it running."""

    def __init__(self, url: str) -> None:
        self.url, self.proc = url, None
        self.transport = RpcTransport(url)
        self._id = 0
        self.w3 = Web3(Web3.HTTPProvider(url))
        self.accounts = [Web3.to_checksum_address(a) for a in self.rpc("eth_accounts")]
        self.signers = {}


def load_deployment(record: Mapping[str, Any], chain: AnvilChain) -> Deployment:
    """The `Deployment` a deployment file (`live.deploy`) describes, bound to `chain`."""
    arts = load()
    c = record["contracts"]
    p = dict(record["params"])
    p["multipliers_bps"] = tuple(p["multipliers_bps"])
    beacon = "PrevrandaoBeacon" if record["beacon"] == "prevrandao" else "ScriptedBeacon"
    w3 = chain.w3
    return Deployment(
        chain,
        ChainParams(**p),
        w3.eth.contract(address=c["token"], abi=arts["Token"].abi),
        w3.eth.contract(address=c["deals"], abi=arts["Deals"].abi),
        w3.eth.contract(address=c["beacon"], abi=arts[beacon].abi),
        record["beacon"],
        list(record["mediators"]),
        record["protocol_treasury"],
        record["deployer"],
        int(record["block"]),
        replication=_module(w3, arts, c.get("replication"), "ReplicationModule"),
        whistle=_module(w3, arts, c.get("whistleblowing"), "WhistleModule"),
    )


def _module(w3: Web3, arts: Mapping[str, Any], address: str | None, artifact: str) -> Any:
    """The deployed module contract in the deal contract's module slot (None when the record has none)."""
    return None if address is None else w3.eth.contract(address=address, abi=arts[artifact].abi)


def read_record(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


@dataclass(frozen=True)
class OnChain:
    """What the contract stores of a deal."""

    state: DealState
    flags: int
    mediator: int  # registry index + 1; 0 = none
    since: int  # block of the last state change (0 = unknown deal)
    escrow: int

    @property
    def exists(self) -> bool:
        return self.since != 0


@dataclass(frozen=True)
class Replica:
    """What the replication module stores of a replica deal."""

    node: str
    revealed: bool
    job: int  # 0: in no job
    posted: bytes  # the commitment until the reveal, then the result (zeros: nothing yet)


class ChainClient:
    """A service's chain access: reads, and the protocol steps as idempotent async calls."""

    def __init__(self, url: str, record: Mapping[str, Any], keys: Sequence[Key] = (), poll_s: float = 0.01) -> None:
        self.chain = RemoteAnvil(url)
        self.chain.signers = {k.address: k for k in keys}  # this service's own keys only
        self.dep = load_deployment(record, self.chain)
        self.params = self.dep.params
        self.poll_s = poll_s
        self.gas: dict[str, list[int]] = {}  # step -> gas used by each of this client's transactions
        self._lock = threading.Lock()
        item = next(i for i in self.dep.deals.abi if i.get("type") == "function" and i.get("name") == "deals")
        self._deal_types = [o["type"] for o in item["outputs"]]
        self._nonce: dict[str, int] = {}  # sender -> next nonce
        self._in_flight: dict[str, int] = {}  # sender -> transactions sent, receipt not seen yet

    # ---------------------------------------------------------------- reads (blocking; wrap with `run`)

    def deal(self, deal_id: bytes) -> OnChain:
        """The deal as stored (one raw eth_call: web3's contract call would add a chain-id request and ABI checks)."""
        (raw,) = self.chain.batch([self._deal_call(deal_id)])
        return self._on_chain(raw)

    def deal_and_block(self, deal_id: bytes) -> tuple[OnChain, int]:
        """The deal and the head block number in one request (what every step of a service's deal loop reads)."""
        raw, head = self.chain.batch([self._deal_call(deal_id), ("eth_blockNumber", [])])
        return self._on_chain(raw), int(head, 16)

    def _deal_call(self, deal_id: bytes) -> tuple[str, list[Any]]:
        call = self.dep.tx(self.dep.deployer, "deals", deal_id)
        return "eth_call", [{"to": call["to"], "data": call["data"]}, "latest"]

    def _on_chain(self, raw: str) -> OnChain:
        s, flags, med, since, escrow = decode(self._deal_types, bytes.fromhex(raw[2:]))
        return OnChain(DealState(int(s)), int(flags), int(med), int(since), int(escrow))

    def block(self) -> int:
        return int(self.chain.rpc("eth_blockNumber"), 16)

    def deadline(self, d: OnChain) -> int | None:
        """Last block in which the deal's current phase may still be acted on (None when terminal)."""
        name = DEADLINE_OF.get(d.state)
        return None if name is None else d.since + int(getattr(self.params, name))

    def posted_hash(self, deal_id: bytes) -> bytes | None:
        """The result hash the node posted (from its ResultsPosted event)."""
        topic = Web3.keccak(text="ResultsPosted(bytes32,bytes32,uint64)")
        flt = {
            "address": self.dep.deals.address,
            "fromBlock": hex(self.dep.block),
            "toBlock": "latest",
            "topics": ["0x" + topic.hex(), "0x" + deal_id.hex()],
        }
        logs = self.chain.rpc("eth_getLogs", flt)
        return bytes.fromhex(logs[-1]["data"][2:66]) if logs else None

    def selected(self, mediator: str, from_block: int) -> list[tuple[bytes, int]]:
        """(deal id, block) of every MediatorSelected event naming `mediator` since `from_block`."""
        topic = Web3.keccak(text="MediatorSelected(bytes32,address)")
        flt = {
            "address": self.dep.deals.address,
            "fromBlock": hex(from_block),
            "toBlock": "latest",
            "topics": ["0x" + topic.hex()],
        }
        out = []
        for lg in self.chain.rpc("eth_getLogs", flt):
            if Web3.to_checksum_address("0x" + lg["data"][26:66]) == mediator:
                out.append((bytes.fromhex(lg["topics"][1][2:]), int(lg["blockNumber"], 16)))
        return out

    def panels(self, member: str, from_block: int) -> list[tuple[bytes, list[str]]]:
        """(deal id, seated members in seat order) of every PanelDrawn event seating `member` since `from_block`."""
        return [(d, m) for d, m in self._panel_logs(from_block, None) if member in m]

    def panel_of(self, deal_id: bytes) -> list[str]:
        """The members seated for a checked deal, in seat order ([] before its check or without panels)."""
        got = self._panel_logs(self.dep.block, deal_id)
        return got[-1][1] if got else []

    def _panel_logs(self, from_block: int, deal_id: bytes | None) -> list[tuple[bytes, list[str]]]:
        topics = ["0x" + Web3.keccak(text="PanelDrawn(bytes32,address[])").hex()]
        if deal_id is not None:
            topics.append("0x" + deal_id.hex())
        flt = {"address": self.dep.deals.address, "fromBlock": hex(from_block), "toBlock": "latest", "topics": topics}
        out = []
        for lg in self.chain.rpc("eth_getLogs", flt):
            (members,) = decode(["address[]"], bytes.fromhex(lg["data"][2:]))
            out.append((bytes.fromhex(lg["topics"][1][2:]), [Web3.to_checksum_address(a) for a in members]))
        return out

    def may_vote(self, t: Terms, member: str) -> bool:
        """Whether `member` may vote on the deal now: seated in the level now voting, not voted yet, in time (the
        contract's own checks, run as a call: a member of a later level waits for an escalation)."""
        if self.deal(self.dep.deal_id(t)).state != S.ResultsChecked:
            return False
        return self.dep.revert_of(self.dep.vote(t, member, True, True)) is None

    def jackpot_due(self) -> bool:
        """Whether a jackpot round should end now: the round is long enough and it has claims to pay or taxes that
        the next round's claims would share (ending an empty round changes nothing, so it is skipped)."""
        if not self.params.jackpot:
            return False
        dep = self.dep
        reads = [("roundStartBlock",), ("roundStartPool",), ("pendingClaims",), ("balanceOf", JACKPOT)]
        raw = self.chain.call_many([dep.tx(dep.deployer, fn, *args) for fn, *args in reads])
        start_block, start_pool, claims, pool = (int.from_bytes(r[:32], "big") for r in raw)
        return self.block() >= start_block + self.params.round_blocks and (claims > 0 or pool != start_pool)

    def pay_jackpot(self, sender: str) -> bool:
        """End the jackpot round (`payJackpot`) when one is due; True when this call ended it (a call that loses a
        race with another ender is not applied)."""
        if not self.jackpot_due():
            return False
        tx = self.dep.pay_jackpot(sender)
        if self.send(tx, "pay_jackpot")["status"] == 1:
            return True
        log.info("pay_jackpot not applied: %s", self.dep.revert_of(tx))
        return False

    # ---------------------------------------------------------------- replication (ReplicationModule)

    def replica(self, deal_id: bytes) -> Replica:
        """What the replication module holds of a deal (job 0: the deal belongs to no job, e.g. not opened yet)."""
        dep = self.dep
        (raw,) = self.chain.call_many([dep.tx(dep.deployer, "replicaOf", deal_id, contract=dep.replication_module())])
        node, revealed, job, posted = decode(["address", "bool", "uint64", "bytes32"], raw)
        return Replica(Web3.to_checksum_address(node), bool(revealed), int(job), bytes(posted))

    def reveal_open(self, job: int) -> bool:
        """Whether the job's reveals are open (every replica committed, or its commit window passed)."""
        dep = self.dep
        (raw,) = self.chain.call_many([dep.tx(dep.deployer, "revealOpen", job, contract=dep.replication_module())])
        return bool(int.from_bytes(raw[:32], "big"))

    def revealed(self, deal_ids: Sequence[bytes]) -> dict[bytes, bytes]:
        """deal id -> the result its node posted through the replication module (Revealed events), for `deal_ids`."""
        topic = "0x" + Web3.keccak(text="Revealed(bytes32,bytes32)").hex()
        flt = {
            "address": self.dep.replication_module().address,
            "fromBlock": hex(self.dep.block),
            "toBlock": "latest",
            "topics": [topic, ["0x" + d.hex() for d in deal_ids]],
        }
        logs = self.chain.rpc("eth_getLogs", flt)
        return {bytes.fromhex(lg["topics"][1][2:]): bytes.fromhex(lg["data"][2:66]) for lg in logs}

    def open_job(self, client: str, replicas: Sequence[Terms]) -> bool:
        """Open the job of `replicas` (in replica order) unless it is open already; True when this call opened it."""
        if self.replica(self.dep.deal_id(replicas[0])).job != 0:
            return False
        return self._step(self.dep.open_job(client, replicas), "open", replicas[0])

    # ---------------------------------------------------------------- writes

    def send(self, tx: dict[str, Any], label: str) -> dict[str, Any]:
        """Send one transaction from this service's account and wait for its receipt (mined by the clock)."""
        sender = tx["from"]
        with self._lock:  # explicit nonces: many transactions of one sender in flight at once
            if not self._in_flight.get(sender):
                self._nonce[sender] = int(self.chain.rpc("eth_getTransactionCount", sender, "pending"), 16)
            method, params = self.chain.send_call(tx, self._nonce[sender])
            h = self.chain.rpc(method, *params)
            self._nonce[sender] += 1
            self._in_flight[sender] = self._in_flight.get(sender, 0) + 1
        try:
            end, wait = time.monotonic() + RECEIPT_S, self.poll_s
            while (r := self.chain.rpc("eth_getTransactionReceipt", h)) is None:
                if time.monotonic() > end:
                    raise ChainError(f"{label} from {sender} not mined within {RECEIPT_S} s")
                time.sleep(wait)
                wait = min(2 * wait, RECEIPT_POLL_MAX_S)  # a block may be a clock tick away: ask less often
        finally:
            with self._lock:
                self._in_flight[sender] -= 1
        receipt = {**r, "status": int(r["status"], 16), "gasUsed": int(r["gasUsed"], 16)}
        if receipt["status"] == 1:
            self.gas.setdefault(label, []).append(receipt["gasUsed"])
        return receipt

    def setup_account(self, account: str, allowance: int = 2**255) -> None:
        """Let the deal contract pull this account's tokens for escrows (once; skipped when already allowed)."""
        if int(self.dep.token.functions.allowance(account, self.dep.deals.address).call()) < allowance // 2:
            self._must(self.dep.approve(account, allowance), "approve")

    def _must(self, tx: dict[str, Any], label: str) -> None:
        if self.send(tx, label)["status"] != 1:
            raise ChainError(f"{label} from {tx['from']} failed: {self.dep.revert_of(tx)}")

    def agree(self, t: Terms, sender: str, known: OnChain | None = None) -> bool:
        """Agree to `t` as `sender` unless it already did or the deal moved on; True when this call agreed.
        `known`: the deal as the caller just read it (saves a read; a stale one only costs a reverted call, which
        the contract refuses and this reports as not applied)."""
        d = known if known is not None else self.deal(self.dep.deal_id(t))
        bit = CLIENT_AGREED if sender == t.client else NODE_AGREED
        if d.exists and (d.state != S.DealNegotiating or d.flags & bit):
            return False
        return self._step(self.dep.agree(t, sender), "agree", t)

    def step(self, name: str, t: Terms, sender: str, known: OnChain | None = None, **kw: Any) -> bool:
        """Protocol step `name` (see STEPS) unless the deal is no longer in its state; True when this call did it.
        `known`: as for `agree`."""
        need, _ = STEPS[name]
        d = known if known is not None else self.deal(self.dep.deal_id(t))
        if not d.exists or d.state != need:
            return False
        if name == "submit":  # through the module in the deal contract's module slot when one is deployed
            tx = self.dep.post(t, kw["result_hash"])
        elif name == "commit":
            tx = self.dep.commit(t, kw["result_hash"], kw["salt"])
        elif name == "reveal":
            tx = self.dep.reveal(t, kw["result_hash"], kw["salt"])
        elif name == "accept":
            tx = self.dep.accept(t)
        elif name == "check":
            tx = self.dep.check(t)
        elif name == "mediate":
            tx = self.dep.mediate(t, sender, kw["accept"], kw.get("correct", bytes(32)))
        elif name == "vote":
            tx = self.dep.vote(t, sender, kw["accept"], kw["reran"])
        elif name == "report_bribe":  # instead of the verdict; `correct` is read only by ReplicationModule
            tx = self.dep.report_bribe(t, sender, kw["signature"], kw.get("correct", bytes(32)))
        else:
            tx = self.dep.timeout(name.removeprefix("timeout_"), t, sender)
        return self._step(tx, name, t)

    def _step(self, tx: dict[str, Any], label: str, t: Terms) -> bool:
        if self.send(tx, label)["status"] == 1:
            return True
        err = self.dep.revert_of(tx)
        log.info("%s on deal %s not applied: %s", label, self.dep.deal_id(t).hex()[:12], err)
        return False

    async def run(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """Run a blocking chain call in a worker thread, so the service's event loop keeps serving."""
        return await asyncio.to_thread(fn, *args, **kw)

    def close(self) -> None:
        self.chain.close()


class DealWatch:
    """Which of a service's open deals to read again. A deal's state changes on chain only through an event of
    that deal (DealCreated, StateChanged), so each poll asks for the head and the events since the last poll in one
    request, and a deal is read again only when it has an event, its phase's deadline has passed (a timeout may be
    claimed), a local event woke it (its container finished), or it was never read: one request per poll for the
    whole service instead of one read per open deal per poll."""

    TOPICS = (
        "0x"
        + Web3.keccak(text="DealCreated(bytes32,(address,address,uint64,uint64,uint32,uint32,uint64,uint64))").hex(),
        "0x" + Web3.keccak(text="StateChanged(bytes32,uint8,uint256[])").hex(),
    )

    def __init__(self, chain: ChainClient) -> None:
        self.chain = chain
        self.scanned: int | None = None  # the last block whose events were asked for
        self.head = 0
        self.deadline: dict[str, int | None] = {}  # deal -> its phase's last block when last read (None: terminal)
        self.since: dict[str, int] = {}  # deal -> block of its last state change when last read
        self.due_now: set[str] = set()

    def poll(self) -> int:
        """Read the head and the events since the last poll (blocking: run it in a worker thread). The last poll's
        block is asked again (asking past the head is an error); an event no newer than a deal's read is skipped."""
        c = self.chain
        start = c.dep.block if self.scanned is None else self.scanned
        flt = {
            "address": c.dep.deals.address,
            "fromBlock": hex(start),
            "toBlock": "latest",
            "topics": [list(self.TOPICS)],
        }
        try:
            head_hex, logs = c.chain.batch([("eth_blockNumber", []), ("eth_getLogs", [flt])])
        except ChainError:  # a chain node restarted behind the last poll: read every deal again
            self.scanned = None
            self.deadline.clear()
            raise
        for lg in logs:
            deal = lg["topics"][1][2:]
            if int(lg["blockNumber"], 16) > self.since.get(deal, -1):
                self.due_now.add(deal)
        self.scanned = self.head = int(head_hex, 16)
        return self.head

    def due(self, deal_id: str) -> bool:
        if deal_id in self.due_now or deal_id not in self.deadline:
            return True
        last = self.deadline[deal_id]
        return last is not None and self.head > last

    def read(self, deal_id: str, d: OnChain) -> None:
        """The deal was just read as `d`."""
        self.deadline[deal_id] = self.chain.deadline(d) if d.exists else -1  # an unknown deal: read it every poll
        self.since[deal_id] = d.since
        self.due_now.discard(deal_id)

    def wake(self, deal_id: str) -> None:
        self.due_now.add(deal_id)

    def forget(self, deal_id: str) -> None:
        self.deadline.pop(deal_id, None)
        self.since.pop(deal_id, None)
        self.due_now.discard(deal_id)


class BlockClock:
    """Mines one block every `block_s` seconds: the network's clock, so deadlines (in blocks) are real time."""

    def __init__(self, url: str, block_s: float) -> None:
        if block_s <= 0:
            raise ValueError(f"block_s={block_s} is invalid: allowed a positive number of seconds")
        self.url, self.block_s = url, block_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> BlockClock:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="block-clock", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        chain = RemoteAnvil(self.url)
        next_t = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(requests.ConnectionError, ChainError):  # a restarting node: keep ticking
                chain.rpc("evm_mine")
            next_t += self.block_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))
        chain.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
