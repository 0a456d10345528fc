"""Gas per deal on anvil, for every terminal path and every deployable preset, plus the deployment and the batched
(EIP-712) mode. Prints a markdown table and saves the figures to outputs/bench/gas.json; `--readme` also renders
the README's `table:gas` block from them (`experiments.readme_tables`).

Counting: every transaction of every party. "cold" is one deal between two fresh accounts: both approvals, the
agreements (which pull the escrow from the parties' tokens), every step, and each party withdrawing what it got back.
"warm" is the same deal between parties that already hold a free balance in the contract (a node or client in
steady state, whose approval and deposit are spread over many deals). "batched" is 100 happy-path deals, signed
off chain by both parties and settled by the solver in one `settleSigned` transaction, counting every party's
approval and deposit, divided by 100. With replication a deal's row counts the opening of a job of that deal alone
(a job of r replicas is opened once for all of them) and its commit and reveal instead of the submission.

    python benchmarks/gas.py [--readme]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from eth_abi import decode
from eth_utils import to_checksum_address

from experiments import readme_tables
from experiments.analysis.configs import mechanism
from live.chain.binding import Deployment, Terms, deploy
from live.chain.events import SIGS
from live.chain.node import AnvilChain
from live.chain.params import ChainParams, chain_params
from mechanisms.base import MechanismStack
from mechanisms.protocol import TERMINAL, DealState

PRESETS = ("lilypad_v2", "modicum", "none", "consortium", "tax_jackpot", "replication", "whistleblowing")
#: Stacks measured that are not presets: the consortium part's defaults (2-of-3, escalating to 6, uniform draw) on
#: Lilypad v2 (the consortium preset draws by stake, which is not on chain), the truebit_jackpot preset's tax and
#: jackpot without its forced errors (not on chain), and the dong_counter_collusion preset's replication
#: (commit-reveal, the prisoner's contract) without its whistleblowing (the cartel's proof is not on chain), and the
#: bribed mediator's proof with a 50% reward on Lilypad v2 (its MediationRejected path is the proven bribe).
STACKS = {
    "consortium": {"order": ["lilypad_v2", "consortium"]},
    "tax_jackpot": {"order": ["lilypad_v2", "tax_jackpot"], "tax_jackpot": {"tax_bps": 300, "fraction_bps": 2000}},
    "replication": {"order": ["lilypad_v2", "replication"], "replication": {"commit_reveal": True}},
    "whistleblowing": {
        "order": ["lilypad_v2", "whistleblowing"],
        "whistleblowing": {"nodes": False, "reward_bps": 5000},
    },
}
RERUN_COSTS = (6, 30, 60)  # configs/market/default.yaml's module compute costs
TARGETS = {"ResultsAccepted": 320_000, "MediationAccepted": 500_000, "MediationRejected": 500_000}
BATCH_TARGET = 100_000
BATCH = 100
OUT = readme_tables.OUTPUTS / "bench" / "gas.json"
RESULT = b"\x01" * 32
SALT = b"\x02" * 32
FUNDS = 10**9
MAX_UINT = 2**256 - 1  # an unlimited allowance, which OpenZeppelin never decrements


def params_of(preset: str) -> ChainParams:
    cfg = STACKS[preset] if preset in STACKS else mechanism(preset)
    return chain_params(MechanismStack.from_mapping(cfg, "mechanism"), RERUN_COSTS)


class Bench:
    """One deployment on a fresh anvil, handing out fresh accounts."""

    def __init__(self, chain: AnvilChain, params: ChainParams) -> None:
        self.chain = chain
        acc = chain.accounts
        self.free = acc[6:]
        self.dep = deploy(chain, params, acc[1:4], acc[4], self.free, [FUNDS] * len(self.free), deployer=acc[0])
        self.deploy_gas = self.dep.deploy_gas
        self.nonce = 0

    def pair(self) -> tuple[str, str]:
        c, n = self.free[0], self.free[1]
        self.free = self.free[2:]
        return c, n

    def gas(self, *txs: dict[str, Any]) -> int:
        return sum(r["gasUsed"] for r in self.chain.send(list(txs)))

    def terms(self, client: str, node: str) -> Terms:
        self.nonce += 1
        return Terms(
            client,
            node,
            10,
            4,
            self.dep.params.multipliers_bps[0]
            if self.dep.params.multipliers_bps
            else self.dep.params.base_multiplier_bps,
            0,
            0b111,
            self.nonce,
        )


def run_path(b: Bench, path: str, warm: bool) -> int:
    """Gas of one deal along `path` (all parties' transactions)."""
    d = b.dep
    c, n = b.pair()
    t = b.terms(c, n)
    total = 0
    if warm:  # steady state: the parties already approved and deposited (not counted)
        b.gas(d.approve(c, MAX_UINT), d.approve(n, MAX_UINT))
        b.gas(d.deposit(c, 10_000), d.deposit(n, 10_000))
    else:
        total += b.gas(d.approve(c, MAX_UINT)) + b.gas(d.approve(n, MAX_UINT))
    if d.replication is not None:  # the client opens the job before the agreements
        total += b.gas(d.open_job(c, [t]))
    steps: dict[str, Callable[[], int]] = {
        "agree": lambda: b.gas(d.agree(t, c)) + b.gas(d.agree(t, n)),
        "submit": lambda: _submit(b, t),
        "check": lambda: b.gas(d.check(t)),
    }
    med = d.mediators[0]
    panel: list[str] = []
    if path == "TimeoutAgree":
        total += b.gas(d.agree(t, c))
        b.chain.mine(d.params.deadline_agree + 1)
        total += b.gas(d.timeout("agree", t, c))
    else:
        total += steps["agree"]()
        if path == "TimeoutSubmitResults":
            b.chain.mine(d.params.deadline_submit + 1)
            total += b.gas(d.timeout("submit", t, c))
        else:
            total += steps["submit"]()
            if path == "ResultsAccepted":
                total += b.gas(d.accept(t))
            elif path == "TimeoutJudgeResults":
                b.chain.mine(d.params.deadline_judge + 1)
                total += b.gas(d.timeout("judge", t, n))
            else:
                total += steps["check"]()
                med = d.mediators[_drawn(b, t)]
                panel = _panel(b)[: d.params.panel_size]
                if path == "TimeoutMediateResults":
                    b.chain.mine(d.params.deadline_mediate + 1)
                    total += b.gas(d.timeout("mediate", t, c))
                elif panel:  # a unanimous first panel: one vote per member
                    total += sum(b.gas(d.vote(t, m, path == "MediationAccepted", True)) for m in panel)
                elif d.whistle is not None and path == "MediationRejected":  # the proven bribe
                    offer = b.chain.sign_typed(n, d.bribe_typed(d.deal_id(t)))
                    total += b.gas(d.report_bribe(t, med, offer))
                else:
                    total += b.gas(d.mediate(t, med, path == "MediationAccepted"))
                if d.params.jackpot and path == "MediationRejected":  # the round's payout to this claim
                    total += b.gas(d.pay_jackpot(c))
    if not warm:  # each party pulls out what it holds in the contract
        for who in dict.fromkeys((c, n, med, *panel)):
            owed = int(d.deals.functions.balanceOf(who).call())
            if owed and (who not in (med, *panel) or path.startswith("Mediation")):
                total += b.gas(d.withdraw(who, owed))
    return total


def _submit(b: Bench, t: Terms) -> int:
    """The node's result: committed then revealed with commit-reveal, else posted (through the replication module
    when it is deployed)."""
    d = b.dep
    if d.params.commit_reveal:
        return b.gas(d.commit(t, RESULT, SALT)) + b.gas(d.reveal(t, RESULT, SALT))
    return b.gas(d.post(t, RESULT))


def _drawn(b: Bench, t: Terms) -> int:
    logs = b.chain.logs(b.dep.deals.address, b.chain.block_number(), b.chain.block_number())
    for topics, data, _ in logs:
        if len(data) == 32 and len(topics) == 2:
            addr = to_checksum_address(data[12:])
            if addr in b.dep.mediators:
                return b.dep.mediators.index(addr)
    raise RuntimeError("no MediatorSelected event")


def _panel(b: Bench) -> list[str]:
    """The consortium members seated by the check just mined (none without the consortium)."""
    logs = b.chain.logs(b.dep.deals.address, b.chain.block_number(), b.chain.block_number())
    for topics, data, _ in logs:
        if topics[0] == SIGS["PanelDrawn"]:
            return [to_checksum_address(a) for a in decode(["address[]"], data)[0]]
    return []


def sign(chain: AnvilChain, dep: Deployment, signer: str, deal: bytes) -> bytes:
    """EIP-712 signature of Accepted(deal, resultHash) by an unlocked dev account (the key stays in anvil)."""
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Accepted": [{"name": "deal", "type": "bytes32"}, {"name": "resultHash", "type": "bytes32"}],
        },
        "primaryType": "Accepted",
        "domain": {
            "name": "Deals",
            "version": "1",
            "chainId": int(chain.w3.eth.chain_id),
            "verifyingContract": dep.deals.address,
        },
        "message": {"deal": "0x" + deal.hex(), "resultHash": "0x" + RESULT.hex()},
    }
    return bytes.fromhex(chain.rpc("eth_signTypedData_v4", signer, typed)[2:])


def batched(params: ChainParams) -> int:
    """Gas per deal of BATCH signed happy-path deals settled in one transaction (10 clients x 10 nodes)."""
    with AnvilChain(40) as chain:
        b = Bench(chain, params)
        clients, nodes = b.free[:10], b.free[10:20]
        d = b.dep
        total = b.gas(*[d.approve(a, MAX_UINT) for a in clients + nodes])
        total += b.gas(*[d.deposit(a, 2_000) for a in clients + nodes])
        batch = []
        for i in range(BATCH):
            t = b.terms(clients[i % 10], nodes[(i // 10) % 10])
            deal = d.deal_id(t)
            batch.append((t, RESULT, sign(chain, d, t.client, deal), sign(chain, d, t.node, deal)))
        total += b.gas({**d.settle_signed(chain.accounts[5], batch), "gas": 30_000_000})
        return total // BATCH


PATHS = tuple(s.name for s in DealState if s in TERMINAL)  # every terminal path, in the protocol's order


def measure() -> tuple[dict[str, dict[str, tuple[int, int]]], dict[str, int], int]:
    rows: dict[str, dict[str, tuple[int, int]]] = {}
    deploy_gas: dict[str, int] = {}
    for preset in PRESETS:
        params = params_of(preset)
        with AnvilChain(6 + 4 * len(PATHS)) as chain:
            b = Bench(chain, params)
            deploy_gas[preset] = b.deploy_gas
            rows[preset] = {p: (run_path(b, p, warm=False), run_path(b, p, warm=True)) for p in PATHS}
    return rows, deploy_gas, batched(params_of("lilypad_v2"))


def record(rows: dict[str, dict[str, tuple[int, int]]], deploy_gas: dict[str, int], batch: int) -> dict[str, Any]:
    """What `experiments.readme_tables` renders the README's gas table from (outputs/bench/gas.json)."""
    return {
        "presets": list(PRESETS),
        "paths": list(PATHS),
        "targets": dict(TARGETS),
        "rows": rows,
        "deploy_gas": deploy_gas,
        "batch": batch,
        "batch_size": BATCH,
        "batch_target": BATCH_TARGET,
    }


def main() -> None:
    data = record(*measure())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=2) + "\n")
    print(readme_tables.gas_markdown(data))
    if "--readme" in sys.argv[1:]:
        readme_tables.main(["--write", "gas"])


if __name__ == "__main__":
    main()
