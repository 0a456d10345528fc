"""The two chains one suite runs on: the embedded eth-tester/py-evm chain and an anvil node the project starts.

Both expose the same small surface: a `Web3`, the chain's own unlocked dev accounts (no private key ever leaves the
chain or this process), `send` for many transactions mined into one block (deals of a whole round share blocks),
`mine` to let deadlines pass, snapshots, and for anvil a state dump/load so a restarted node resumes where it was.
Every receipt's status is checked: a failed transaction can still be mined.
"""

from __future__ import annotations

import ast
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from web3 import Web3

from contracts.build import NODE_MODULES

ANVIL = NODE_MODULES / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
CHAINS = ("embedded", "anvil")
TX_GAS = 5_000_000  # gas limit per transaction (explicit, so sending never waits for an estimate)
MAX_FEE = 2**40  # wei per gas a locally signed transaction may pay at most (dev chains: the base fee is far below)
DEV_BALANCE_ETH = 10**6


class ChainError(RuntimeError):
    """A transaction failed (status 0) or the node misbehaved; the message names the transaction."""


class Chain(ABC):
    """Common surface of the two chains."""

    name: str
    w3: Web3
    accounts: list[str]
    blocks_per_tx = 0  # blocks a transaction of `send` adds beyond the batch's one block

    @abstractmethod
    def send(self, txs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send `txs` ({from, to, data}), mine them into one block, return their receipts (all must succeed)."""
        ...

    @abstractmethod
    def mine(self, blocks: int = 1) -> None: ...

    def logs(self, address: str, from_block: int, to_block: int | str) -> list[tuple[list[bytes], bytes, int]]:
        """(topics, data, block) of every log `address` emitted in the block range, in order."""
        flt = {"address": address, "fromBlock": from_block, "toBlock": to_block}
        return [
            ([bytes(t) for t in lg["topics"]], bytes(lg["data"]), int(lg["blockNumber"]))
            for lg in self.w3.eth.get_logs(flt)
        ]

    def call_many(self, txs: Sequence[dict[str, Any]]) -> list[bytes]:
        """The return data of each call (eth_call at the latest block)."""
        return [bytes(self.w3.eth.call({k: v for k, v in tx.items() if k in ("from", "to", "data")})) for tx in txs]

    @abstractmethod
    def sign_typed(self, signer: str, typed: dict[str, Any]) -> bytes:
        """`signer`'s EIP-712 signature of the eth_signTypedData_v4 message `typed` (its key stays in the chain)."""
        ...

    @abstractmethod
    def revert_data(self, tx: dict[str, Any]) -> bytes | None:
        """The revert data `tx` would produce in the next block (b"" for a bare revert), or None if it would succeed."""
        ...

    @abstractmethod
    def snapshot(self) -> Any: ...

    @abstractmethod
    def revert(self, snap: Any) -> None: ...

    def close(self) -> None:  # noqa: B027 (a chain with nothing to release keeps this no-op)
        """Release the chain (stop the node)."""

    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check(receipts: list[dict[str, Any]], txs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    for i, (r, tx) in enumerate(zip(receipts, txs, strict=True)):
        if r is None:
            raise ChainError(f"transaction {i} of the batch was not mined (from {tx.get('from')})")
        if int(r["status"]) != 1:
            raise ChainError(
                f"transaction {i} of the batch failed (status 0): from {tx.get('from')} to {tx.get('to')}"
                f" data {str(tx.get('data'))[:10]}"
            )
    return receipts


class EmbeddedChain(Chain):
    """eth-tester with py-evm, in this process. It mines every transaction into its own block (its pending block
    cannot hold two transactions of one sender), so `send` advances the chain by one block per transaction and a
    caller replaying many deals keeps its batches shorter than the deadlines (`blocks_per_tx`)."""

    name = "embedded"
    blocks_per_tx = 1

    def __init__(self, n_accounts: int = 20) -> None:
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider

        state = PyEVMBackend.generate_genesis_state(num_accounts=n_accounts)
        self.tester = EthereumTester(PyEVMBackend(genesis_state=state))
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        self.accounts = [Web3.to_checksum_address(a) for a in self.tester.get_accounts()]

    def send(self, txs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        hashes = [self.tester.send_transaction({"gas": TX_GAS, "value": 0, **tx}) for tx in txs]
        return _check([dict(self.w3.eth.get_transaction_receipt(h)) for h in hashes], txs)

    def mine(self, blocks: int = 1) -> None:
        self.tester.mine_blocks(blocks)

    def revert_data(self, tx: dict[str, Any]) -> bytes | None:
        from eth_tester.exceptions import TransactionFailed

        try:
            self.tester.call({k: v for k, v in tx.items() if k in ("from", "to", "data")}, "pending")
        except TransactionFailed as exc:  # py-evm reports the revert data as the repr of its bytes
            data = exc.args[0] if exc.args else b""
            if isinstance(data, str) and data.startswith(("b'", 'b"')):
                data = ast.literal_eval(data)
            return data if isinstance(data, bytes) else b""
        return None

    def sign_typed(self, signer: str, typed: dict[str, Any]) -> bytes:
        from eth_account import Account
        from eth_account.messages import encode_typed_data

        key = self.tester.backend.account_keys[self.accounts.index(signer)]
        return bytes(Account.sign_message(encode_typed_data(full_message=typed), key).signature)

    def snapshot(self) -> Any:
        return self.tester.take_snapshot()

    def revert(self, snap: Any) -> None:
        self.tester.revert_to_snapshot(snap)


class RpcTransport:
    """JSON-RPC over HTTP on a small pool of keep-alive connections (http.client): one per request in flight at
    once, reused after. The services call the node from many worker threads, thousands of times per run; requests
    spent most of a call's CPU on its session machinery (settings merges, environment lookups), this spends it on
    the request itself. A broken connection (the node restarting) is dropped and the call fails with ChainError; the
    next call connects again."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url={url!r} is invalid: allowed http(s)://host[:port][/path]")
        self.https, self.host, self.port = parts.scheme == "https", parts.hostname, parts.port
        self.path = parts.path or "/"
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def post(self, body: Any, timeout: float = 600.0) -> Any:
        """POST `body` as JSON; the decoded reply."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = kind(self.host, self.port, timeout=timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        try:
            conn.request("POST", self.path, json.dumps(body), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ChainError(f"JSON-RPC to {self.host}:{self.port} failed: {type(exc).__name__}: {exc}") from exc
        with self._lock:
            self._idle.append(conn)
        if resp.status != 200:
            raise ChainError(f"JSON-RPC to {self.host}:{self.port}: HTTP {resp.status}: {data[:200]!r}")
        return json.loads(data)

    def close(self) -> None:
        """Close the idle connections (one in use is closed by its caller's error, or by the garbage collector)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class AnvilChain(Chain):
    """An anvil node from the pinned npm package, on a free loopback port, stopped by `close` (or at exit of a
    `with` block). Mining is manual: `send` posts a whole batch with one JSON-RPC request and mines one block."""

    name = "anvil"

    def __init__(
        self,
        n_accounts: int = 20,
        state: str | os.PathLike[str] | None = None,
        startup_s: float = 20.0,
        port: int | None = None,
    ) -> None:
        if not ANVIL.is_file():
            raise ChainError(f"anvil binary missing at {ANVIL}; run `make setup` (npm ci)")
        args = [
            str(ANVIL),
            "--host",
            "127.0.0.1",
            "--port",
            # the OS picks a free port and anvil prints it (no race with other nodes started at the same time); a
            # restarted node asks for its old port again so its clients keep their address
            "0" if port is None else str(port),
            "--accounts",
            str(n_accounts),
            "--balance",
            str(DEV_BALANCE_ETH),
            "--hardfork",
            "cancun",
            "--no-mining",
            "--disable-block-gas-limit",
            "--order",
            "fifo",
            "--chain-id",
            "31337",
            # keep the last 64 block states in memory and none on disk: anvil otherwise spills old states to
            # ~/.foundry/anvil/tmp (gigabytes over a long differential run) and leaves them behind when killed;
            # the services read state at recent blocks, so some history must stay
            "--prune-history",
            "64",
        ]
        if state is not None:
            args += ["--state", str(state)]  # load it if present, dump it on exit
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.transport: RpcTransport | None = None
        self._id = 0
        self.port = self._listening_port(startup_s)
        self.url = f"http://127.0.0.1:{self.port}"
        self.transport = RpcTransport(self.url)
        # the banner is read; drain the rest in the background so a full pipe never blocks the node
        threading.Thread(target=self._drain, daemon=True).start()
        self.w3 = Web3(Web3.HTTPProvider(self.url))
        self.accounts = [Web3.to_checksum_address(a) for a in self.rpc("eth_accounts")]
        self.signers: dict[str, Any] = {}  # address -> a key with `sign(tx) -> raw hex`: sent raw, never unlocked

    def send_call(self, tx: dict[str, Any], nonce: int) -> tuple[str, list[Any]]:
        """The JSON-RPC call that sends `tx` with `nonce`: signed here when its sender has a key in `signers`,
        else `eth_sendTransaction` from one of the node's own dev accounts."""
        signer = self.signers.get(tx["from"])
        if signer is None:
            return "eth_sendTransaction", [{"gas": hex(TX_GAS), "nonce": hex(nonce), **_hexed(tx)}]
        body = {
            "chainId": self.chain_id,
            "nonce": nonce,
            "gas": int(tx.get("gas", TX_GAS)),  # a deployment names its own limit (binding.DEPLOY_GAS)
            "maxFeePerGas": MAX_FEE,
            "maxPriorityFeePerGas": 0,
            "value": int(tx.get("value", 0)),
            "data": tx.get("data", "0x"),
            **({"to": tx["to"]} if tx.get("to") else {}),
        }
        return "eth_sendRawTransaction", [signer.sign(body)]

    @property
    def chain_id(self) -> int:
        if not hasattr(self, "_chain_id"):
            self._chain_id = int(self.rpc("eth_chainId"), 16)
        return self._chain_id

    def _listening_port(self, startup_s: float) -> int:
        """The port from anvil's banner line `Listening on 127.0.0.1:<port>`."""
        deadline = time.monotonic() + startup_s
        seen = []
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break  # exited
            seen.append(line)
            if line.startswith("Listening on "):
                return int(line.rsplit(":", 1)[1])
        self.close()
        raise ChainError(f"anvil did not start: {''.join(seen)[-2000:]}")

    def _drain(self) -> None:
        """Discard anvil's log after its banner: an unread pipe fills up and blocks anvil."""
        with contextlib.suppress(ValueError, OSError), open(os.devnull, "w") as sink:
            shutil.copyfileobj(self.proc.stdout, sink)

    def rpc(self, method: str, *params: Any) -> Any:
        return self.batch([(method, list(params))])[0]

    def sign_typed(self, signer: str, typed: dict[str, Any]) -> bytes:
        return bytes.fromhex(self.rpc("eth_signTypedData_v4", signer, typed)[2:])

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Many JSON-RPC calls in one HTTP request; results in order; an error anywhere raises ChainError."""
        if not calls:
            return []
        body = []
        for method, params in calls:
            self._id += 1
            body.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        reply = self.transport.post(body)
        by_id = {r["id"]: r for r in reply}
        out = []
        for req in body:
            r = by_id[req["id"]]
            if "error" in r:
                raise ChainError(f"{req['method']} failed: {r['error']}")
            out.append(r["result"])
        return out

    def send(self, txs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        senders = sorted({tx["from"] for tx in txs})  # anvil's default nonce ignores the pending pool: count here
        counts = self.batch([("eth_getTransactionCount", [a, "pending"]) for a in senders])
        nonce = {a: int(c, 16) for a, c in zip(senders, counts, strict=True)}
        calls = []
        for tx in txs:
            calls.append(self.send_call(tx, nonce[tx["from"]]))
            nonce[tx["from"]] += 1
        hashes = self.batch(calls)
        self.rpc("evm_mine")
        receipts = self.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        return _check([_normal(r) for r in receipts], txs)

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def logs(self, address: str, from_block: int, to_block: int | str) -> list[tuple[list[bytes], bytes, int]]:
        flt = {
            "address": address,
            "fromBlock": hex(from_block),
            "toBlock": to_block if isinstance(to_block, str) else hex(to_block),
        }
        return [
            ([bytes.fromhex(t[2:]) for t in lg["topics"]], bytes.fromhex(lg["data"][2:]), int(lg["blockNumber"], 16))
            for lg in self.rpc("eth_getLogs", flt)
        ]

    def call_many(self, txs: Sequence[dict[str, Any]]) -> list[bytes]:
        calls = [
            ("eth_call", [_hexed({k: v for k, v in tx.items() if k in ("from", "to", "data")}), "latest"]) for tx in txs
        ]
        return [bytes.fromhex(r[2:]) for r in self.batch(calls)]

    def revert_data(self, tx: dict[str, Any]) -> bytes | None:
        self._id += 1
        body = {
            "jsonrpc": "2.0",
            "id": self._id,
            "method": "eth_call",
            "params": [_hexed({k: v for k, v in tx.items() if k in ("from", "to", "data")}), "pending"],
        }
        reply = self.transport.post(body, timeout=60)
        if "error" not in reply:
            return None
        data = reply["error"].get("data") or "0x"
        return bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else b""

    def snapshot(self) -> Any:
        return self.rpc("evm_snapshot")

    def revert(self, snap: Any) -> None:
        if not self.rpc("evm_revert", snap):
            raise ChainError(f"evm_revert({snap}) failed")

    def dump_state(self, path: str | os.PathLike[str]) -> None:
        """Write the node's whole state (accounts, code, storage) to `path`, loadable by `AnvilChain(state=...)`."""
        Path(path).write_text(json.dumps(self.rpc("anvil_dumpState")))

    def load_state(self, path: str | os.PathLike[str]) -> None:
        if not self.rpc("anvil_loadState", json.loads(Path(path).read_text())):
            raise ChainError(f"anvil_loadState({path}) failed")

    def close(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()  # anvil writes --state on SIGTERM
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdout is not None:
            with contextlib.suppress(OSError):
                proc.stdout.close()
        if getattr(self, "transport", None) is not None:
            self.transport.close()


def _hexed(tx: dict[str, Any]) -> dict[str, Any]:
    return {k: hex(v) if isinstance(v, int) else v for k, v in tx.items()}


def _normal(r: dict[str, Any] | None) -> dict[str, Any] | None:
    """A raw JSON-RPC receipt with integer status, gasUsed and blockNumber (as web3 returns them)."""
    if r is None:
        return None
    return {
        **r,
        "status": int(r["status"], 16),
        "gasUsed": int(r["gasUsed"], 16),
        "blockNumber": int(r["blockNumber"], 16),
        "contractAddress": Web3.to_checksum_address(r["contractAddress"]) if r.get("contractAddress") else None,
    }


def open_chain(name: str, n_accounts: int = 20, **kwargs: Any) -> Chain:
    """`embedded` or `anvil` (raises ValueError naming the allowed values otherwise)."""
    if name == "embedded":
        return EmbeddedChain(n_accounts)
    if name == "anvil":
        return AnvilChain(n_accounts, **kwargs)
    raise ValueError(f"chain={name!r} is invalid: allowed one of {list(CHAINS)}")


def anvil_available() -> bool:
    return ANVIL.is_file() and shutil.which("node") is not None
