"""One live service as its own process (`python -m live.services.<role>`, configs/service.yaml).

The process reads the deployment file, takes only its own key, binds to loopback unless told otherwise, serves
until SIGINT or SIGTERM and then stops as a crash-safe service does (its SQLite state stays for a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from live.services.base import Service, check_bind
from live.services.chainio import ChainClient, read_record
from live.services.keys import ROLES, Key, dev_keys, env_key
from live.services.layout import Layout, layout
from live.services.policy import LiveMarket, strategy
from mechanisms.base import MechanismStack
from mechanisms.config import ConfigError
from twin.build import parse_market

CONFIGS = Path(__file__).resolve().parents[2] / "configs"  # absolute: `python -m` runs this from any module
SERVICES = ("solver", "provider", "creator", "mediator")
KEY_ROLE = {"provider": "node", "creator": "client", "mediator": "mediator", "solver": "deployer"}
GROUP = {"provider": "nodes", "creator": "clients", "mediator": "mediators"}


def own_key(cfg: Mapping[str, Any], who: Layout, role: str, index: int) -> Key:
    """This service's key: from the environment, or (keys=dev) anvil's dev account at its layout position."""
    key_role = KEY_ROLE[role]
    expected = who.deployer if role == "solver" else getattr(who, GROUP[role])[index]
    if cfg["keys"] == "env":
        key = env_key(key_role, index)
    elif cfg["keys"] == "dev":
        order = [who.deployer, who.treasury, *who.mediators, *who.clients, *who.nodes]
        key = dev_keys(len(order))[order.index(expected)]
    else:
        raise ConfigError(f"keys={cfg['keys']!r} is invalid: allowed one of ['dev', 'env']")
    if key.address != expected:
        raise ConfigError(f"keys: the {key_role} {index} key is not the deployment's account {expected}")
    return key


def build_service(cfg: Mapping[str, Any], stack: ExitStack) -> Service:
    """The configured service, not started (engines and clients it needs are entered on `stack`)."""
    role, index = cfg["role"], int(cfg["index"])
    if role not in SERVICES:
        raise ConfigError(f"role={role!r} is invalid: allowed one of {list(SERVICES)}")
    check_bind(str(cfg["host"]), bool(cfg["allow_public"]))
    if role != "solver" and not cfg.get("solver_url"):
        raise ConfigError("solver_url is missing: allowed http://127.0.0.1:<port> of the solver")
    record = read_record(cfg["deployment"])
    if "accounts" not in record:
        raise ConfigError(f"deployment={cfg['deployment']!r} is invalid: allowed a file that lists its accounts")
    market = LiveMarket(parse_market(cfg))
    c = market.config
    who = layout(record["accounts"], record["mediators"], c.n_clients, c.n_nodes)
    mech = MechanismStack.from_mapping(record["mechanism"], "deployment.mechanism")
    state = Path(cfg["state_dir"])
    state.mkdir(parents=True, exist_ok=True)
    host = {"host": cfg["host"], "port": int(cfg["port"]), "allow_public": bool(cfg["allow_public"])}
    lock = {"lock": Path(cfg["lock"])} if cfg.get("lock") else {}
    seed = int(cfg["seed"])
    if role == "solver":
        from live.services.solver import Solver

        keeper = [own_key(cfg, who, role, 0)] if record["params"].get("jackpot") else []  # ends jackpot rounds
        chain = ChainClient(record["url"], record, keeper)
        return Solver(
            state,
            chain,
            mech,
            market,
            who,
            mediator_draw=cfg["mediator_draw"],
            seed=seed,
            round_keeper=keeper[0].address if keeper else None,
            **lock,
            **host,
        )
    key = own_key(cfg, who, role, index)
    chain = ChainClient(record["url"], record, [key])
    policy = strategy(GROUP[role], dict(cfg.get("policy") or {"strategy": "honest"}), "policy")
    name = f"{role}{index}"
    if role == "creator":
        from live.services.creator import Creator

        return Creator(
            name, state, chain, key.address, cfg["solver_url"], policy, mech, market, seed, who.book, **lock, **host
        )
    from live import docker_engine
    from live.executor import Capabilities, Executor

    engine = stack.enter_context(docker_engine.engine())
    client = stack.enter_context(contextlib.closing(docker_engine.client(engine)))
    caps = Capabilities.detect(state / "caps")
    ex = Executor(client, state / f"{name}-jobs", caps)
    if role == "mediator":
        from live.services.mediator import Mediator

        return Mediator(name, state, chain, key.address, cfg["solver_url"], ex, policy, **lock, **host)
    from live.services.provider import Provider

    return Provider(
        name,
        state,
        chain,
        key.address,
        cfg["solver_url"],
        ex,
        caps,
        policy,
        market,
        int(cfg["price"]),
        seed,
        retention_s=float(cfg["retention_s"]),
        slots=int(cfg["slots"]),
        **lock,
        **host,
    )


async def serve(cfg: Mapping[str, Any]) -> None:
    with ExitStack() as stack:
        service = build_service(cfg, stack)
        await service.start()
        print(f"{service.name} listening on {service.url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await service.stop()


def run(role: str) -> None:
    """Entry point of `python -m live.services.<role>`."""
    assert role in SERVICES and set(KEY_ROLE.values()) <= set(ROLES)
    sys.argv.insert(1, f"role={role}")

    @hydra.main(config_path=str(CONFIGS), config_name="service", version_base="1.3")
    def main(cfg: DictConfig) -> None:
        plain = OmegaConf.to_container(cfg, resolve=True)
        try:
            asyncio.run(serve(plain))
        except (ConfigError, ValueError) as exc:
            sys.exit(f"live.services.{role}: {exc}")

    main()
