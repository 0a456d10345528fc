"""RLlib wiring (new API stack): the market env as a native `MultiAgentEnv`, agent-to-policy mappings, the callback
that carries the market's counters into RLlib's metrics, and learned policies as plain numpy-seeded samplers.

Policies map to RLlib modules by role (parameter sharing: every focal node uses module `node`) or one module per
agent. Evaluation does not go through RLlib's env runners: `LearnedPolicy` runs the restored module's inference
pass and samples with a numpy Generator, so an evaluation is reproducible from its seed alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from marl.env import MarketEnv

ENV_NAME = "lilypad_market"
#: where the per-iteration market counters live in RLlib's result dict: result["env_runners"][METRICS_KEY]
METRICS_KEY = "market"


class RLlibMarketEnv(MultiAgentEnv):
    """`MarketEnv` behind RLlib's `MultiAgentEnv` interface (spaces per agent, `__all__` flags).

    RLlib sees each agent by its index in `MarketEnv.possible_agents` (`names`), not by its name: RLlib keeps agent
    ids in Python sets and iterates them to batch agents for sampling, and a set of strings iterates in an order that
    changes with PYTHONHASHSEED, while a set of small ints does not. So the same seed gives the same training in
    every process (docs/architecture.md, "Seeds"). `AgentToModule` maps an index to its module through the name.
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        config = config or {}
        # RLlib's EnvContext carries the worker and vector index: each parallel copy gets its own seed stream
        stream = tuple(int(getattr(config, name, 0) or 0) for name in ("worker_index", "vector_index"))
        self.env = MarketEnv(dict(config), stream)
        self.names = list(self.env.possible_agents)
        self._index = {name: i for i, name in enumerate(self.names)}
        self.possible_agents = list(range(len(self.names)))
        self.agents = []
        self.observation_spaces = {i: self.env.observation_space(a) for i, a in enumerate(self.names)}
        self.action_spaces = {i: self.env.action_space(a) for i, a in enumerate(self.names)}

    def _by_index(self, per_agent: Mapping[str, Any]) -> dict[Any, Any]:
        return {self._index[name]: value for name, value in per_agent.items()}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs, infos = self.env.reset(seed=seed, options=options)
        self.agents = [self._index[a] for a in self.env.agents]
        return self._by_index(obs), self._by_index(infos)

    def step(self, action_dict: dict) -> tuple[dict, dict, dict, dict, dict]:
        out = self.env.step({self.names[i]: action for i, action in action_dict.items()})
        obs, rewards, terminated, truncated, infos = (self._by_index(part) for part in out)
        self.agents = [self._index[a] for a in self.env.agents]
        terminated["__all__"] = all(terminated.values())
        truncated["__all__"] = all(truncated.values())
        return obs, rewards, terminated, truncated, infos


def role_module(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    """Parameter sharing: every agent of a role uses the role's module (`node_3` -> `node`)."""
    return agent_id.rsplit("_", 1)[0]


def agent_module(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    """No sharing: one module per agent."""
    return agent_id


MAPPINGS: dict[str, Callable[..., str]] = {"role": role_module, "agent": agent_module}


class AgentToModule:
    """RLlib's `policy_mapping_fn` for `RLlibMarketEnv`'s agent indices: index -> name -> `MAPPINGS[mapping]`."""

    def __init__(self, mapping: str, names: list[str]) -> None:
        self.fn, self.names = MAPPINGS[mapping], list(names)

    def __call__(self, agent_id: int, episode: Any = None, **kwargs: Any) -> str:
        return self.fn(self.names[agent_id])


def module_spaces(env: MarketEnv, mapping: str) -> dict[str, tuple[gymnasium.Space, gymnasium.Space]]:
    """Module id -> (observation space, action space), for the modules the focal agents map to."""
    fn = MAPPINGS[mapping]
    out: dict[str, tuple[gymnasium.Space, gymnasium.Space]] = {}
    for agent in env.possible_agents:
        out.setdefault(fn(agent), (env.observation_space(agent), env.action_space(agent)))
    return out


class MarketMetrics(RLlibCallback):
    """At each episode's end, add the env's summed counters (focal and whole market) to the iteration's sums.

    Counts are summed, not averaged, so rates computed from them (`marl.counters.role_rates`) weight every deal equally,
    however many episodes or env runners an iteration had. The sums are kept here and handed to RLlib's metrics once
    per `sample()` call (its logger costs microseconds a value, and vectorised sampling ends many episodes a call).
    """

    def __init__(self) -> None:
        super().__init__()
        self._sums: dict[tuple[str, ...], float] = {}

    def on_episode_end(self, *, episode: Any, metrics_logger: Any = None, **kwargs: Any) -> None:
        summary = None
        for info in episode.get_infos(-1).values():
            summary = info.get("episode") if isinstance(info, Mapping) else None
            if summary is not None:
                break
        if summary is None:
            return
        sums = self._sums
        sums[(METRICS_KEY, "episodes")] = sums.get((METRICS_KEY, "episodes"), 0) + 1
        for scope in ("focal", "market"):
            for key, value in summary[scope]["counts"].items():
                sums[(METRICS_KEY, scope, key)] = sums.get((METRICS_KEY, scope, key), 0) + value

    def on_sample_end(self, *, metrics_logger: Any = None, **kwargs: Any) -> None:
        if metrics_logger is None:
            return
        for key, value in self._sums.items():
            metrics_logger.log_value(key, value, reduce="sum")
        self._sums = {}


# ----------------------------------------------------------------------------------------------------- checkpoints
CHECKPOINT_DIR = "checkpoints"
#: written into a checkpoint directory after RLlib's files: a checkpoint without it is incomplete and ignored
STATE_FILE = "train_state.json"


def checkpoint_path(run_dir: str | Path, iteration: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"iter_{iteration:06d}"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The complete checkpoint of the highest iteration in a training run directory, or None."""
    done = sorted(p.parent for p in (Path(run_dir) / CHECKPOINT_DIR).glob(f"iter_*/{STATE_FILE}"))
    return done[-1] if done else None


# ------------------------------------------------------------------------------------------------ learned policies
def split_logits(space: gymnasium.Space) -> list[int]:
    """Logit widths per sub-action of a Discrete or MultiDiscrete space (RLlib's categorical layout)."""
    if isinstance(space, gymnasium.spaces.Discrete):
        return [int(space.n)]
    if isinstance(space, gymnasium.spaces.MultiDiscrete):
        return [int(n) for n in np.asarray(space.nvec).ravel()]
    raise TypeError(f"unsupported action space {space}")


def sample_categorical(logits: np.ndarray, widths: list[int], rng: np.random.Generator | None) -> np.ndarray:
    """(k, len(widths)) choices from concatenated logits: sampled with `rng`, or the argmax when rng is None."""
    out = np.empty((len(logits), len(widths)), dtype=np.int64)
    start = 0
    for j, w in enumerate(widths):
        z = logits[:, start : start + w].astype(np.float64)
        start += w
        if rng is None:
            out[:, j] = z.argmax(axis=1)
            continue
        p = np.exp(z - z.max(axis=1, keepdims=True))
        cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
        out[:, j] = np.minimum((rng.random((len(z), 1)) > cdf).sum(axis=1), w - 1)
    return out


class LearnedPolicy:
    """Trained RLlib modules as a function of observations; `act` batches all agents that share a module."""

    def __init__(self, modules: Mapping[str, Any], mapping: str, spaces: Mapping[str, gymnasium.Space]) -> None:
        self.modules, self.map, self.spaces = dict(modules), MAPPINGS[mapping], dict(spaces)

    @classmethod
    def from_checkpoint(cls, path: str | Path, mapping: str, env: MarketEnv) -> LearnedPolicy:
        """Restore only the RL modules of an algorithm checkpoint (no Ray session, no env runners needed)."""
        from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_LEARNER_GROUP, COMPONENT_RL_MODULE
        from ray.rllib.core.rl_module.rl_module import RLModule

        # absolute: RLlib reads the path as a URI, and a relative one (run_dir=outputs/train/...) has no scheme
        root = Path(path).resolve() / COMPONENT_LEARNER_GROUP / COMPONENT_LEARNER / COMPONENT_RL_MODULE
        spaces = module_spaces(env, mapping)
        missing = [m for m in spaces if not (root / m).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"checkpoint {path} has no module(s) {missing} (found "
                f"{sorted(p.name for p in root.iterdir()) if root.is_dir() else []})"
            )
        modules = {m: RLModule.from_checkpoint(root / m) for m in spaces}
        return cls(modules, mapping, {m: s[1] for m, s in spaces.items()})

    @classmethod
    def from_algorithm(cls, algo: Any, mapping: str, env: MarketEnv) -> LearnedPolicy:
        spaces = module_spaces(env, mapping)
        return cls({m: algo.get_module(m) for m in spaces}, mapping, {m: s[1] for m, s in spaces.items()})

    def act(self, obs: Mapping[str, np.ndarray], rng: np.random.Generator | None) -> dict[str, Any]:
        """Actions for every agent in `obs`; modules are visited in sorted order so `rng` is consumed reproducibly."""
        import torch

        by_module: dict[str, list[str]] = {}
        for agent in obs:
            by_module.setdefault(self.map(agent), []).append(agent)
        out: dict[str, Any] = {}
        for module_id in sorted(by_module):
            agents = by_module[module_id]
            batch = torch.from_numpy(np.stack([obs[a] for a in agents]))
            with torch.no_grad():
                logits = self.modules[module_id].forward_inference({"obs": batch})["action_dist_inputs"]
            space = self.spaces[module_id]
            choice = sample_categorical(logits.numpy(), split_logits(space), rng)
            discrete = isinstance(space, gymnasium.spaces.Discrete)
            for agent, c in zip(agents, choice, strict=True):
                out[agent] = int(c[0]) if discrete else c
        return out
