"""Who is who on the live chain: the network's accounts (its key ring, `live.services.keys`) mapped to the twin's
roles and account ids.

`live.deploy` deploys from account 0, uses account 1 as the protocol treasury and registers accounts
2 .. 2+n_mediators-1 as mediators; the job creators and resource providers follow. Twin account ids are the twin's
layout (clients, nodes, mediators, then the pools), so a live trace is a twin table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mechanisms.money import Pool

BURN = "0x000000000000000000000000000000000000dEaD"


@dataclass(frozen=True)
class Layout:
    deployer: str
    treasury: str
    mediators: list[str]
    clients: list[str]
    nodes: list[str]

    @property
    def book(self) -> dict[str, int]:
        """address -> twin account id (agents, then the burn and protocol pools)."""
        agents = [*self.clients, *self.nodes, *self.mediators]
        book = {a: i for i, a in enumerate(agents)}
        book[BURN] = len(agents) + Pool.Burn
        book[self.treasury] = len(agents) + Pool.Protocol
        return book

    @property
    def agents(self) -> list[str]:
        return [*self.clients, *self.nodes, *self.mediators]


def accounts_needed(n_clients: int, n_nodes: int, n_mediators: int) -> int:
    return 2 + n_mediators + n_clients + n_nodes


def layout(accounts: Sequence[str], mediators: Sequence[str], n_clients: int, n_nodes: int) -> Layout:
    """The roles of a deployment's accounts (mediators as registered on chain)."""
    need = accounts_needed(n_clients, n_nodes, len(mediators))
    if len(accounts) < need:
        raise ValueError(
            f"the chain has {len(accounts)} accounts; {n_clients} clients, {n_nodes} nodes and {len(mediators)} "
            f"mediators need {need} (deploy with accounts={need})"
        )
    first = 2 + len(mediators)
    return Layout(
        accounts[0],
        accounts[1],
        list(mediators),
        list(accounts[first : first + n_clients]),
        list(accounts[first + n_clients : first + n_clients + n_nodes]),
    )
