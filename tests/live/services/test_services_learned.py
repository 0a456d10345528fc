"""RLlib-trained policies run live: a node, a client and a mediator, each trained once with `experiments.train` (one
tiny iteration, its policy head biased: the node to cheat, the client to check, the mediator to take bribes),
restored from the checkpoint and acting for a live resource provider, job creator or mediator through its role's
action interface, observing its own record through the env's observation function."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from live.services.learned import LearnedAgent
from live.services.network import Network
from live.services.policy import node_actions
from marl.observations import COMMON_FEATURES, ROLE_FEATURES

pytestmark = [pytest.mark.xdist_group("docker")]
CONFIGS = Path(__file__).resolve().parents[3] / "configs"
#: node heads [cheat, bribe] -> logits [honest, cheat, bribe 0, 10, 20, 40]: a policy that cheats, bribes nothing
CHEAT_LOGITS = "[-30, 30, 30, -30, -30, -30]"
FEATURE = {name: i for i, name in enumerate((*COMMON_FEATURES, *ROLE_FEATURES["node"]))}
#: mediator head [vote] -> logits [honest, take >= 10, >= 20, >= 40]: a policy that takes any bribe of 10 or more
TAKE = "[-30, 30, -30, -30]"


def _train(tmp: Path, focal: str, logits: str) -> Path:
    """A one-iteration PPO training (tiny batch) of the focal agents `focal`, its policy heads biased by `logits`."""
    os.environ.setdefault("RAY_TMPDIR", tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # unix socket paths are short
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from experiments.train import train

    overrides = [
        "+experiment=node_cheat",
        f"env.focal={focal}",
        "env.rounds=5",
        "train.iterations=1",
        "train.progress=false",
        "algo.training.train_batch_size_per_learner=20",
        "algo.training.minibatch_size=20",
        "algo.training.num_epochs=1",
        f"+algo.initial_logits={logits}",
    ]
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("train", overrides=overrides), resolve=True)
    cfg.pop("resume", None)
    cfg.pop("run_dir", None)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        train(cfg, tmp / "run", log=lambda _: None)
    finally:
        if started:
            ray.shutdown()
    return tmp / "run"


@pytest.fixture(scope="module")
def cheating_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trained node whose policy cheats and bribes nothing."""
    return _train(tmp_path_factory.mktemp("learned"), "{node: 1, client: 0, mediator: 0}", f"{{node: {CHEAT_LOGITS}}}")


@pytest.fixture(scope="module")
def checking_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trained client whose policy checks every result."""
    return _train(tmp_path_factory.mktemp("learned"), "{node: 0, client: 1, mediator: 0}", "{client: [-30, 30]}")


@pytest.fixture(scope="module")
def bribe_taking_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trained mediator whose policy takes any bribe of at least the lowest threshold level (10)."""
    return _train(tmp_path_factory.mktemp("learned"), "{node: 0, client: 0, mediator: 1}", f"{{mediator: {TAKE}}}")


def test_learned_cheater_runs_live_and_is_caught(run_net, cheating_run: Path) -> None:
    async def body(net: Network) -> tuple:
        jobs = await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 60)
        jobs += await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 60)
        deals = [net.providers[0].store.get(j["deal_id"])[1] for j in jobs]
        return jobs, net.policies["node_0"], deals

    jobs, policy, deals = run_net(
        [
            f"network.policy_checkpoint={cheating_run}",
            "network.learned_nodes=[0]",
            "network.creators=[{strategy: checker, q: 1.0}]",
        ],
        body,
    )
    assert isinstance(policy, LearnedAgent) and policy.role == "node"
    # the provider's decisions are the policy's: two deals, two choices, each "cheat" with no bribe
    assert [c.tolist() for _, c in policy.decisions] == [[1, 0], [1, 0]]
    assert [j["state"] for j in jobs] == ["MediationRejected", "MediationRejected"]
    assert all(d["cheat"] for d in deals)  # posted fake hashes without running the job
    first, second = (obs for obs, _ in policy.decisions)
    assert first.shape == (len(FEATURE),)
    assert first[FEATURE["last_deal"]] == 0 and first[FEATURE["round_fraction"]] == 0
    # the second decision saw the first deal: it cheated, was checked and rejected, and lost money
    for name in ("last_deal", "last_cheated", "last_checked", "last_rejected", "pub_check_rate", "pub_fail_rate"):
        assert second[FEATURE[name]] == 1, name
    assert second[FEATURE["last_profit"]] < 0
    assert np.isclose(second[FEATURE["round_fraction"]], 1 / policy.cfg.rounds)
    # the same restored module with its cheat logit pushed down now fills the node's actions with honest work
    import torch

    layer = policy.policy.modules["node"].pi.net.mlp[-1]
    with torch.no_grad():
        layer.bias += torch.tensor([60.0, -60.0, 0, 0, 0, 0])
    assert node_actions(policy, 2) == (0.0, 0)
    assert node_actions(policy, 3) == (0.0, 0)


def test_learned_policy_config_errors(tmp_path: Path) -> None:
    from mechanisms.config import ConfigError

    with pytest.raises(ConfigError, match="run_dir"):
        LearnedAgent.from_run(tmp_path, 0, 0)


def test_learned_client_checks_live_and_sees_its_record(run_net, checking_run: Path) -> None:
    """A trained client acts for a live job creator: its policy (biased to check) overrides the scripted q = 0,
    every result goes to mediation, and its next decision observes the checked deal through the env's features."""

    async def body(net: Network) -> tuple:
        jobs = await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 60)
        jobs += await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 60)
        return jobs, net.policies["client_0"]

    jobs, policy = run_net(
        [f"network.policy_checkpoint={checking_run}", "network.learned_clients=[0]", "network.learned_nodes=[]"], body
    )
    assert isinstance(policy, LearnedAgent) and policy.role == "client"
    assert [j["state"] for j in jobs] == ["MediationAccepted", "MediationAccepted"]  # honest node, checked anyway
    assert all(j["checked"] for j in jobs)
    assert [c.tolist() for _, c in policy.decisions] == [[1], [1]]
    feature = {name: i for i, name in enumerate((*COMMON_FEATURES, *ROLE_FEATURES["client"]))}
    first, second = (obs for obs, _ in policy.decisions)
    assert first.shape == (len(feature),) and first[feature["last_deal"]] == 0
    for name in ("last_deal", "last_checked", "pub_check_rate"):
        assert second[feature[name]] == 1, name
    assert second[feature["last_rejected"]] == 0 and second[feature["last_profit"]] < 0  # paid the job and the fee


def test_learned_mediator_takes_bribes_live_and_sees_its_record(run_net, bribe_taking_run: Path) -> None:
    """A trained mediator acts for a live mediator: its policy (biased to take bribes of 10 or more) overrides the
    scripted honest one, so a cheating node's bribe of 20 buys its verdict, and its next decision observes the
    mediation it gave (one deal per round: its whole round's mediations) through the env's features."""

    async def body(net: Network) -> tuple:
        jobs = await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 60)
        jobs += await net.run_jobs([("cowsay:v1", {"Message": "moo"})], 60)
        return jobs, net.policies["mediator_0"]

    jobs, policy = run_net(
        [
            f"network.policy_checkpoint={bribe_taking_run}",
            "network.learned_mediators=[0]",
            "network.providers=[{strategy: cheater, rate: 1.0, bribe: 20}]",
            "network.creators=[{strategy: checker, q: 1.0}]",
        ],
        body,
    )
    assert isinstance(policy, LearnedAgent) and policy.role == "mediator"
    assert [j["state"] for j in jobs] == ["MediationAccepted", "MediationAccepted"]  # fakes bought through
    assert [c.tolist() for _, c in policy.decisions] == [[1], [1]]
    feature = {name: i for i, name in enumerate((*COMMON_FEATURES, *ROLE_FEATURES["mediator"]))}
    first, second = (obs for obs, _ in policy.decisions)
    assert first.shape == (len(feature),) and first[feature["last_mediation_share"]] == 0
    for name in ("last_mediation_share", "last_bribe_offer_rate", "last_bribe_take_rate", "pub_mediations_per_round"):
        assert second[feature[name]] == 1, name
    assert second[feature["last_reject_rate"]] == 0 and second[feature["last_mean_bribe"]] > 0
