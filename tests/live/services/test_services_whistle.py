"""Whistleblowing's mediator proof on the live network (anvil, a real Docker engine): a cheating node's bribe offer
carries its EIP-712 signature; a bribable mediator that reports presents it instead of its verdict (the result is
rejected, the mediator keeps `reward_bps` of the node's slashed results collateral and passes on the rest), one that
does not report takes the bribe as before, an offer whose signature is not the deal's node's is refused, and an
honest node's result and the verdict go through WhistleModule. Value is conserved throughout."""

from __future__ import annotations

import pytest
from web3 import Web3

from live.chain.binding import Terms
from live.services.chainio import S
from live.services.network import Network
from live.services.policy import deal_of_one
from mechanisms.money import mul_bps

pytestmark = [pytest.mark.xdist_group("docker")]
REWARD_BPS = 4000  # below 100%: the reporter passes the rest on to where the deposit would have gone (the burn)
BURN = "0x000000000000000000000000000000000000dEaD"
WHISTLE = [
    "mechanism.order=[lilypad_v2,whistleblowing]",
    "+mechanism/parts@mechanism.whistleblowing=whistleblowing",
    "mechanism.whistleblowing.enabled=true",
    "mechanism.whistleblowing.nodes=false",
    f"mechanism.whistleblowing.reward_bps={REWARD_BPS}",
    "network.creators=[{strategy: checker, q: 1.0}]",
]
BRIBING = [*WHISTLE, "network.providers=[{strategy: cheater, rate: 1.0, bribe: 50}]"]
MOO = [("cowsay:v1", {"Message": "moo"})]
PROVEN = "BribeProven(bytes32,address,address)"


def _logs(net: Network, address: str, event: str, deal: str) -> list[dict]:
    topics = ["0x" + Web3.keccak(text=event).hex(), f"0x{deal}"]
    return net.node.rpc("eth_getLogs", {"address": address, "fromBlock": "0x0", "toBlock": "latest", "topics": topics})


def _address(word: str) -> str:
    return Web3.to_checksum_address("0x" + word[-40:])


def _terms(net: Network, deal: str) -> Terms:
    return Terms(*net.solver.store.get(f"deal:{deal}")[1]["terms"])


def test_a_bribed_mediator_proves_the_signed_bribe_and_keeps_its_reward(run_net) -> None:
    async def body(net: Network) -> tuple:
        v0, before = net.total_value(), net.balances()
        jobs = await net.run_jobs(MOO, 60)
        deal = jobs[0]["deal_id"]
        proven = _logs(net, net.record["contracts"]["whistleblowing"], PROVEN, deal)
        # what the mechanism pays, from the deployment's reward and the twin's terms of this deal (set_terms)
        t = _terms(net, deal)
        d = deal_of_one(t, net.market, 0, 1, net.stack, [0.0] * max(net.stack.draws_per_deal, 1))
        reward_bps = int(net.record["params"]["reward_bps"])
        paid = (int(d.results_collateral[0]), int(d.mediation_fee[0]), reward_bps)
        return jobs, t, proven, paid, v0, net.total_value(), before, net.balances(), net.who

    mediator = "network.mediators=[{strategy: bribable, threshold: 30, report: true}]"
    jobs, t, proven, paid, v0, v1, before, after, who = run_net([*BRIBING, mediator], body)
    assert jobs[0]["state"] == "MediationRejected"
    assert len(proven) == 1
    assert _address(proven[0]["topics"][2]) == who.mediators[0] and _address(proven[0]["data"]) == t.node
    collateral, fee, reward_bps = paid
    assert reward_bps == REWARD_BPS
    reward = mul_bps(collateral, reward_bps)
    assert 0 < reward < collateral
    assert after[who.mediators[0]] - before[who.mediators[0]] == fee + reward
    assert after[BURN] - before[BURN] == collateral - reward  # passed on to where the deposit would have gone
    assert v1 == v0


def test_a_mediator_that_does_not_report_takes_the_bribe_and_forged_offers_are_refused(run_net) -> None:
    async def body(net: Network) -> tuple:
        jobs = await net.run_jobs(MOO, 60)
        deal = jobs[0]["deal_id"]
        m = net.mediators[0]
        kept = m.store.get_value(f"bribe_signature:{deal}")
        proven = _logs(net, net.record["contracts"]["whistleblowing"], PROVEN, deal)
        # an offer "signed" by another key (the client's: a mediator framing the node could not do better) and a
        # malformed signature are refused naming the field, before anything is kept
        dep = net.clients[0].dep
        forged = net.keys.clients[0].sign_typed(dep.bribe_typed(bytes.fromhex(deal)))
        replies = []
        for sig in ("0x" + forged.hex(), "0x1234"):
            async with m.http.post(f"{m.url}/bribes", json={"deal": deal, "amount": 50, "signature": sig}) as r:
                replies.append((r.status, (await r.json())["error"]))
        return jobs, kept, proven, replies, net.who

    mediator = "network.mediators=[{strategy: bribable, threshold: 30}]"
    jobs, kept, proven, replies, who = run_net([*BRIBING, mediator], body)
    assert jobs[0]["state"] == "MediationAccepted"  # bribed, as without whistleblowing
    assert kept is not None and len(bytes.fromhex(kept)) == 65  # the node's signed offer reached it
    assert proven == []
    assert replies[0][0] == 400 and replies[0][1].startswith("signature=") and who.nodes[0] in replies[0][1]
    assert replies[1][0] == 400 and "65 bytes" in replies[1][1]


def test_an_honest_node_settles_through_the_whistle_module(run_net) -> None:
    async def body(net: Network) -> tuple:
        v0 = net.total_value()
        jobs = await net.run_jobs(MOO, 60)
        deal, module = jobs[0]["deal_id"], net.record["contracts"]["whistleblowing"]
        deals = net.record["contracts"]["deals"]
        called = {  # state entered -> the contract the transaction that entered it called
            S(int(lg["data"][2:66], 16)).name: _address(
                net.node.rpc("eth_getTransactionByHash", lg["transactionHash"])["to"]
            )
            for lg in _logs(net, deals, "StateChanged(bytes32,uint8,uint256[])", deal)
        }
        return jobs, called, module, deals, v0, net.total_value()

    jobs, called, module, deals, v0, v1 = run_net(WHISTLE, body)
    assert jobs[0]["state"] == "MediationAccepted"  # checked (q = 1), the honest mediator upholds the result
    # the result and the verdict through the module; the parties' own steps to the deal contract
    assert called["ResultsSubmitted"] == called["MediationAccepted"] == module
    assert called["ResultsChecked"] == deals
    assert v1 == v0
