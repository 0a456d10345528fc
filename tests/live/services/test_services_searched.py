"""A mechanism found by `experiments.search` is deployed with `live.deploy` and the services run it: the contract
holds its parameters and the services take their terms and checks from it (the deployment file)."""

from __future__ import annotations

import pytest

from experiments.search import write_winner
from live import deploy
from live.services.network import Network

pytestmark = [pytest.mark.xdist_group("docker")]

SEARCHED = {
    "order": ["lilypad_v2", "check_policy"],
    "lilypad_v2": {"results_multiplier_bps": 30_000, "mediation_fee": 70},
    "check_policy": {"mode": "fixed", "q": 0.0},
}


def test_a_searched_mechanism_is_deployed_and_run_live(run_net, tmp_path) -> None:
    write_winner(tmp_path / "search", "searched", SEARCHED, "test winner")
    record = deploy.run(
        [
            "mechanism=searched",
            f"searchpath={tmp_path / 'search'}",
            "chain=anvil",
            "market=live",
            f"state={tmp_path / 'anvil.json'}",
            f"out={tmp_path / 'deployment.json'}",
            "accounts=11",
        ]
    )
    assert record["params"]["base_multiplier_bps"] == 30_000
    assert record["mechanism"]["order"] == ["lilypad_v2", "check_policy"]

    async def body(net: Network) -> tuple:
        jobs = await net.run_jobs([("cowsay:v1", {"Message": "moo"})] * 2, 60)
        return jobs, [m.name for m in net.stack.active]

    overrides = [
        f"deployment={tmp_path / 'deployment.json'}",
        "market.n_mediators=3",
        "network.creators=[{strategy: checker, q: 1.0}]",
    ]
    jobs, active = run_net(overrides, body, start=["solver", "provider0", "creator0"])
    assert active == ["lilypad_v2", "check_policy"]
    # the creator would check every result; the searched check policy (q = 0) decides instead, as in the twin
    assert [j["state"] for j in jobs] == ["ResultsAccepted", "ResultsAccepted"]
    assert not any(j["checked"] for j in jobs)
