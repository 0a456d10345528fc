"""Collusion is learnable: replica nodes that can post the cartel's shared fake keep doing so when nothing punishes
coordination (replication with commit-reveal alone) and abandon it under Dong et al.'s counter-collusion contracts.

The market of `+experiment=node_collusion`: every job bought as 2 replicas, clients never check, price 10, compute
cost 6, 2x results collateral. Payoffs per deal (checked below on the env itself): honest 4, a lone cheat -20, two
replicas posting the cartel's fake 10 each. Under dong_counter_collusion an honest replica of a cartel member earns
4 + 20 (prisoner's contract) and a member that reports the cartel's fake 20 (traitor's contract), so the cartel
unravels to honest work. The node policy starts from a cartel (`algo.initial_logits`): honest work is also an
equilibrium under replication alone, and from a uniform start PPO finds that one.

RLlib tests share one Ray session (`ray_session`) and run on one xdist worker (group `rllib`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from experiments.evaluate import evaluate
from experiments.train import parse_run, train
from marl.env import MarketEnv
from marl.rllib import LearnedPolicy
from mechanisms.config import ConfigError

pytestmark = pytest.mark.xdist_group("rllib")

REPLICATION = "mechanism=collusion/replication"
DONG = "mechanism=dong_counter_collusion"
SMALL = ("market.n_nodes=8", "market.n_clients=4", "env.focal.node=8", "env.rounds=10", "train.progress=false")
CARTEL, HONEST, LONE, TRAITOR = (1, 1, 0), (0, 0, 0), (1, 0, 0), (1, 1, 1)  # heads: cheat, collude, report


def profits(env_cfg: dict[str, Any], node0: tuple[int, ...], others: tuple[int, ...]) -> tuple[float, float, dict]:
    """One episode with fixed actions: node 0's and the others' mean profit per round, and the focal rates."""
    env = MarketEnv(env_cfg)
    env.reset(seed=0)
    total: dict[str, float] = {}
    while env.agents:
        acts = {a: np.array(node0 if a == "node_0" else others) for a in env.agents}
        _, _, _, _, infos = env.step(acts)
        for a, info in infos.items():
            total[a] = total.get(a, 0) + info["profit"]
    per = {a: v / env.cfg.rounds for a, v in total.items()}
    rest = [v for a, v in per.items() if a != "node_0"]
    return per["node_0"], sum(rest) / len(rest), env.summary()["focal"]["rates"]


@pytest.mark.parametrize("mech", [REPLICATION, DONG])
def test_collusion_payoffs(train_config: Any, mech: str) -> None:
    env_cfg = parse_run(train_config("+experiment=node_collusion", mech, *SMALL)).env
    assert profits(env_cfg, HONEST, HONEST)[0] == 4
    cartel = profits(env_cfg, CARTEL, CARTEL)
    assert cartel[:2] == (10, 10) and cartel[2]["collusion_rate"] == 1.0 and cartel[2]["report_rate"] == 0.0
    assert profits(env_cfg, LONE, CARTEL)[0] == -20  # its own fake disagrees with the cartel's
    assert profits(env_cfg, CARTEL, HONEST)[0] == -20
    honest_in_cartel, traitor = profits(env_cfg, HONEST, CARTEL)[0], profits(env_cfg, TRAITOR, CARTEL)[0]
    if mech == REPLICATION:  # nothing pays for breaking the cartel: colluding (10) beats honest work (4)
        assert (honest_in_cartel, traitor) == (4, 10)
    else:  # prisoner's contract: the cartel member's deposit pays the honest replica; traitor's: the reporter
        assert (honest_in_cartel, traitor) == (24, 20)
    assert profits(env_cfg, HONEST, HONEST)[2]["collusion_rate"] == 0.0


def test_initial_logits_are_validated(train_config: Any) -> None:
    with pytest.raises(ConfigError, match=r"algo.initial_logits.node=\(0, 1\) is invalid: allowed a list of 6"):
        parse_run(train_config("+experiment=node_collusion", *SMALL, "algo.initial_logits={node: [0, 1]}"))
    with pytest.raises(ConfigError, match=r"algo.initial_logits.client"):
        parse_run(train_config("+experiment=node_collusion", *SMALL, "+algo.initial_logits.client=[0, 1]"))


def learned_rates(cfg: dict[str, Any], run_dir: Path, record: Any) -> dict[str, Any]:
    """Train, then evaluate the learned policy (sampled actions) on 10 fixed-seed episodes."""
    result = train(cfg, run_dir, keep_algo=True)
    try:
        env_cfg = parse_run(cfg).env
        policy = LearnedPolicy.from_algorithm(result.algo, "role", MarketEnv(env_cfg))
        rates = evaluate(env_cfg, policy, episodes=10, seed=1000).summary["focal"]["rates"]
    finally:
        result.algo.stop()
    for key in ("collusion_rate", "cheat_rate", "report_rate", "return_node"):
        record(key, float(rates[key]))
    return rates


@pytest.mark.slow
@pytest.mark.parametrize(("mech", "colludes"), [(REPLICATION, True), (DONG, False)])
def test_nodes_collude_iff_nothing_punishes_coordination(
    ray_session: Any, train_config: Any, tmp_path: Path, mech: str, colludes: bool, record_property: Any
) -> None:
    """Replication alone: the cartel (10 each) beats honest work (4) and persists. Counter-collusion: deserting
    pays (24 honest, 20 reporting), so the cartel unravels to honest work."""
    cfg = train_config("+experiment=node_collusion", mech, *SMALL, "train.iterations=25")
    rates = learned_rates(cfg, tmp_path, record_property)
    rate = rates["collusion_rate"]
    if colludes:
        assert rate >= 0.9, f"{mech}: learned collusion rate {rate:.3f}"
        assert rates["return_node"] >= 9.0  # reward = 0.1 x profit: about 10 per round over 10 rounds
    else:
        assert rate <= 0.2, f"{mech}: learned collusion rate {rate:.3f}"
