"""K markets in one vectorised env (`marl.vector.VecMarketEnv`) are the K copies of the env that RLlib's stock
vectorisation would step one by one (copy k reset with seed + k): the same observations, rewards, flags and infos,
market by market, through an episode's end and the automatic reset into the next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from marl.rllib import RLlibMarketEnv
from marl.vector import VecMarketEnv
from mechanisms.config import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MARKET = OmegaConf.to_container(OmegaConf.load(CONFIGS / "market" / "threshold.yaml"))


def config(**env: Any) -> dict[str, Any]:
    """An inspection-game market with some lateness, learning nodes, clients and mediators among scripted ones."""
    return {
        "seed": 4,
        "market": {**MARKET, "n_clients": 6, "n_nodes": 6, "n_mediators": 3, "client_activity": 0.8,
                   "response": {"node_submit": 30.0, "client_judge": 10.0}},
        "agents": {"nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 0.5, "bribe": 20}],
                   "clients": [{"strategy": "checker", "q": 0.5}],
                   "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 10}]},
        "env": {"rounds": 3, "focal": {"node": 3, "client": 2, "mediator": 1}, "bribe_penalty": 2, **env},
    }  # fmt: skip


def same(a: Any, b: Any) -> None:
    """Equal to the last bit, through dicts, lists and arrays."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            same(a[key], b[key])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b and type(a) is type(b), (a, b)


def sample(space: Any, rng: np.random.Generator) -> Any:
    """A random action of a Discrete or MultiDiscrete space, from `rng` (not the space's own generator)."""
    if hasattr(space, "nvec"):
        return rng.integers(0, space.nvec).astype(space.dtype)
    return int(rng.integers(0, space.n))


@pytest.mark.parametrize("env", [{}, {"shared_reward": True, "truncate": True}])
def test_markets_stepped_together_are_the_envs_stepped_alone(env: dict[str, Any]) -> None:
    k = 3
    vec, alone = VecMarketEnv(config(**env), k), [RLlibMarketEnv(config(**env)) for _ in range(k)]
    obs, infos = vec.reset(seed=9)
    for i, one in enumerate(alone):
        same(one.reset(seed=9 + i), (obs[i], infos[i]))
    rng = np.random.default_rng(0)
    resets = 0
    for _ in range(2 * 3 + 1):  # two episodes and the reset between them
        actions = [{a: sample(one.action_spaces[a], rng) for a in one.agents} for one in alone]
        out = vec.step(actions)
        for i, one in enumerate(alone):
            if not one.agents:  # the episode ended: the vector env starts the next one (RLlib's "next_step")
                obs_i, infos_i = one.reset()
                resets += 1
                assert out[1][i] == dict.fromkeys(one.possible_agents, 0.0)
                same(obs_i, out[0][i])
                same(infos_i, out[4][i])
                continue
            expected = one.step(actions[i])
            for got, want in zip((out[0][i], out[1][i], out[2][i], out[3][i], out[4][i]), expected, strict=True):
                same(want, got)
    assert resets == k


def test_markets_that_would_couple_are_refused() -> None:
    cfg = {**config(), "mechanism": {"order": ["lilypad_v2", "tax_jackpot"]}}
    with pytest.raises(ConfigError, match=r"algo\.env_runners\.num_envs_per_env_runner: markets settled together"):
        VecMarketEnv(cfg, 2)
