"""Deploy the contracts and build one transaction per protocol step (web3.py), for tests, benchmarks and services.

Transactions are plain dicts ({from, to, data}) so a caller can send one or a whole round's worth in one block
(`Chain.send`). Deal ids are computed locally exactly as the contract does (the EIP-712 hash of the terms), so a
round of deals needs no call to learn its ids. A reverted call is turned into its named custom error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract

from contracts.build import Artifact, load
from live.chain.node import Chain
from live.chain.params import WRONG_DEPOSIT_TO, ChainParams

BEACONS = ("prevrandao", "scripted")
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
DEPLOY_GAS = 12_000_000  # the deal contract's creation: ~22 kB of code at 200 gas a byte, then its registries
TERMS_TYPE = (
    "Terms(address client,address node,uint64 price,uint64 instructions,uint32 multiplierBps,uint32 module,"
    "uint64 mediators,uint64 nonce)"
)
TERMS_TYPEHASH = keccak(text=TERMS_TYPE)
ACCEPTED_TYPEHASH = keccak(text="Accepted(bytes32 deal,bytes32 resultHash)")
#: The EIP712Domain type of every signed message (eth_signTypedData_v4's `types`).
EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
DOMAIN_TYPEHASH = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")


class Terms(NamedTuple):
    """The deal terms both parties agree to (IDeals.Terms)."""

    client: str
    node: str
    price: int
    instructions: int
    multiplier_bps: int
    module: int
    mediators: int  # bit mask of mediator registry indices both trust
    nonce: int  # the twin's deal id in differential runs

    def struct_hash(self) -> bytes:
        return keccak(
            encode(
                ["bytes32", "address", "address", "uint64", "uint64", "uint32", "uint32", "uint64", "uint64"],
                [TERMS_TYPEHASH, *self],
            )
        )


class RevertedWith(Exception):
    """A call reverted with a named custom error of the deal contract."""

    def __init__(self, name: str, args: tuple[Any, ...]) -> None:
        super().__init__(f"{name}{args}")
        self.name, self.args_ = name, args


@dataclass
class Deployment:
    """Addresses and contract handles of one deployment."""

    chain: Chain
    params: ChainParams
    token: Contract
    deals: Contract
    beacon: Contract
    beacon_kind: str
    mediators: list[str]
    protocol: str
    deployer: str
    block: int
    deploy_gas: int = 0  # gas of the creation transactions
    replication: Contract | None = None  # the ReplicationModule, when the mechanism is deployed
    whistle: Contract | None = None  # the WhistleModule, when whistleblowing is deployed (the same module slot)

    @property
    def domain_separator(self) -> bytes:
        return keccak(
            encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [
                    DOMAIN_TYPEHASH,
                    keccak(text="Deals"),
                    keccak(text="1"),
                    int(self.chain.w3.eth.chain_id),
                    self.deals.address,
                ],
            )
        )

    def deal_id(self, t: Terms) -> bytes:
        """The contract's `dealId(t)`, computed locally."""
        return keccak(b"\x19\x01" + self._domain + t.struct_hash())

    def accepted_digest(self, deal: bytes, result_hash: bytes) -> bytes:
        """What both parties sign for the batched path (`settleSigned`)."""
        inner = keccak(encode(["bytes32", "bytes32", "bytes32"], [ACCEPTED_TYPEHASH, deal, result_hash]))
        return keccak(b"\x19\x01" + self._domain + inner)

    def __post_init__(self) -> None:
        self._domain = self.domain_separator

    # ---------------------------------------------------------------- one transaction per protocol step

    def tx(self, sender: str, fn: str, *args: Any, contract: Contract | None = None) -> dict[str, Any]:
        """A call of `fn` (not overloaded) on `contract` (default: the deal contract), encoded with eth_abi (web3's
        encoder validates the ABI on every call, which dominates when a round sends thousands)."""
        c = contract if contract is not None else self.deals
        selector, types = _signature(c, fn)
        return {"from": sender, "to": c.address, "data": "0x" + (selector + encode(types, list(args))).hex()}

    def read_many(self, fn: str, args: Sequence[tuple[Any, ...]], contract: Contract | None = None) -> list[int]:
        """`fn(*a)` for each `a`, as integers (one batched request on anvil); for single-word views."""
        c = contract if contract is not None else self.deals
        txs = [self.tx(self.deployer, fn, *a, contract=c) for a in args]
        return [int.from_bytes(r[:32], "big") for r in self.chain.call_many(txs)]

    def approve(self, owner: str, amount: int) -> dict[str, Any]:
        return self.tx(owner, "approve", self.deals.address, amount, contract=self.token)

    def deposit(self, owner: str, amount: int) -> dict[str, Any]:
        return self.tx(owner, "deposit", amount)

    def withdraw(self, owner: str, amount: int) -> dict[str, Any]:
        return self.tx(owner, "withdraw", amount)

    def stake(self, staker: str, node: str, amount: int) -> dict[str, Any]:
        return self.tx(staker, "stake", node, amount)

    def agree(self, t: Terms, sender: str) -> dict[str, Any]:
        return self.tx(sender, "agree", tuple(t))

    def submit(self, t: Terms, result_hash: bytes, instructions: int | None = None) -> dict[str, Any]:
        n = t.instructions if instructions is None else instructions
        return self.tx(t.node, "submitResults", tuple(t), result_hash, n)

    def open_job(self, client: str, replicas: Sequence[Terms]) -> dict[str, Any]:
        """Replication: the client opens a job of replica deals (in replica order) before they are agreed."""
        return self.tx(client, "open", [tuple(t) for t in replicas], contract=self.replication_module())

    def commit(self, t: Terms, result_hash: bytes, salt: bytes) -> dict[str, Any]:
        """Replication with commit-reveal: the node commits keccak256(abi.encode(result, salt))."""
        commitment = keccak(encode(["bytes32", "bytes32"], [result_hash, salt]))
        return self.tx(t.node, "commit", tuple(t), commitment, contract=self.replication_module())

    def reveal(self, t: Terms, result_hash: bytes, salt: bytes) -> dict[str, Any]:
        """Replication with commit-reveal: the node reveals (and so posts) its committed result."""
        return self.tx(t.node, "reveal", tuple(t), result_hash, salt, contract=self.replication_module())

    def post(self, t: Terms, result_hash: bytes) -> dict[str, Any]:
        """Post a result: through the replication module when it is deployed (without commit-reveal), else
        `submitResults`."""
        if self.whistle is not None:
            return self.tx(t.node, "post", tuple(t), result_hash, contract=self.whistle)
        if self.replication is None:
            return self.submit(t, result_hash)
        return self.tx(t.node, "post", tuple(t), result_hash, contract=self.replication_module())

    def replication_module(self) -> Contract:
        if self.replication is None:
            raise ValueError("replication is not deployed (mechanism.replication.enabled=false)")
        return self.replication

    def accept(self, t: Terms) -> dict[str, Any]:
        return self.tx(t.client, "acceptResults", tuple(t))

    def check(self, t: Terms) -> dict[str, Any]:
        return self.tx(t.client, "checkResults", tuple(t))

    def mediate(self, t: Terms, mediator: str, accept: bool, correct: bytes = bytes(32)) -> dict[str, Any]:
        """The verdict; with replication it goes through the module, a rejection declaring the correct result."""
        if self.whistle is not None:
            return self.tx(mediator, "mediate", tuple(t), accept, contract=self.whistle)
        if self.replication is None:
            return self.tx(mediator, "mediate", tuple(t), accept)
        return self.tx(mediator, "mediate", tuple(t), accept, correct, contract=self.replication)

    def _bribe_module(self) -> Contract:
        """The module that checks bribe proofs: WhistleModule, or ReplicationModule with replication."""
        module = self.whistle if self.whistle is not None else self.replication
        if module is None or not self.params.whistleblowing:
            raise ValueError("whistleblowing is not deployed (mechanism.whistleblowing.enabled=false)")
        return module

    def bribe_typed(self, deal: bytes) -> dict[str, Any]:
        """The EIP-712 message a node signs to offer a bribe for `deal` (BribeProof.BRIBE_TYPEHASH)."""
        return {
            "types": {"EIP712Domain": EIP712_DOMAIN, "Bribe": [{"name": "deal", "type": "bytes32"}]},
            "primaryType": "Bribe",
            "domain": {
                "name": "Whistle",
                "version": "1",
                "chainId": int(self.chain.w3.eth.chain_id),
                "verifyingContract": self._bribe_module().address,
            },
            "message": {"deal": "0x" + deal.hex()},
        }

    def report_bribe(self, t: Terms, mediator: str, signature: bytes, correct: bytes = bytes(32)) -> dict[str, Any]:
        """The drawn mediator proves the node's bribe offer (the node's signature): the result is rejected and the
        mediator keeps `reward_bps` of the node's slashed results collateral; with replication the report declares
        the correct result as a rejection does."""
        module = self._bribe_module()
        if module is self.whistle:
            return self.tx(mediator, "reportBribe", tuple(t), signature, contract=module)
        return self.tx(mediator, "reportBribe", tuple(t), correct, signature, contract=module)

    def vote(self, t: Terms, member: str, accept: bool, reran: bool) -> dict[str, Any]:
        """A consortium member's vote (and its declaration that it re-ran the job)."""
        return self.tx(member, "vote", tuple(t), accept, reran)

    def pay_jackpot(self, sender: str) -> dict[str, Any]:
        """End the jackpot round: its claims share the pool as it stood when the round began."""
        return self.tx(sender, "payJackpot")

    def timeout(self, phase: str, t: Terms, sender: str) -> dict[str, Any]:
        """`phase` in agree | submit | judge | mediate."""
        fn = {
            "agree": "timeoutAgree",
            "submit": "timeoutSubmitResults",
            "judge": "timeoutJudgeResults",
            "mediate": "timeoutMediateResults",
        }[phase]
        return self.tx(sender, fn, tuple(t))

    def settle_signed(self, sender: str, batch: Sequence[tuple[Terms, bytes, bytes, bytes]]) -> dict[str, Any]:
        return self.tx(sender, "settleSigned", [(tuple(t), r, cs, ns) for t, r, cs, ns in batch])

    def set_draws(self, ids: Sequence[bytes], words: Sequence[int]) -> dict[str, Any]:
        """Scripted beacon only: the word each deal's mediator draw reads."""
        return self.tx(self.deployer, "set", list(ids), list(words), contract=self.beacon)

    # ---------------------------------------------------------------- reads

    def balance(self, account: str) -> int:
        """Free balance inside the contract plus tokens held: everything the account can spend."""
        return int(self.deals.functions.balanceOf(account).call()) + int(self.token.functions.balanceOf(account).call())

    def escrow(self, deal: bytes) -> int:
        return int(self.deals.functions.escrowOf(deal).call())

    def state(self, deal: bytes) -> int:
        return int(self.deals.functions.deals(deal).call()[0])

    def revert_of(self, tx: dict[str, Any]) -> RevertedWith | None:
        """The named custom error `tx` would revert with now (None if it would succeed)."""
        data = self.chain.revert_data(tx)
        modules = [m for m in (self.replication, self.whistle) if m is not None]
        known = [self.deals, self.token, self.beacon, *modules]
        return None if data is None else decode_error(data, known)


_SIGNATURES: dict[tuple[str, str], tuple[bytes, list[str], list[Any]]] = {}


def _signature(c: Contract, fn: str) -> tuple[bytes, list[str]]:
    """Selector and argument types of `fn`, cached per address and ABI (two chains can hold different contracts,
    e.g. the replication and the whistleblowing module, at the same address)."""
    key = (c.address, fn)
    if key not in _SIGNATURES or _SIGNATURES[key][2] is not c.abi:
        item = next(i for i in c.abi if i["type"] == "function" and i["name"] == fn)
        types = [_abi_type(i) for i in item["inputs"]]
        _SIGNATURES[key] = (keccak(text=f"{fn}({','.join(types)})")[:4], types, c.abi)
    selector, types, _ = _SIGNATURES[key]
    return selector, types


def decode_error(raw: bytes, contracts: Sequence[Contract]) -> RevertedWith:
    """A custom error's name and arguments from revert data (selector + args); "Revert" when there is none."""
    if len(raw) < 4:
        return RevertedWith("Revert", (raw,))
    for c in contracts:
        for item in c.abi:
            if item["type"] != "error":
                continue
            types = [_abi_type(i) for i in item["inputs"]]
            if keccak(text=f"{item['name']}({','.join(types)})")[:4] == raw[:4]:
                return RevertedWith(item["name"], tuple(decode(types, raw[4:])))
    return RevertedWith("Unknown", (raw,))


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + item["type"][5:]
    return item["type"]


def deploy(
    chain: Chain,
    params: ChainParams,
    mediators: Sequence[str],
    protocol: str,
    holders: Sequence[str],
    amounts: Sequence[int],
    beacon: str = "prevrandao",
    deployer: str | None = None,
    artifacts: dict[str, Artifact] | None = None,
    deals_artifact: str = "Deals",
    token_artifact: str = "Token",
) -> Deployment:
    """Deploy token, beacon and deal contract (one block), then hand each holder its amount of tokens."""
    if beacon not in BEACONS:
        raise ValueError(f"beacon={beacon!r} is invalid: allowed one of {list(BEACONS)}")
    arts = artifacts if artifacts is not None else load()
    w3 = chain.w3
    deployer = deployer or chain.accounts[0]
    nonce = int(w3.eth.get_transaction_count(deployer))
    token_addr, beacon_addr, deals_addr, repl_addr = (_create_address(deployer, nonce + i) for i in range(4))
    beacon_name = "PrevrandaoBeacon" if beacon == "prevrandao" else "ScriptedBeacon"
    p = params
    config = (
        token_addr,
        beacon_addr,
        protocol,
        p.payment_collateral_bps,
        p.base_multiplier_bps,
        p.min_deposit,
        p.submit_timeout_collateral,
        p.judge_timeout_collateral,
        p.mediation_fee,
        p.deadline_agree,
        p.deadline_submit,
        p.deadline_judge,
        p.deadline_mediate,
        p.slash_code,
        p.forfeit_payment,
        list(p.multipliers_bps),
        list(mediators),
        p.staking,
        p.stake_slash_bps,
        p.stake_slash_code,
        p.fee_share_bps,
        p.panel,
        p.jackpot_config,
        repl_addr if p.replication or p.whistleblowing else ZERO_ADDRESS,
    )
    txs = [
        {"from": deployer, "data": _creation(arts[token_artifact], "Twin Credit", "TWC", deployer, sum(amounts))},
        {"from": deployer, "data": _creation(arts[beacon_name])},
        {"from": deployer, "data": _creation(arts[deals_artifact], config), "gas": DEPLOY_GAS},
    ]
    want = [token_addr, beacon_addr, deals_addr]
    if p.replication:
        module = (
            deals_addr,
            p.replicas,
            p.commit_reveal,
            WRONG_DEPOSIT_TO.index(p.wrong_deposit_to),
            p.commit_blocks,
            p.whistleblowing,
            p.reward_bps,
        )
        txs.append({"from": deployer, "data": _creation(arts["ReplicationModule"], *module)})
        want.append(repl_addr)
    elif p.whistleblowing:
        txs.append({"from": deployer, "data": _creation(arts["WhistleModule"], deals_addr, p.reward_bps)})
        want.append(repl_addr)
    receipts = chain.send(txs)
    got = [to_checksum_address(r["contractAddress"]) for r in receipts]
    if got != want:
        raise RuntimeError(f"deployed at {got}, expected {want}")
    token = w3.eth.contract(address=token_addr, abi=arts[token_artifact].abi)
    transfers = [
        {"from": deployer, "to": token_addr, "data": token.encode_abi("transfer", args=[h, int(a)])}
        for h, a in zip(holders, amounts, strict=True)
        if h != deployer and a > 0
    ]
    if transfers:
        chain.send(transfers)
    return Deployment(
        chain,
        params,
        w3.eth.contract(address=token_addr, abi=arts[token_artifact].abi),
        w3.eth.contract(address=deals_addr, abi=arts[deals_artifact].abi),
        w3.eth.contract(address=beacon_addr, abi=arts[beacon_name].abi),
        beacon,
        list(mediators),
        protocol,
        deployer,
        int(receipts[-1]["blockNumber"]),
        sum(int(r["gasUsed"]) for r in receipts),
        w3.eth.contract(address=repl_addr, abi=arts["ReplicationModule"].abi) if p.replication else None,
        w3.eth.contract(address=repl_addr, abi=arts["WhistleModule"].abi)
        if p.whistleblowing and not p.replication
        else None,
    )


def _creation(art: Artifact, *args: Any) -> str:
    """Creation bytecode followed by the ABI-encoded constructor arguments."""
    ctor = next((i for i in art.abi if i["type"] == "constructor"), {"inputs": []})
    return "0x" + art.bytecode + encode([_abi_type(i) for i in ctor["inputs"]], list(args)).hex()


def _create_address(sender: str, nonce: int) -> str:
    import rlp

    return to_checksum_address(keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[12:])
