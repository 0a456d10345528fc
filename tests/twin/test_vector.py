"""K markets settled by one engine (`twin.vector`, `sim.union`) end each round exactly as the K markets run alone:
every agent's balance and escrow, every public counter, every deal (parties, mediator, state, cheat, per-reason
amounts), for every mechanism preset the union accepts; the others are refused before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mechanisms.config import ConfigError
from twin.build import build, parse, parse_stack
from twin.vector import UNION_SAFE, build_markets

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PRESETS = [*sorted(p.stem for p in (CONFIGS / "mechanism").glob("*.yaml")), "collusion/replication"]
AGENTS = {
    "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 0.7, "bribe": 20}],
    "clients": [{"strategy": "checker", "q": 0.4}, {"strategy": "never_check", "share": 0.5}],
    "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 10}],
}
MARKET = {"n_clients": 7, "n_nodes": 6, "n_mediators": 3, "n_stakers": 2, "client_activity": 0.8,
          "response": {"client_agree": 2.0, "node_submit": 20.0, "client_judge": 8.0, "mediator": 20.0}}  # fmt: skip


def mechanism(preset: str) -> dict[str, Any]:
    """The preset's mechanism section, as Hydra composes it for `simulate`."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return OmegaConf.to_container(compose("simulate", overrides=[f"mechanism={preset}"]).mechanism, resolve=True)


def config(preset: str, seed: int) -> dict[str, Any]:
    return {"seed": seed, "market": MARKET, "mechanism": mechanism(preset), "agents": AGENTS}


@pytest.mark.parametrize("preset", PRESETS)
def test_markets_settled_together_end_as_alone(preset: str) -> None:
    seeds = [11, 12, 13]
    stack = parse_stack(config(preset, 0))
    if not all(m.name in UNION_SAFE for m in stack.active):
        with pytest.raises(ConfigError, match=r"env\.markets: markets settled together need mechanisms from "):
            build_markets([parse(config(preset, s)) for s in seeds], stack)
        return
    union = build_markets([parse(config(preset, s)) for s in seeds], stack)
    alone = [build(config(preset, s)) for s in seeds]
    f = alone[0].market.facts
    agents = {"client": (0, f.n_clients), "node": (f.first_node, f.n_nodes),
              "mediator": (f.first_mediator, f.n_mediators)}  # fmt: skip
    seen = set()
    for r in range(4):
        together = union.engine.step(union.actions(r))
        for k, one in enumerate(alone):
            result = one.engine.step(one.population.actions(r))
            for role, (first, size) in agents.items():
                mine = union.account(role, k, np.arange(size))
                for arr in ("balance", "escrow"):
                    np.testing.assert_array_equal(getattr(union.engine.ledger, arr)[mine],
                                                  getattr(one.engine.ledger, arr)[first:first + size])  # fmt: skip
                for name, counts in one.engine.record.counters.items():
                    np.testing.assert_array_equal(
                        union.engine.record.counters[name][mine], counts[first : first + size]
                    )
            d, u = result.deals, together.deals
            rows = union.market_of("client", u.client) == k  # this market's deals, in their order
            np.testing.assert_array_equal(u.client[rows] - k * f.n_clients, d.client)
            np.testing.assert_array_equal(union.market_of("node", u.node[rows]), k)
            np.testing.assert_array_equal(u.node[rows] - union.first("node") - k * f.n_nodes + f.first_node, d.node)
            local_mediator = np.where(u.mediator[rows] >= 0, u.mediator[rows] - k * f.n_mediators, -1)
            np.testing.assert_array_equal(local_mediator, d.mediator)
            for col in ("state", "cheated", "checked", "bribe_accepted"):
                np.testing.assert_array_equal(getattr(u, col)[rows], getattr(d, col), err_msg=col)
            np.testing.assert_array_equal(together.transfers.reason_sums(u.deal_id)[rows],
                                          result.transfers.reason_sums(d.deal_id))  # fmt: skip
            seen.update(int(s) for s in d.state)
    assert len(seen) >= 3  # several terminal paths (no checks under `none`), so the comparison bites


def test_too_many_mediators_in_all_are_refused() -> None:
    seeds = range(22)  # 22 markets x 3 mediators > 63 bits of a trust mask
    stack = parse_stack(config("lilypad_v2", 0))
    with pytest.raises(ConfigError, match=r"env.markets=22 is invalid: 22 markets of 3 mediators: at most 63"):
        build_markets([parse(config("lilypad_v2", s)) for s in seeds], stack)
