"""Replication on the live network (anvil, a real Docker engine): the solver buys each job from distinct nodes, the
client opens the job on chain before anyone agrees, replicas post through the replication module (commit-reveal
when deployed), replicas that disagree are checked, the mediator's rejection declares the correct result and the
prisoner's contract pays the honest replica. Without commit-reveal a lazy node copies the result another replica
posted (the timing attack); with it the copier is caught. Value is conserved throughout."""

from __future__ import annotations

import numpy as np
import pytest
from web3 import Web3

from live.chain.binding import Terms
from live.services.network import Network, wait_until
from live.services.solver import best_per_node

pytestmark = [pytest.mark.xdist_group("docker")]
REPLICATED = [
    "market.n_nodes=2",
    "mechanism.order=[lilypad_v2,replication]",
    "+mechanism/parts@mechanism.replication=replication",
    "mechanism.replication.replicas=2",
]


def _module_logs(net: Network, event: str) -> list[dict]:
    flt = {
        "address": net.record["contracts"]["replication"],
        "fromBlock": "0x0",
        "toBlock": "latest",
        "topics": ["0x" + Web3.keccak(text=event).hex()],
    }
    return net.node.rpc("eth_getLogs", flt)


#: the replication module's events a test reads, by name
EVENTS = {
    "JobOpened": "JobOpened(uint64,address,bytes32[])",
    "Committed": "Committed(bytes32,bytes32)",
    "HonestReplicaPaid": "HonestReplicaPaid(bytes32,address)",
}


def _run_one(run_net, overrides: list[str]) -> tuple:
    """One replicated job; (its record, the providers' deal records, the module's events, balances before and
    after, the layout, the chain parameters)."""

    async def body(net: Network) -> tuple:
        v0, before = net.total_value(), net.balances()
        (job,) = await net.run_jobs([("hashseq:v1", {"N": "600"})], 90)
        deals = {k: d for p in net.providers for k, _, d in p.store.all_deals()}
        logs = {name: _module_logs(net, sig) for name, sig in EVENTS.items()}
        return job, deals, logs, v0, net.total_value(), before, net.balances(), net.who, net.clients[0].params

    job, deals, logs, v0, v1, before, after, who, params = run_net([*REPLICATED, *overrides], body)
    assert v1 == v0  # nothing lost, nothing paid twice
    return job, deals, logs, before, after, who, params


def _results_collateral(t: Terms, params) -> int:
    """The deal contract's results collateral (Deals: price x instructions x multiplier, at least the minimum)."""
    return max(t.price * t.instructions * t.multiplier_bps // 10_000, params.min_deposit)


def test_disagreeing_replicas_are_checked_and_the_honest_replica_takes_the_cheaters_deposit(run_net) -> None:
    job, deals, logs, before, after, _, params = _run_one(
        run_net, ["network.providers=[{strategy: honest}, {strategy: cheater, rate: 1.0}]"]
    )
    replicas = job["replicas"]
    assert len(replicas) == 2 and len(logs["JobOpened"]) == 1
    by_id = {r["deal_id"]: r for r in replicas}
    cheat = next(k for k, d in deals.items() if d.get("cheat"))
    honest = next(k for k in by_id if k != cheat)
    # the client checks no result at random (q = 0): the disagreement alone sent both to mediation
    assert all(r["checked"] for r in replicas)
    assert by_id[cheat]["state"] == "MediationRejected" and by_id[honest]["state"] == "MediationAccepted"
    assert job["deal_id"] == honest and job["state"] == "MediationAccepted"  # the result the client keeps
    (paid,) = logs["HonestReplicaPaid"]
    t_cheat, t_honest = Terms(*deals[cheat]["deal"]["terms"]), Terms(*deals[honest]["deal"]["terms"])
    assert paid["topics"][1] == "0x" + cheat and Web3.to_checksum_address("0x" + paid["data"][26:66]) == t_honest.node
    gain = after[t_honest.node] - before[t_honest.node]
    assert gain == t_honest.price * t_honest.instructions + _results_collateral(t_cheat, params)
    assert t_cheat.node != t_honest.node


def test_without_commit_reveal_a_waiting_copier_posts_the_honest_result(run_net) -> None:
    job, deals, logs, *_ = _run_one(
        run_net,
        [
            "network.providers=[{strategy: honest}, {strategy: copier, rate: 1.0}]",
            "mechanism.lilypad_v2.deadline_submit=120",  # the copier waits up to half of it for a result to copy
        ],
    )
    copier = next(k for k, d in deals.items() if d.get("cheat"))
    assert deals[copier]["copied"] is not None and deals[copier]["copied"] != copier
    assert deals[copier]["result_id"] == deals[deals[copier]["copied"]]["result_id"]
    # the replicas agree, so nothing is checked and both are paid: the attack commit-reveal exists to stop
    assert [(r["state"], r["verified"], r["checked"]) for r in job["replicas"]] == [
        ("ResultsAccepted", True, False)
    ] * 2
    assert logs["Committed"] == []


def test_with_commit_reveal_the_copier_has_nothing_to_copy_and_is_caught(run_net) -> None:
    job, deals, logs, *_ = _run_one(
        run_net,
        [
            "network.providers=[{strategy: honest}, {strategy: copier, rate: 1.0}]",
            "mechanism.replication.commit_reveal=true",
            "mechanism.lilypad_v2.deadline_submit=120",
        ],
    )
    copier = next(k for k, d in deals.items() if d.get("cheat"))
    assert "copied" not in deals[copier]  # it never saw another result before posting its own
    states = {r["deal_id"]: r["state"] for r in job["replicas"]}
    assert states[copier] == "MediationRejected"
    assert [s for k, s in states.items() if k != copier] == ["MediationAccepted"]
    assert len(logs["Committed"]) == 2 and len(logs["HonestReplicaPaid"]) == 1


def test_a_replicated_job_takes_one_offer_per_node() -> None:
    node = np.array([7, 7, 3, 3, 5])
    rank = np.array([10, 9, 9, 9, -1])
    arrival = np.array([0, 1, 3, 2, 4])
    # node 7: its cheaper offer; node 3: the older of two equal prices; node 5: withdrawn (-1)
    assert best_per_node(node, rank, arrival).tolist() == [False, True, False, True, False]


def test_a_bribed_mediator_proves_a_replicas_bribe_through_the_replication_module(run_net) -> None:
    async def body(net: Network) -> tuple:
        v0 = net.total_value()
        (job,) = await net.run_jobs([("hashseq:v1", {"N": "600"})], 90)
        proven = _module_logs(net, "BribeProven(bytes32,address,address)")
        declared = _module_logs(net, "CorrectDeclared(uint64,bytes32)")
        deals = {k: d for p in net.providers for k, _, d in p.store.all_deals()}
        return job, proven, declared, deals, v0, net.total_value(), net.who

    job, proven, declared, deals, v0, v1, who = run_net(
        [
            *REPLICATED,
            "+mechanism/parts@mechanism.whistleblowing=whistleblowing",
            "mechanism.order=[lilypad_v2,replication,whistleblowing]",
            "mechanism.whistleblowing.nodes=false",  # the chain takes the mediators' proof only
            "network.providers=[{strategy: honest}, {strategy: cheater, rate: 1.0, bribe: 50}]",
            "network.mediators=[{strategy: bribable, threshold: 30, report: true}]",
        ],
        body,
    )
    assert v1 == v0
    cheat = next(k for k, d in deals.items() if d.get("cheat"))
    states = {r["deal_id"]: r["state"] for r in job["replicas"]}
    assert states[cheat] == "MediationRejected" and list(states.values()).count("MediationAccepted") == 1
    (p,) = proven  # the bribe proven on the cheating replica, by the mediator, against its node
    assert p["topics"][1] == "0x" + cheat and Web3.to_checksum_address("0x" + p["topics"][2][-40:]) == who.mediators[0]
    # the report declared the correct result: the honest replica's, which its node posted
    honest = next(k for k in states if k != cheat)
    assert [d["data"][2:] for d in declared] == [deals[honest]["result_id"]]


def test_a_node_restarted_between_its_commit_and_its_reveal_reveals_with_its_stored_salt(run_net) -> None:
    async def body(net: Network) -> tuple:
        v0 = net.total_value()
        job = await net.creators[0].submit("hashseq:v1", {"N": "20000"})
        committed = lambda: _module_logs(net, EVENTS["Committed"])  # noqa: E731
        await wait_until(lambda: committed(), 30, 0.01)  # the cheater commits first: it runs nothing
        await net.stop_service("provider1")  # down before the honest replica's commit opens the reveals
        await wait_until(lambda: len(committed()) == 2, 30)
        await net.start_services(["provider1"])
        rec = await net.creators[0].wait(job, 90)
        return rec, v0, net.total_value()

    rec, v0, v1 = run_net(
        [
            *REPLICATED,
            "network.providers=[{strategy: honest}, {strategy: cheater, rate: 1.0}]",
            "mechanism.replication.commit_reveal=true",
            "mechanism.lilypad_v2.deadline_submit=200",
        ],
        body,
    )
    assert v1 == v0
    # the restarted cheater revealed what it had committed (a new salt would not match: it would time out), so the
    # replicas disagreed and mediation rejected its fake
    assert sorted(r["state"] for r in rec["replicas"]) == ["MediationAccepted", "MediationRejected"]
