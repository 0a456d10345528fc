"""The live network end to end on anvil and a real Docker engine: jobs settle on chain by the mechanism's rules,
cheats are caught by checks, value is conserved, and bad input is refused before any deposit."""

from __future__ import annotations

import pytest

from live.chain.binding import Terms
from live.modules import ModuleError
from live.services.base import check_bind
from live.services.network import Network

pytestmark = [pytest.mark.xdist_group("docker")]


def test_honest_jobs_settle_and_conserve_value(run_net) -> None:
    async def body(net: Network) -> tuple:
        v0, before = net.total_value(), net.balances()
        jobs = await net.run_jobs([("cowsay:v1", {"Message": "moo"}), ("hashseq:v1", {"N": "500"})], 60)
        return jobs, v0, net.total_value(), before, net.balances(), net.who

    jobs, v0, v1, before, after, who = run_net(["jobs=2"], body)
    assert [j["state"] for j in jobs] == ["ResultsAccepted", "ResultsAccepted"]
    assert all(j["verified"] and not j["checked"] for j in jobs)
    assert v1 == v0
    # the node earned exactly the two job costs (price 10 x instructions 1 and 2), the client paid them
    assert after[who.nodes[0]] - before[who.nodes[0]] == 30
    assert after[who.clients[0]] - before[who.clients[0]] == -30


def test_cheater_is_caught_by_a_check_and_slashed(run_net) -> None:
    async def body(net: Network) -> tuple:
        v0 = net.total_value()
        jobs = await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 60)
        return jobs, v0, net.total_value()

    jobs, v0, v1 = run_net(
        ["network.providers=[{strategy: cheater, rate: 1.0}]", "network.creators=[{strategy: checker, q: 1.0}]"], body
    )
    assert jobs[0]["state"] == "MediationRejected"
    assert jobs[0]["verified"]  # a consistent fake: only the mediator's re-run exposes it
    assert v1 == v0


def test_bribable_mediator_takes_the_bribe(run_net) -> None:
    async def body(net: Network) -> list:
        return await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 60)

    jobs = run_net(
        [
            "network.providers=[{strategy: cheater, rate: 1.0, bribe: 50}]",
            "network.creators=[{strategy: checker, q: 1.0}]",
            "network.mediators=[{strategy: bribable, threshold: 30}]",
        ],
        body,
    )
    assert jobs[0]["state"] == "MediationAccepted"


def test_bad_module_inputs_and_offers_are_refused_before_any_deposit(run_net) -> None:
    async def body(net: Network) -> None:
        before = net.balances()
        c = net.creators[0]
        with pytest.raises(ModuleError, match="nope"):
            await c.submit("nope:v1", {})
        with pytest.raises(ModuleError, match="Bogus"):
            await c.submit("cowsay:v1", {"Bogus": "x"})
        solver = net.solver.url
        bad_offers = [
            ({"node": net.who.nodes[0], "offer_id": "x", "capacity": {"cpu": -1}, "price": 1, "modules": []}, "cpu"),
            ({"node": net.who.clients[0], "offer_id": "x", "capacity": {}, "price": 1, "modules": []}, "node"),
            (
                {
                    "node": net.who.nodes[0],
                    "offer_id": "x",
                    "capacity": dict.fromkeys(("cpu", "gpu", "vram", "ram", "disk"), 1),
                    "price": 0,
                    "modules": [],
                },
                "price",
            ),
        ]
        for offer, field in bad_offers:
            async with c.http.post(f"{solver}/offers/resource", json=offer) as r:
                assert r.status == 400
                assert field in (await r.json())["error"]
        async with c.http.post(
            f"{solver}/offers/job",
            json={"client": net.who.clients[0], "offer_id": "j", "module": "cowsay:v1", "inputs": {"Q": "1"}},
        ) as r:
            assert r.status == 400 and "module" in (await r.json())["error"]
        assert net.balances() == before

    run_net([], body)


def test_services_bind_to_loopback_only() -> None:
    assert check_bind("127.0.0.1", False) == "127.0.0.1"
    with pytest.raises(ValueError, match="loopback"):
        check_bind("0.0.0.0", False)
    assert check_bind("0.0.0.0", True) == "0.0.0.0"


def test_stack_draws_the_mediator_when_asked(run_net) -> None:
    """mediator_draw=stack: the terms name the one mediator the stack's select_mediators drew, and that one mediates
    on chain."""

    async def body(net: Network) -> tuple:
        jobs = await net.run_jobs([("cowsay:v1", {"Message": "moo"})] * 4, 90)
        c = net.clients[0]
        out = []
        for j in jobs:
            deal = net.solver.store.get(f"deal:{j['deal_id']}")[1]
            out.append((Terms(*deal["terms"]).mediators, c.deal(bytes.fromhex(j["deal_id"])).mediator))
        return jobs, out

    honest = "{strategy: honest}"
    jobs, drawn = run_net(
        [
            "market.n_mediators=3",
            f"network.mediators=[{honest},{honest},{honest}]",
            "network.mediator_draw=stack",
            "network.providers=[{strategy: cheater, rate: 1.0}]",
            "network.creators=[{strategy: checker, q: 1.0}]",
        ],
        body,
    )
    assert [j["state"] for j in jobs] == ["MediationRejected"] * 4
    for mask, on_chain in drawn:
        assert mask.bit_count() == 1 and on_chain - 1 == mask.bit_length() - 1


def test_stack_mediator_is_the_stacks_uniform_pick() -> None:
    from experiments.analysis.configs import compose_plain
    from live.services.policy import LiveMarket, deal_of_one, stack_mediator
    from mechanisms.base import MechanismStack
    from twin.build import parse_market

    cfg = compose_plain("live", ["market.n_mediators=3"])
    stack = MechanismStack.from_mapping(cfg["mechanism"], "mechanism")
    market = LiveMarket(parse_market(cfg))
    t = Terms("0x" + "11" * 20, "0x" + "22" * 20, 10, 1, 10000, 0, 0b111, 1)
    picks = []
    for u in (0.0, 0.5, 0.99):
        draws = [u] * max(stack.draws_per_deal, 1)
        picks.append(stack_mediator(deal_of_one(t, market, 0, 2, stack, draws), stack))
    assert picks == [0, 1, 2]
    only = deal_of_one(t._replace(mediators=0b100), market, 0, 2, stack, [0.0] * max(stack.draws_per_deal, 1))
    assert stack_mediator(only, stack) == 2
