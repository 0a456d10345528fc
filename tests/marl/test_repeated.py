"""Repeated games on a fixed replica pair in the env: nodes observe their partner's last public action
(`env.partner_action`), scripted partners play history-dependent strategies (`env.repeated`), and truncated windows
hide their position. The market is `+experiment=collusion_discount`: one client, two nodes, the Prisoner's contract
(w = 10, c = 6, d = 20, ch = 6), node 0 learning with one head (cheat; its fakes are the cartel's), node 1 grim."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.reproduction.common import CONFIGS
from marl.config import ENV_KEYS
from marl.env import MarketEnv
from marl.observations import COMMON_FEATURES, PARTNER_FEATURE, ROLE_FEATURES, role_features
from marl.vector import VecMarketEnv
from mechanisms.config import ConfigError

HONEST, CARTEL = 0, 1
PARTNER = len(COMMON_FEATURES) + len(ROLE_FEATURES["node"])  # index of last_partner_cartel


def pair(**env: Any) -> dict[str, Any]:
    """The collusion_discount market and env (reward scale 1: rewards are base units), `env` overriding."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("train", overrides=["+experiment=collusion_discount"]), resolve=True)
    out = {k: cfg[k] for k in ENV_KEYS if cfg.get(k) is not None}
    out["env"] = {**out["env"], "reward_scale": 1.0, **env}
    return out


def play(env: MarketEnv, choices: list[int]) -> list[tuple[float, float]]:
    """(learner's reward, partner feature it observes after the round) per round."""
    obs, _ = env.reset(seed=0)
    assert obs["node_0"][PARTNER] == 1.0  # nobody has deviated before the first round
    out = []
    for c in choices:
        obs, rewards, *_ = env.step({"node_0": c})
        out.append((rewards["node_0"], float(obs["node_0"][PARTNER])))
    return out


def test_grim_partner_punishes_a_deviation_forever_and_the_learner_sees_it() -> None:
    env = MarketEnv(pair(rounds=6))
    assert role_features("node", env.cfg)[-1] == PARTNER_FEATURE
    # R = w = 10 while both post the cartel's result; T = w - c + d - ch = 18 for the deviation; then the partner is
    # honest forever: P = w - c = 4 when honest too, -d = -20 when the learner posts the cartel's result alone
    assert play(env, [CARTEL, CARTEL, HONEST, CARTEL, HONEST, HONEST]) == [
        (10.0, 1.0),
        (10.0, 1.0),
        (18.0, 1.0),  # the partner posted the cartel's result this round, it punishes from the next one
        (-20.0, 0.0),
        (4.0, 0.0),
        (4.0, 0.0),
    ]


def test_tit_for_tat_partner_forgives() -> None:
    env = MarketEnv(pair(rounds=4, repeated=["collude", "tit_for_tat"]))
    assert [r for r, _ in play(env, [HONEST, CARTEL, CARTEL, CARTEL])] == [18.0, -20.0, 10.0, 10.0]


def test_off_switches() -> None:
    """Without partner_action the nodes' observations lack the feature; without repeated node 1 plays its
    population strategy (honest), so colluding alone always loses the deposit."""
    off = MarketEnv(pair(partner_action=False))
    on = MarketEnv(pair())
    assert off.observation_space("node_0").shape[0] == on.observation_space("node_0").shape[0] - 1
    scripted = MarketEnv(pair(rounds=2, repeated=[]))
    scripted.reset(seed=0)
    assert [scripted.step({"node_0": CARTEL})[1]["node_0"] for _ in range(2)] == [-20.0, -20.0]


def test_truncated_windows_hide_their_position() -> None:
    """round_fraction and wealth_change observe 0 in a window of an endless game, not in a finite game."""
    for truncate, hidden in ((True, True), (False, False)):
        env = MarketEnv(pair(rounds=3, truncate=truncate))
        env.reset(seed=0)
        obs, *_ = env.step({"node_0": CARTEL})
        first_two = obs["node_0"][:2]
        assert np.all(first_two == 0) == hidden, (truncate, first_two)


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"repeated": ["grim"]}, "env.repeated"),
        ({"repeated": ["grim", "forgive"]}, r"env.repeated\[1\]"),
        ({"partner_action": 1}, "env.partner_action"),
    ],
)
def test_config_errors_name_the_field(env: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        MarketEnv(pair(**env))


def test_markets_settled_together_refuse_partner_histories() -> None:
    with pytest.raises(ConfigError, match="num_envs_per_env_runner"):
        VecMarketEnv(pair(), 2, stream=(0, 0))
