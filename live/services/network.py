"""A live network in one process: an anvil node with its block clock, a deployment, and the four services (each
its own aiohttp server on its own loopback port with its own SQLite state), for `make live`, tests and the
benchmark. Services only meet through HTTP and the chain, exactly as separate processes would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from live.chain.node import DEV_BALANCE_ETH, AnvilChain
from live.chain.params import UINT32_MAX, ChainParams, chain_params, check_live, check_market
from live.deploy import deploy_record
from live.executor import Capabilities, Executor
from live.services.chainio import BlockClock, ChainClient, read_record
from live.services.creator import Creator
from live.services.keys import Key, KeyRing, keyring
from live.services.layout import Layout, accounts_needed, layout
from live.services.learned import LEARNED_ROLES, LearnedAgent
from live.services.mediator import Mediator
from live.services.policy import LiveMarket, Policy, strategy
from live.services.provider import Provider
from live.services.solver import Solver
from mechanisms.base import MechanismStack
from mechanisms.config import ConfigError
from twin.build import parse_market

MINING = ("interval", "auto")


@dataclass
class Network:
    """Everything a live run holds; `start` brings it up, `stop` takes it down (the chain node last)."""

    cfg: Mapping[str, Any]
    state_dir: Path
    docker_client: docker.DockerClient
    lock: Path
    policies: Mapping[str, Policy] = field(default_factory=dict)  # "node_<i>" -> a learned policy overriding cfg
    node: AnvilChain | None = None
    record: dict[str, Any] = field(default_factory=dict)
    clock: BlockClock | None = None
    solver: Solver | None = None
    providers: list[Provider] = field(default_factory=list)
    creators: list[Creator] = field(default_factory=list)
    mediators: list[Mediator] = field(default_factory=list)
    clients: list[ChainClient] = field(default_factory=list)
    who: Layout | None = None
    keys: KeyRing | None = None
    ports: dict[str, int] = field(default_factory=dict)  # a restarted service comes back at its address

    @property
    def market(self) -> LiveMarket:
        return LiveMarket(parse_market(self.cfg))

    @property
    def stack(self) -> MechanismStack:
        return MechanismStack.from_mapping(self.record.get("mechanism") or self.cfg["mechanism"], "mechanism")

    def start_chain(self, state: Path | None = None, port: int | None = None) -> None:
        """Start anvil (from a dumped state when given) and deploy unless a deployment file is configured."""
        c = self.market.config
        n = accounts_needed(c.n_clients, c.n_nodes, c.n_mediators)
        dep_file = self.cfg.get("deployment")
        if dep_file and not self.record:  # deployed by live.deploy: its node state holds the contracts
            self.record = read_record(dep_file)
            state = state or self.record.get("state_file")
        if self.record:
            n = accounts_needed(c.n_clients, c.n_nodes, len(self.record["mediators"]))
        check_live(self.stack, str(self.cfg["network"].get("mediator_draw", "chain")))
        n_med = len(self.record["mediators"]) if self.record else c.n_mediators
        self.keys = keyring(str(self.cfg.get("keys", "dev")), n_med, c.n_clients, c.n_nodes)
        self.node = AnvilChain(n, state=state, port=port)
        self.node.signers = self.keys.by_address  # the deployment is signed here too: the node unlocks nothing
        addresses = [k.address for k in self.keys.ordered]
        if self.cfg.get("keys", "dev") != "dev":  # gas for accounts that are not the node's dev accounts
            self.node.batch([("anvil_setBalance", [a, hex(DEV_BALANCE_ETH * 10**18)]) for a in addresses])
        if not self.record:
            stack = MechanismStack.from_mapping(self.cfg["mechanism"], "mechanism")
            check_market(c.n_mediators)
            self.record = deploy_record(
                self.node,
                {"mechanism": dict(self.cfg["mechanism"])},
                self.params(stack),
                c.n_mediators,
                accounts=addresses,
            )
        elif addresses[2 : 2 + n_med] != list(self.record["mediators"]):
            raise ConfigError("keys: the mediator keys are not the deployment's registered mediators")
        self.record["url"] = self.node.url
        self.who = layout(addresses, self.record["mediators"], c.n_clients, c.n_nodes)
        mining = str(self.cfg.get("mining", "interval"))
        if mining not in MINING:
            raise ConfigError(f"mining={mining!r} is invalid: allowed one of {list(MINING)}")
        if mining == "auto":  # every transaction mined as it arrives; the clock still moves time between them
            self.node.rpc("evm_setAutomine", True)
        self.clock = BlockClock(self.node.url, float(self.cfg["block_s"])).start()

    def params(self, stack: MechanismStack) -> ChainParams:
        """The contract parameters of `stack` on this market: its modules' re-run costs (a consortium's dissenters
        keep them) and the jackpot round length in blocks (`network.jackpot_round_blocks`, the solver ends rounds)."""
        market = self.market
        costs = [market.compute_cost(i) for i in range(len(market.module_names))]
        rounds = self.cfg["network"].get("jackpot_round_blocks", 1)
        if not (isinstance(rounds, int) and not isinstance(rounds, bool) and 1 <= rounds <= UINT32_MAX):
            raise ConfigError(
                f"network.jackpot_round_blocks={rounds!r} is invalid: allowed an integer in [1, {UINT32_MAX}]"
            )
        return dataclasses.replace(chain_params(stack, costs), round_blocks=rounds)

    def chain_client(self, *keys: Key) -> ChainClient:
        """A chain connection for one service, holding only that service's own key."""
        assert self.node is not None
        cc = ChainClient(self.node.url, self.record, keys)
        self.clients.append(cc)
        return cc

    def _policy(self, role: str, i: int, entry: Mapping[str, Any]) -> Policy:
        net = self.cfg["network"]
        learned = role in LEARNED_ROLES and i in (net.get(f"learned_{role}s") or [])
        if f"{role}_{i}" not in self.policies and learned:
            if not net.get("policy_checkpoint"):
                raise ConfigError("network.policy_checkpoint is missing: allowed an experiments.train run directory")
            seed = int(self.cfg["seed"]) * 1000 + 300 + 50 * LEARNED_ROLES.index(role) + i
            agent = LearnedAgent.from_run(net["policy_checkpoint"], i, seed, role)
            self.policies = {**self.policies, f"{role}_{i}": agent}
        return self.policies.get(f"{role}_{i}") or strategy(
            f"{role}s" if role != "node" else "nodes", entry, f"network.{role}s[{i}]"
        )

    async def start_services(self, only: Sequence[str] | None = None) -> None:
        """Start the solver, the providers, the creators and the mediators (`only`: a subset of names, e.g. to
        leave a mediator offline)."""
        assert self.who is not None
        net, host = self.cfg["network"], {"host": self.cfg["host"], "allow_public": self.cfg["allow_public"]}
        market, stack, seed = self.market, self.stack, int(self.cfg["seed"])
        caps = Capabilities.detect(self.state_dir / "caps")
        slots = int(net.get("slots", 1))
        # every service of this process shares the loop's thread pool for its blocking chain calls and container
        # runs (each waits on a receipt or an engine): size it to them, not to the CPUs
        workers = 4 * (len(net["providers"]) * slots + len(net["creators"]) + len(net["mediators"]) + 1)
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max(workers, 8), "live"))

        def want(n):
            return only is None or n in only

        if self.solver is None and want("solver"):
            self.solver = await Solver(
                self.state_dir,
                self.chain_client(self.keys.deployer),  # signs only to end jackpot rounds (`payJackpot`)
                stack,
                market,
                self.who,
                self.lock,
                mediator_draw=str(net.get("mediator_draw", "chain")),
                seed=seed * 1000 + 1,
                round_keeper=self.who.deployer,
                port=self.ports.get("solver", 0),
                **host,
            ).start()
            self.ports["solver"] = self.solver.port
        assert self.solver is not None
        for i, entry in enumerate(net["mediators"]):
            name = f"mediator{i}"
            if want(name) and not any(m.name == name for m in self.mediators):
                ex = Executor(self.docker_client, self.state_dir / f"{name}-jobs", caps)
                self.mediators.append(
                    await Mediator(
                        name,
                        self.state_dir,
                        self.chain_client(self.keys.mediators[i]),
                        self.who.mediators[i],
                        self.solver.url,
                        ex,
                        self._policy("mediator", i, entry),
                        self.lock,
                        port=self.ports.get(name, 0),
                        **host,
                    ).start()
                )
                self.ports[name] = self.mediators[-1].port
        for i, entry in enumerate(net["providers"]):
            name = f"provider{i}"
            if want(name) and not any(p.name == name for p in self.providers):
                ex = Executor(self.docker_client, self.state_dir / f"{name}-jobs", caps)
                self.providers.append(
                    await Provider(
                        name,
                        self.state_dir,
                        self.chain_client(self.keys.nodes[i]),
                        self.who.nodes[i],
                        self.solver.url,
                        ex,
                        caps,
                        self._policy("node", i, entry),
                        market,
                        int(net["price"]),
                        seed * 1000 + 100 + i,
                        lock=self.lock,
                        retention_s=float(self.cfg["retention_s"]),
                        slots=slots,
                        port=self.ports.get(name, 0),
                        **host,
                    ).start()
                )
                self.ports[name] = self.providers[-1].port
        for i, entry in enumerate(net["creators"]):
            name = f"creator{i}"
            if want(name) and not any(c.name == name for c in self.creators):
                self.creators.append(
                    await Creator(
                        name,
                        self.state_dir,
                        self.chain_client(self.keys.clients[i]),
                        self.who.clients[i],
                        self.solver.url,
                        self._policy("client", i, entry),
                        stack,
                        market,
                        seed * 1000 + 200 + i,
                        self.who.book,
                        lock=self.lock,
                        port=self.ports.get(name, 0),
                        **host,
                    ).start()
                )
                self.ports[name] = self.creators[-1].port

    async def stop_service(self, name: str) -> None:
        """Stop one service as a crash would (its state stays on disk); `start_services` brings it back."""
        for group in (self.providers, self.creators, self.mediators):
            for s in list(group):
                if s.name == name:
                    await s.stop()
                    group.remove(s)
        if name == "solver" and self.solver is not None:
            await self.solver.stop()
            self.solver = None

    async def stop(self) -> None:
        for s in [*self.creators, *self.providers, *self.mediators, *([self.solver] if self.solver else [])]:
            with contextlib.suppress(Exception):
                await s.stop()
        self.creators, self.providers, self.mediators, self.solver = [], [], [], None
        self.stop_chain()

    def stop_chain(self) -> None:
        if self.clock is not None:
            self.clock.stop()
        for cc in self.clients:  # their connections to the node
            cc.close()
        if self.node is not None:
            self.node.close()

    async def run_jobs(self, jobs: Sequence[tuple[str, dict[str, str]]], timeout: float) -> list[dict[str, Any]]:
        """Post `jobs` round-robin over the creators and wait for every deal to end; the creators' job records."""
        posted = []
        for k, (module, inputs) in enumerate(jobs):
            c = self.creators[k % len(self.creators)]
            posted.append((c, await c.submit(module, inputs)))
        return list(await asyncio.gather(*(c.wait(j, timeout) for c, j in posted)))

    def balances(self) -> dict[str, int]:
        assert self.who is not None and self.clients
        dep = self.clients[0].dep
        return {
            a: dep.balance(a)
            for a in [*self.who.agents, self.who.treasury, "0x000000000000000000000000000000000000dEaD"]
        }

    def total_value(self) -> int:
        """Every token: held, free in the contract, or in a deal's escrow (the contract's token balance covers the
        last two), so a run that loses or doubles value changes it."""
        assert self.node is not None and self.clients
        dep = self.clients[0].dep
        accounts = [
            *self.node.accounts,
            *(k.address for k in self.keys.ordered),
            "0x000000000000000000000000000000000000dEaD",
        ]
        held = sum(int(dep.token.functions.balanceOf(a).call()) for a in set(accounts))
        return held + int(dep.token.functions.balanceOf(dep.deals.address).call())

    def gas(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for cc in self.clients:
            for step, used in cc.gas.items():
                out.setdefault(step, []).extend(used)
        return out


def workload(cfg: Mapping[str, Any]) -> list[tuple[str, dict[str, str]]]:
    w = cfg["workload"]
    return [
        (w[k % len(w)]["module"], {str(a): str(b) for a, b in (w[k % len(w)].get("inputs") or {}).items()})
        for k in range(int(cfg["jobs"]))
    ]


async def wait_until(pred: Any, timeout: float, step: float = 0.05) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError("condition not reached in time")
        await asyncio.sleep(step)


def dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
