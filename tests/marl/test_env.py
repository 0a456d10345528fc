"""The PettingZoo env: API compliance, exact determinism, rewards equal to ledger wealth changes, focal choices
reaching the engine, scripted background agents, the bribe penalty, privacy of observations, config errors.

Markets are the inspection-game preset (configs/market/threshold.yaml) shrunk to a few agents: price 10, compute cost
6, results collateral 2x, nobody late.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.passive_env_checker import check_obs
from omegaconf import OmegaConf
from pettingzoo.test import parallel_api_test

from marl.config import MAX_SCALE
from marl.env import MarketEnv
from marl.heads import HEADS
from marl.observations import COMMON_FEATURES, ROLE_FEATURES
from mechanisms.config import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MARKET = OmegaConf.to_container(OmegaConf.load(CONFIGS / "market" / "threshold.yaml"))


def config(
    seed: int = 1,
    rounds: int = 6,
    focal: dict | None = None,
    nodes: list | None = None,
    clients: list | None = None,
    mediators: list | None = None,
    **env: Any,
) -> dict[str, Any]:
    """A small inspection-game market: 6 clients, 6 nodes, 3 mediators."""
    return {
        "seed": seed,
        "market": {**MARKET, "n_clients": 6, "n_nodes": 6, "n_mediators": 3},
        "agents": {
            "nodes": nodes or [{"strategy": "honest"}],
            "clients": clients or [{"strategy": "checker", "q": 0.3}],
            "mediators": mediators or [{"strategy": "honest"}],
        },
        "env": {"rounds": rounds, "focal": focal or {"node": 3, "client": 2, "mediator": 2}, **env},
    }


def rollout(env: MarketEnv, seed: int | None, action_seed: int) -> list[tuple]:
    """One episode under actions drawn from a fixed Generator (so two envs get the same actions)."""
    rng = np.random.default_rng(action_seed)
    obs, infos = env.reset(seed=seed)
    steps = [(obs, infos)]
    while env.agents:
        actions = {a: _sample(env.action_space(a), rng) for a in env.agents}
        steps.append(env.step(actions))
    return steps


def _sample(space: gymnasium.Space, rng: np.random.Generator) -> Any:
    if isinstance(space, gymnasium.spaces.Discrete):
        return int(rng.integers(space.n))
    return rng.integers(space.nvec)


def assert_same(a: Any, b: Any) -> None:
    """Deep equality of nested dicts / tuples / arrays, bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    else:
        assert a == b


def test_parallel_api_test_passes() -> None:
    parallel_api_test(MarketEnv(config(rounds=10)), num_cycles=50)


def test_spaces_per_role_are_fixed_objects_and_observations_fit() -> None:
    env = MarketEnv(config(bribe_levels=[0, 5, 50], threshold_levels=[5, 50]))
    assert env.possible_agents == ["node_0", "node_1", "node_2", "client_0", "client_1", "mediator_0", "mediator_1"]
    assert env.action_space("node_0") == gymnasium.spaces.MultiDiscrete([2, 3])  # cheat x bribe level
    assert env.action_space("client_1") == gymnasium.spaces.Discrete(2)  # check
    assert env.action_space("mediator_0") == gymnasium.spaces.Discrete(3)  # honest, >= 5, >= 50
    assert env.action_space("node_0") is env.action_space("node_2")
    assert env.observation_space("node_0") is env.observation_space("node_1")
    for role, agent in (("node", "node_0"), ("client", "client_0"), ("mediator", "mediator_0")):
        assert env.observation_space(agent).shape == (len(COMMON_FEATURES) + len(ROLE_FEATURES[role]),)
    for obs, *_ in rollout(env, seed=3, action_seed=0):
        for agent, o in obs.items():
            assert env.observation_space(agent).contains(o), agent


EXTREME = {
    "default": {},
    "tiny bound, not a float32 number": {"obs_clip": 0.7e-3},
    "money features far beyond the bound": {"money_scale": 1e-30},
    "largest bound, money beyond float32": {"obs_clip": MAX_SCALE, "money_scale": 1e-38},
    "huge money scale": {"money_scale": MAX_SCALE, "reward_scale": 1e-9},
}


@pytest.mark.parametrize("env_cfg", EXTREME.values(), ids=EXTREME)
def test_observations_are_float32_inside_the_space_at_reset_and_every_step(env_cfg: dict[str, Any]) -> None:
    """Every role learning, every head, bribes offered and taken: gymnasium's own observation checker stays silent
    over whole episodes, and every observation is a finite float32 vector inside its Box."""
    actions = {"node": list(HEADS["node"]), "client": list(HEADS["client"]), "mediator": list(HEADS["mediator"])}
    env = MarketEnv(
        config(
            rounds=8,
            focal={"node": 6, "client": 6, "mediator": 3},
            actions=actions,
            clients=[{"strategy": "checker", "q": 0.5}],
            **env_cfg,
        )
    )
    steps = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker reports by warning
        for episode in range(3):
            for obs, *_ in rollout(env, seed=episode, action_seed=episode):
                steps += 1
                for agent, o in obs.items():
                    space = env.observation_space(agent)
                    check_obs(o, space, "step")
                    assert o.dtype == np.float32 and np.isfinite(o).all() and space.contains(o), (agent, o)
    assert steps == 3 * 9  # reset + 8 steps, three episodes
    high = env.observation_space("node_0").high
    assert high.dtype == np.float32 and (high == np.float32(env.cfg.obs_clip)).all()


def test_same_seed_same_episode_and_different_seed_differs() -> None:
    cfg = config(rounds=12)
    first = rollout(MarketEnv(cfg), seed=5, action_seed=9)
    assert_same(first, rollout(MarketEnv(cfg), seed=5, action_seed=9))
    assert len(first) == 13 and all(first[-1][2].values())  # reset + 12 steps, terminated at the end
    other = rollout(MarketEnv(cfg), seed=6, action_seed=9)
    with pytest.raises(AssertionError):
        assert_same(first, other)


def test_episodes_follow_the_construction_seed_without_reset_seeds() -> None:
    a, b = MarketEnv(config(seed=4)), MarketEnv(config(seed=4))
    for k in range(3):  # successive episodes differ from each other but match across the two envs
        ep_a, ep_b = rollout(a, None, k), rollout(b, None, k)
        assert_same(ep_a, ep_b)
    seeds = {rollout(a, None, 0)[0][1]["node_0"]["episode_seed"] for _ in range(3)}
    assert len(seeds) == 3
    assert rollout(MarketEnv(config(seed=5)), None, 0)[0][1]["node_0"]["episode_seed"] not in seeds


def test_rewards_add_up_to_each_agents_wealth_change() -> None:
    env = MarketEnv(config(rounds=8))
    steps = rollout(env, seed=2, action_seed=1)
    ep = env.episode
    for agent in env.possible_agents:
        total = sum(step[1][agent] for step in steps[1:])
        profits = sum(step[4][agent]["profit"] for step in steps[1:])
        acc = env.account(agent)
        assert total == profits == ep.wealth[acc] - ep.wealth0[acc]
    summary = steps[-1][4]["node_0"]["episode"]
    assert summary["focal"]["counts"]["node_profit"] == sum(
        ep.wealth[env.account(a)] - ep.wealth0[env.account(a)] for a in env.possible_agents if a.startswith("node")
    )


def test_stage_game_payoffs_match_the_inspection_game() -> None:
    """Honest work earns price - compute cost = 4 a round; an unchecked fake earns 10; a caught fake loses 20."""
    env = MarketEnv(config(focal={"node": 6}, clients=[{"strategy": "never_check"}], reward_scale=1.0))
    env.reset(seed=1)
    _, honest, *_ = env.step(dict.fromkeys(env.agents, np.array([0, 0])))
    assert set(honest.values()) == {4.0}
    _, cheat, *_ = env.step(dict.fromkeys(env.agents, np.array([1, 0])))
    assert set(cheat.values()) == {10.0}
    env = MarketEnv(config(focal={"node": 6}, clients=[{"strategy": "checker", "q": 1.0}]))
    env.reset(seed=1)
    _, caught, _, _, infos = env.step(dict.fromkeys(env.agents, np.array([1, 0])))
    assert set(caught.values()) == {-20.0} and all(i["rejected"] == 1 for i in infos.values())


def test_focal_choices_reach_the_engine_and_others_keep_their_script() -> None:
    cfg = config(rounds=5, focal={"node": 3, "client": 6}, nodes=[{"strategy": "cheater", "rate": 1.0}])
    env = MarketEnv(cfg)
    env.reset(seed=0)
    while env.agents:
        actions = {a: np.array([0, 0]) if a.startswith("node") else 1 for a in env.agents}  # focal nodes honest
        *_, infos = env.step(actions)
    summary = infos["node_0"]["episode"]
    assert summary["focal"]["rates"]["cheat_rate"] == 0.0  # the 3 learning nodes
    assert summary["market"]["counts"]["node_cheated"] == 3 * 5  # the 3 scripted cheaters, every round
    assert summary["focal"]["rates"]["check_rate"] == 1.0  # every client checks
    # an agent given no action plays its scripted strategy
    env.reset(seed=0)
    while env.agents:
        *_, infos = env.step({})
    assert infos["node_0"]["episode"]["focal"]["rates"]["cheat_rate"] == 1.0


def test_mediator_threshold_and_bribe_penalty() -> None:
    """Focal mediators with threshold 10 take bribes of 20 from scripted cheaters; the penalty lowers only the
    reward, by penalty x bribes taken, and the ledger profit still counts the bribe and the skipped re-run."""
    cfg = config(
        rounds=4,
        focal={"mediator": 3},
        nodes=[{"strategy": "cheater", "rate": 1.0, "bribe": 20}],
        clients=[{"strategy": "checker", "q": 1.0}],
        threshold_levels=[10, 40],
        bribe_penalty=7,
    )
    env = MarketEnv(cfg)
    env.reset(seed=0)
    rewards = dict.fromkeys(env.possible_agents, 0.0)
    while env.agents:
        _, rew, _, _, infos = env.step(dict.fromkeys(env.agents, 1))  # accept bribes >= 10
        for a in rew:
            rewards[a] += rew[a]
    counts = infos["mediator_0"]["episode"]["focal"]["counts"]
    assert counts["mediator_bribes_taken"] == counts["mediator_bribes_offered"] == 6 * 4
    assert counts["mediator_penalty"] == 7 * 6 * 4
    fee_plus_bribe = 60 + 20  # per mediation, no re-run paid
    assert counts["mediator_profit"] == fee_plus_bribe * 6 * 4
    assert sum(rewards.values()) == counts["mediator_profit"] - counts["mediator_penalty"]
    env.reset(seed=0)
    while env.agents:
        *_, infos = env.step(dict.fromkeys(env.agents, 2))  # threshold 40: refuses 20
    assert infos["mediator_0"]["episode"]["focal"]["rates"]["bribe_acceptance"] == 0.0


def test_observations_do_not_reveal_a_nodes_private_choice() -> None:
    """With nobody checking, a fake result is never discovered: the clients' observations must be identical whether
    the focal nodes cheat or not (the client pays and is served the same either way)."""
    cfg = config(rounds=6, focal={"node": 6, "client": 6}, clients=[{"strategy": "never_check"}])
    seen = []
    for cheat in (0, 1):
        env = MarketEnv(cfg)
        obs, _ = env.reset(seed=3)
        client_obs = [{a: o for a, o in obs.items() if a.startswith("client")}]
        while env.agents:
            acts = {a: np.array([cheat, 0]) if a.startswith("node") else 0 for a in env.agents}
            obs, *_ = env.step(acts)
            client_obs.append({a: o for a, o in obs.items() if a.startswith("client")})
        seen.append(client_obs)
    assert_same(seen[0], seen[1])


def test_truncate_marks_the_end_as_a_time_limit() -> None:
    env = MarketEnv(config(rounds=2, truncate=True))
    env.reset(seed=0)
    env.step({})
    _, _, term, trunc, _ = env.step({})
    assert not any(term.values()) and all(trunc.values()) and env.agents == []
    with pytest.raises(RuntimeError):
        env.step({})


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("env.focal.node", 7, "env.focal.node"),
        ("env.focal.client", [0, 0], "env.focal.client"),
        ("env.actions.client", ["check", "bogus"], "env.actions.client[1]"),
        ("env.discount", 1.5, "env.discount"),
        ("env.bribe_levels", [-1], "env.bribe_levels[0]"),
        ("env.obs_clip", float("inf"), "env.obs_clip"),  # float32 observations need finite bounds
        ("env.money_scale", 1e39, "env.money_scale"),
        ("env.roundz", 3, "roundz"),
        ("extra", 1, "extra"),
    ],
)
def test_config_errors_name_the_field(key: str, value: Any, field: str) -> None:
    cfg = OmegaConf.create(config())
    OmegaConf.update(cfg, key, value, force_add=True)
    with pytest.raises(ConfigError, match=re.escape(field)):
        MarketEnv(OmegaConf.to_container(cfg))


def test_every_head_reaches_its_action_field() -> None:
    """Collusion, accusation, whitewashing and whistleblowing heads write the engine's action arrays."""
    env = MarketEnv(
        config(
            focal={"node": 2, "client": 2, "mediator": 2},
            actions={"node": list(HEADS["node"]), "client": list(HEADS["client"]), "mediator": list(HEADS["mediator"])},
        )
    )
    parallel_api_test(env, num_cycles=10)
    env.reset(seed=0)
    ones = {a: np.ones(len(HEADS[env.role_of[a]]), dtype=np.int64) for a in env.agents}
    joint = env.joint_actions(ones)
    for role, group in (("node", joint.nodes), ("client", joint.clients), ("mediator", joint.mediators)):
        for head in env.heads[role]:
            assert np.array_equal(getattr(group, head.field)[:2], np.repeat(head.values[1], 2)), (role, head.name)
    assert not joint.nodes.collude[2:].any() and not joint.clients.accuse[2:].any()  # scripted rows untouched


def test_a_head_the_engine_does_not_support_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The extension point: a new decision is one HEADS entry; until mechanisms.actions has its field it is refused."""
    monkeypatch.setitem(HEADS["client"], "fly", ("fly_rate", lambda cfg: np.array([0.0, 1.0])))
    with pytest.raises(ConfigError, match="no `fly_rate`"):
        MarketEnv({**config(), "env": {**config()["env"], "actions": {"client": ["check", "fly"]}}})


def test_client_value_and_damage_enter_only_the_clients_rewards() -> None:
    """Scripted nodes always cheat; focal clients never check (action 0) and accept every fake: each client's reward
    is its wealth change minus the damage per fake; with checks (action 1) it catches every fake and pays nothing."""
    cfg = config(
        rounds=3,
        focal={"client": 6},
        nodes=[{"strategy": "cheater", "rate": 1.0}],
        reward_scale=1.0,
        client_value=5,
        client_damage=20,
    )
    env = MarketEnv(cfg)
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step(dict.fromkeys(env.agents, 0))
    assert all(rewards[a] == infos[a]["profit"] - 20 for a in rewards)
    _, rewards, _, _, infos = env.step(dict.fromkeys(env.agents, 1))
    assert all(rewards[a] == infos[a]["profit"] for a in rewards)  # nothing accepted: no value, no damage
    honest = MarketEnv(config(rounds=2, focal={"client": 6}, reward_scale=1.0, client_value=5, client_damage=20))
    honest.reset(seed=0)
    _, rewards, _, _, infos = honest.step(dict.fromkeys(honest.agents, 0))
    assert all(rewards[a] == infos[a]["profit"] + 5 for a in rewards)
    with pytest.raises(ConfigError, match=r"env\.client_damage"):
        MarketEnv(config(client_damage=-1))
