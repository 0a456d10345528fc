"""A small deployment on the embedded chain per test (snapshot and revert), with named parties and helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from contracts.build import Artifact, compile_sources, project_sources
from live.chain.binding import Deployment, Terms, deploy
from live.chain.node import Chain, open_chain
from live.chain.params import ChainParams

PARAMS = ChainParams(
    payment_collateral_bps=10_000,
    base_multiplier_bps=20_000,
    multipliers_bps=(),
    min_deposit=0,
    submit_timeout_collateral=7,
    judge_timeout_collateral=3,
    mediation_fee=60,
    deadline_agree=10,
    deadline_submit=60,
    deadline_judge=30,
    deadline_mediate=60,
    slash_to="burn",
    forfeit_payment=True,
)
BALANCE = 1_000_000
DEALS_SOL = "contracts/src/Deals.sol"


def mutant(*edits: tuple[str, str], unit: str = DEALS_SOL) -> dict[str, Artifact]:
    """The artifacts of the project with `unit` edited (each `old` must occur exactly once): a contract that has a
    bug on purpose, to show a regression test catches it."""
    sources = project_sources()
    text = sources[unit]
    for old, new in edits:
        if text.count(old) != 1:  # not an AssertionError: a stale mutation must never count as a caught bug
            raise LookupError(f"mutation target must occur once in {unit}: {old!r}")
        text = text.replace(old, new)
    return compile_sources({**sources, unit: text})


@dataclass
class World:
    """One deployment: client, node, three mediators, a stranger, the protocol treasury and the deployer."""

    dep: Deployment
    client: str
    node: str
    mediators: list[str]
    stranger: str
    protocol: str

    def terms(self, **kw: Any) -> Terms:
        base = Terms(self.client, self.node, 10, 4, self.dep.params.base_multiplier_bps, 0, 0b111, 1)
        return base._replace(**kw)

    def send(self, *txs: dict[str, Any]) -> list[dict[str, Any]]:
        return self.dep.chain.send(list(txs))

    def error(self, tx: dict[str, Any]) -> str | None:
        r = self.dep.revert_of(tx)
        return None if r is None else r.name

    def wealth(self, who: str) -> int:
        return self.dep.balance(who)

    def id(self, t: Terms) -> bytes:
        return bytes(self.dep.deals.functions.dealId(tuple(t)).call())

    def agreed(self, t: Terms) -> None:
        self.send(self.dep.agree(t, t.client), self.dep.agree(t, t.node))

    def submitted(self, t: Terms) -> None:
        self.agreed(t)
        self.send(self.dep.submit(t, b"\x01" * 32))

    def checked(self, t: Terms, mediator_rank: int = 0) -> None:
        self.submitted(t)
        self.send(self.dep.set_draws([self.id(t)], [mediator_rank]), self.dep.check(t))

    def mine_past(self, blocks: int) -> None:
        self.dep.chain.mine(blocks + 1)


def make_world(
    chain: Chain,
    params: ChainParams = PARAMS,
    artifacts: dict[str, Artifact] | None = None,
    token: str = "Token",
) -> World:
    acc = chain.accounts
    client, node, m0, m1, m2, stranger, protocol = acc[1:8]
    dep = deploy(
        chain,
        params,
        [m0, m1, m2],
        protocol,
        [client, node, m0, m1, m2, stranger],
        [BALANCE] * 6,
        beacon="scripted",
        deployer=acc[0],
        artifacts=artifacts,
        token_artifact=token,
    )
    chain.send([dep.approve(a, 2**256 - 1) for a in (client, node, m0, m1, m2, stranger)])
    return World(dep, client, node, [m0, m1, m2], stranger, protocol)


@pytest.fixture(scope="module")
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """The module's chain: embedded unless the test module sets `CHAIN = "anvil"` (faster for long scenarios)."""
    with open_chain(getattr(request.module, "CHAIN", "embedded"), 10) as c:
        yield c


@pytest.fixture
def fresh(chain: Chain) -> Iterator[Chain]:
    """The module's chain, reverted to its state before the test afterwards."""
    snap = chain.snapshot()
    yield chain
    chain.revert(snap)


@pytest.fixture
def world(fresh: Chain) -> World:
    return make_world(fresh)


@pytest.fixture
def build_world(fresh: Chain) -> Any:
    """`build_world(params=PARAMS, artifacts=None, token="Token")`: a deployment on the test's chain."""
    return lambda params=PARAMS, artifacts=None, token="Token": make_world(fresh, params, artifacts, token)


@pytest.fixture(scope="session")
def params() -> ChainParams:
    return PARAMS


@pytest.fixture(scope="session")
def mutate() -> Any:
    return mutant
