"""Faults on the live network: a node killed mid-job, failing containers, an offline mediator, restarts of the
chain node, the solver and a node, replayed messages. Nothing is lost and nothing is paid twice: the sum of every
token (held, free in the contract, escrowed) never changes, and every deal ends in a terminal state."""

from __future__ import annotations

import asyncio

import pytest

from live.chain.binding import Terms
from live.services.chainio import TERMINAL, BlockClock, S
from live.services.network import Network, wait_until

pytestmark = [pytest.mark.xdist_group("docker")]
CHECK_ALL = "network.creators=[{strategy: checker, q: 1.0}]"


def _state(net: Network, deal_hex: str) -> S:
    return net.clients[0].deal(bytes.fromhex(deal_hex)).state


async def _first_deal(net: Network, job: str) -> str:
    c = net.creators[0]
    await wait_until(lambda: any(not k.startswith("job:") for k, _, _ in c.store.all_deals()), 30)
    return next(k for k, _, _ in c.store.all_deals() if not k.startswith("job:"))


def test_node_killed_mid_job_times_out_submit_and_is_slashed(run_net) -> None:
    async def body(net: Network) -> tuple:
        v0, before = net.total_value(), net.balances()
        job = await net.creators[0].submit("fault-timeout:v1", {})
        deal = await _first_deal(net, job)
        await wait_until(lambda: _state(net, deal) == S.DealAgreed, 30)
        await net.stop_service("provider0")  # killed while its container runs
        rec = await net.creators[0].wait(job, 60)
        return rec, v0, net.total_value(), before, net.balances(), net.who

    rec, v0, v1, before, after, who = run_net([], body)
    assert rec["state"] == "TimeoutSubmitResults"
    assert v1 == v0
    assert after[who.clients[0]] == before[who.clients[0]]  # refunded in full
    assert after[who.nodes[0]] - before[who.nodes[0]] == -5  # its submit collateral, slashed (burned)


def test_failing_containers_give_error_results_settled_by_the_rules(run_net) -> None:
    async def body(net: Network) -> tuple:
        v0 = net.total_value()
        jobs = await net.run_jobs([("fault-crash:v1", {}), ("fault-memory:v1", {}), ("fault-timeout:v1", {})], 90)
        errors = sorted(d.get("error") or "" for _, _, d in net.providers[0].store.all_deals())
        return jobs, errors, v0, net.total_value()

    jobs, errors, v0, v1 = run_net([CHECK_ALL], body)
    assert all(j["state"] in ("MediationAccepted", "MediationRejected") for j in jobs)
    assert errors[0].startswith("exit") and errors[1:] == ["memory", "timeout"]
    assert v1 == v0


def test_mediator_offline_times_out_mediation_and_refunds(run_net) -> None:
    async def body(net: Network) -> tuple:
        before = net.balances()
        jobs = await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 60)
        return jobs, before, net.balances(), net.who

    jobs, before, after, who = run_net([CHECK_ALL], body, start=["solver", "provider0", "creator0"])
    assert jobs[0]["state"] == "TimeoutMediateResults"
    assert after[who.clients[0]] == before[who.clients[0]]
    assert after[who.nodes[0]] == before[who.nodes[0]]


def test_restarts_of_chain_node_solver_and_node_resume_every_open_deal(run_net, tmp_path) -> None:
    async def body(net: Network) -> tuple:
        v0 = net.total_value()
        jobs = [await net.creators[0].submit("hashseq:v1", {"N": str(1000 + k)}) for k in range(3)]
        await _first_deal(net, jobs[0])
        await net.stop_service("provider0")
        await net.stop_service("solver")
        net.stop_chain()  # anvil dumps its state on exit
        net.node = type(net.node)(len(net.node.accounts), state=tmp_path / "anvil.json", port=net.node.port)
        net.clock = BlockClock(net.node.url, float(net.cfg["block_s"])).start()
        await net.start_services()
        recs = [await net.creators[0].wait(j, 90) for j in jobs]
        return recs, v0, net.total_value()

    def with_state(overrides: list[str]) -> tuple:
        return run_net(overrides, body)

    # the node must dump to a file it can load again: start it with --state from the beginning
    import live.services.network as network

    orig = network.AnvilChain

    class Dumping(orig):  # type: ignore[misc, valid-type]
        def __init__(self, n: int, state=None, port=None) -> None:
            super().__init__(n, state=tmp_path / "anvil.json", port=port)

    network.AnvilChain = Dumping
    try:
        recs, v0, v1 = with_state([])
    finally:
        network.AnvilChain = orig
    assert all(S[r["state"]] in TERMINAL for r in recs)
    assert v1 == v0


def test_replayed_messages_do_nothing_twice(run_net) -> None:
    async def body(net: Network) -> tuple:
        jobs = await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 60)
        deal = net.clients[0].deal  # noqa: F841
        c = net.creators[0]
        _, data = c.store.get(jobs[0]["deal_id"])
        t = Terms(*data["deal"]["terms"])
        before, v0 = net.balances(), net.total_value()
        cc = net.clients[0]
        replays = [
            cc.agree(t, t.client),
            cc.agree(t, t.node),
            cc.step("submit", t, t.node, result_hash=b"\1" * 32),
            cc.step("accept", t, t.client),
            cc.step("timeout_judge", t, t.node),
        ]
        offer = {
            "node": net.who.nodes[0],
            "offer_id": "dup",
            "capacity": dict.fromkeys(("cpu", "gpu", "vram", "ram", "disk"), 10**6),
            "price": 99,
            "modules": [],
        }
        for _ in range(2):
            await c.post_json(f"{net.solver.url}/offers/resource", offer)
        open_offers = [k for k, _, _ in net.solver.store.open_deals() if k == "res:dup"]
        await asyncio.sleep(0.2)
        return replays, before, net.balances(), v0, net.total_value(), open_offers

    replays, before, after, v0, v1, open_offers = run_net([], body)
    assert replays == [False] * 5
    assert after == before and v1 == v0
    assert open_offers == ["res:dup"]
