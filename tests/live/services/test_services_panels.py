"""Consortium panels and the tax jackpot on the live network (anvil, a real Docker engine): every seated member of
the level now voting re-runs the job and votes on chain, a split panel escalates, a silent member leaves the deal to
the mediation timeout, and the solver ends jackpot rounds so a client whose check was upheld is paid from the pool.
Value is conserved throughout."""

from __future__ import annotations

import pytest
from eth_abi import decode
from web3 import Web3

from live.chain.binding import Terms
from live.services.chainio import JACKPOT, S
from live.services.network import Network, wait_until
from live.services.policy import strategy

pytestmark = [pytest.mark.xdist_group("docker")]
MEMBER_FEE = 60
#: a 2-of-2 first panel, one escalation level doubling it (3 seats with 3 mediators), majority fallback
PANEL = [
    "market.n_mediators=3",
    "network.mediators=[{strategy: honest}, {strategy: honest}, {strategy: honest}]",
    "network.creators=[{strategy: checker, q: 1.0}]",
    "mechanism.order=[lilypad_v2,consortium]",
    "+mechanism/parts@mechanism.consortium=consortium",
    "mechanism.consortium.size=2",
    "mechanism.consortium.threshold=2",
    f"mechanism.consortium.member_fee={MEMBER_FEE}",
    "mechanism.lilypad_v2.deadline_mediate=200",  # 10 s of 0.05 s blocks: members re-run one after another
]


def _logs(net: Network, event: str, deal: str | None = None) -> list[dict]:
    topics = ["0x" + Web3.keccak(text=event).hex()] + ([f"0x{deal}"] if deal else [])
    flt = {"address": net.record["contracts"]["deals"], "fromBlock": "0x0", "toBlock": "latest", "topics": topics}
    return net.node.rpc("eth_getLogs", flt)


def _votes(net: Network, deal: str) -> list[tuple[str, bool, bool]]:
    """(member, accept, reran) of each Voted event of the deal, in order."""
    out = []
    for lg in _logs(net, "Voted(bytes32,address,bool,bool)", deal):
        accept, reran = decode(["bool", "bool"], bytes.fromhex(lg["data"][2:]))
        out.append((Web3.to_checksum_address("0x" + lg["topics"][2][-40:]), accept, reran))
    return out


def test_a_panel_reruns_and_votes_and_the_contract_settles(run_net) -> None:
    async def body(net: Network) -> tuple:
        v0, before = net.total_value(), net.balances()
        jobs = await net.run_jobs([("cowsay:v1", {"Message": "moo"}), ("hashseq:v1", {"N": "700"})], 120)
        panels = {j["deal_id"]: net.clients[0].panel_of(bytes.fromhex(j["deal_id"])) for j in jobs}
        votes = {j["deal_id"]: _votes(net, j["deal_id"]) for j in jobs}
        cheated = {k for p in net.providers for k, _, d in p.store.all_deals() if d.get("cheat")}
        return jobs, panels, votes, cheated, v0, net.total_value(), before, net.balances(), net.who

    overrides = [*PANEL, "market.n_nodes=2", "network.providers=[{strategy: honest}, {strategy: cheater, rate: 1.0}]"]
    jobs, panels, votes, cheated, v0, v1, before, after, who = run_net(overrides, body)
    assert v1 == v0
    for j in jobs:
        deal = j["deal_id"]
        assert len(panels[deal]) == 3  # every trusted mediator seated, the first two voting
        assert sorted(m for m, _, _ in votes[deal]) == sorted(panels[deal][:2])
        honest = deal not in cheated
        assert all(accept == honest and reran for _, accept, reran in votes[deal])
        assert j["state"] == ("MediationAccepted" if honest else "MediationRejected")
    gained = [after[m] - before[m] for m in who.mediators]
    assert sum(gained) == 2 * len(jobs) * MEMBER_FEE  # two seats paid per deal; the unused seat refunded
    assert {g % MEMBER_FEE for g in gained} == {0}


def test_a_node_bribes_every_seat_and_bribed_members_vote_without_rerunning(run_net) -> None:
    async def body(net: Network) -> tuple:
        jobs = await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 60)
        offered = net.providers[0].store.get(jobs[0]["deal_id"])[1].get("bribed_to", [])
        return (
            jobs,
            _votes(net, jobs[0]["deal_id"]),
            offered,
            net.clients[0].panel_of(bytes.fromhex(jobs[0]["deal_id"])),
        )

    overrides = [
        *PANEL,
        "network.providers=[{strategy: cheater, rate: 1.0, bribe: 50}]",
        "network.mediators=[{strategy: bribable, threshold: 30}, {strategy: bribable, threshold: 30}, "
        "{strategy: bribable, threshold: 30}]",
    ]
    jobs, votes, offered, panel = run_net(overrides, body)
    assert sorted(offered) == sorted(panel)  # every seat offered the bribe
    assert jobs[0]["state"] == "MediationAccepted"  # the cheat is missed
    assert [(accept, reran) for _, accept, reran in votes] == [(True, False), (True, False)]


def test_a_split_panel_escalates_and_the_dissenter_forfeits_its_fee(run_net) -> None:
    """Seat 0 votes for a fake result (cast here with its key, standing in for a corrupt member); seat 1 votes
    against, so the panel grows to seat 2, whose service waits for its level and votes; the majority fallback
    rejects and the dissenter, who declared no re-run, keeps nothing."""

    async def body(net: Network) -> tuple:
        v0, before = net.total_value(), net.balances()
        job = await net.creators[0].submit("cowsay:v1", {"Message": "moo"})
        cc = net.clients[0]
        deal = await _deal_in(net, S.ResultsChecked)
        panel = cc.panel_of(bytes.fromhex(deal))
        seat0 = net.who.mediators.index(panel[0])
        t = Terms(*net.creators[0].store.get(deal)[1]["deal"]["terms"])
        corrupt = net.chain_client(net.keys.mediators[seat0])
        assert corrupt.step("vote", t, panel[0], accept=True, reran=False)
        assert not corrupt.step("vote", t, panel[0], accept=True, reran=False)  # a replayed vote does nothing
        await net.start_services([f"mediator{i}" for i in range(3) if i != seat0])
        rec = await net.creators[0].wait(job, 90)
        escalated = _logs(net, "PanelEscalated(bytes32,uint256,uint256)", deal)
        return rec, panel, _votes(net, deal), escalated, v0, net.total_value(), before, net.balances()

    overrides = [*PANEL, "network.providers=[{strategy: cheater, rate: 1.0}]"]
    rec, panel, votes, escalated, v0, v1, before, after = run_net(
        overrides, body, start=["solver", "provider0", "creator0"]
    )
    assert rec["state"] == "MediationRejected"
    assert len(escalated) == 1
    assert votes == [(panel[0], True, False), (panel[1], False, True), (panel[2], False, True)]
    assert after[panel[0]] == before[panel[0]]  # dissent slashed: no re-run declared, nothing kept
    assert [after[m] - before[m] for m in panel[1:]] == [MEMBER_FEE, MEMBER_FEE]
    assert v1 == v0


def test_a_silent_panel_member_leaves_the_deal_to_the_mediation_timeout(run_net) -> None:
    async def body(net: Network) -> tuple:
        before = net.balances()
        jobs = await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 90)
        return jobs, _votes(net, jobs[0]["deal_id"]), before, net.balances(), net.who

    # one member of three online: a two-seat level never completes
    jobs, votes, before, after, who = run_net(
        [*PANEL, "network.providers=[{strategy: honest}]", "mechanism.lilypad_v2.deadline_mediate=40"],
        body,
        start=["solver", "provider0", "creator0", "mediator0"],
    )
    assert jobs[0]["state"] == "TimeoutMediateResults"
    assert len(votes) <= 1
    assert all(after[a] == before[a] for a in (who.clients[0], who.nodes[0], *who.mediators))  # all refunded


def test_the_solver_ends_jackpot_rounds_and_an_upheld_check_is_paid(run_net) -> None:
    """Honest deals pay their tax into the pool; the solver ends the round (the pool rolls into the next round's
    start); a cheat caught by a check files the client's claim, and the next round's end pays it from the pool."""

    async def body(net: Network) -> tuple:
        v0 = net.total_value()
        deals = net.clients[0].dep.deals.functions
        honest = await net.run_jobs([("cowsay:v1", {"Message": "moo"})] * 2, 60)
        pool = deals.balanceOf(JACKPOT).call()
        await wait_until(lambda: deals.roundStartPool().call() == pool, 30)
        net.providers[0].policy = strategy("nodes", {"strategy": "cheater", "rate": 1.0}, "test")  # turns to cheat
        cheat = await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 60)
        await wait_until(lambda: deals.pendingClaims().call() == 0, 30)
        paid = [
            (Web3.to_checksum_address("0x" + lg["topics"][2][-40:]), int(lg["data"], 16))
            for lg in _logs(net, "JackpotPaid(bytes32,address,uint256)")
        ]
        return honest, cheat, pool, paid, net.who, v0, net.total_value()

    overrides = [
        "network.creators=[{strategy: checker, q: 1.0}]",
        "network.price=1000",
        "network.jackpot_round_blocks=5",
        "mechanism.order=[lilypad_v2,tax_jackpot]",
        "+mechanism/parts@mechanism.tax_jackpot=tax_jackpot",
        "mechanism.tax_jackpot.tax_bps=1000",
        "mechanism.tax_jackpot.fraction_bps=5000",
    ]
    honest, cheat, pool, paid, who, v0, v1 = run_net(overrides, body)
    assert [j["state"] for j in honest] == ["MediationAccepted"] * 2
    assert pool == 2 * 1000 * 1000 // 10_000  # 10% of two job costs of 1000
    assert cheat[0]["state"] == "MediationRejected"
    assert paid == [(who.clients[0], pool * 5000 // 10_000)]
    assert v1 == v0


async def _deal_in(net: Network, state: S) -> str:
    """The creator's first deal once it reaches `state` on chain."""
    c = net.creators[0]

    def reached() -> bool:
        keys = [k for k, _, _ in c.store.all_deals() if not k.startswith("job:")]
        return bool(keys) and net.clients[0].deal(bytes.fromhex(keys[0])).state == state

    await wait_until(reached, 60)
    return next(k for k, _, _ in c.store.all_deals() if not k.startswith("job:"))
