"""The solver: one table row per Lilypad matching rule, and the fast path against the reference on random markets.

Rows are tiny hand-made order books whose expected match is evident from the rule the row names. Each row runs
through both `match` (offer types, compiled loop, with a TypeTable built from a hand-made Market) and
`match_reference`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mechanisms.config import from_mapping
from sim.draws import DrawSource
from sim.market import RESOURCES, Market, MarketConfig, ModuleSpec, unique_rows
from sim.offers import JobOffers, ResourceOffers
from sim.solver import TypeTable, match, match_reference

NEEDS = (1000, 1, 2048, 4096, 8192)  # module 0 ("infer"), in RESOURCES order: cpu, gpu, vram, ram, disk
MODULES = (
    ModuleSpec("infer", **dict(zip(RESOURCES, NEEDS, strict=True))),
    ModuleSpec("echo", cpu=100, gpu=0, vram=0, ram=64, disk=10),
)
N_MEDIATORS = 3


@dataclasses.dataclass(frozen=True)
class Job:
    module: int = 0
    fixed: bool = False
    max_price: int = 0
    trust: int = 0b001  # mediator bit mask


@dataclasses.dataclass(frozen=True)
class Offer:
    capacity: tuple[int, ...] = NEEDS
    price: int = 10
    allow: int = 0  # module bit mask; 0 = any
    trust: int = 0b001


def short(resource: str) -> tuple[int, ...]:
    """Exactly the needs of module 0, one unit short in `resource`."""
    return tuple(v - (r == resource) for r, v in zip(RESOURCES, NEEDS, strict=True))


def order_book(
    jobs: Sequence[Job],
    offers: Sequence[Offer],
    job_arrival: Sequence[int] | None = None,
    offer_arrival: Sequence[int] | None = None,
) -> tuple[JobOffers, ResourceOffers, Market]:
    """Offers and the hand-made Market they come from (client i posts job i, node k posts offer k)."""
    job_arrival = list(range(len(jobs))) if job_arrival is None else list(job_arrival)
    offer_arrival = list(range(len(offers))) if offer_arrival is None else list(offer_arrival)
    trust_masks = np.array(sorted({j.trust for j in jobs}) or [1], dtype=np.int64)
    code = np.array([int(np.flatnonzero(trust_masks == j.trust)[0]) for j in jobs], dtype=np.int64)
    capacity = np.array([o.capacity for o in offers], dtype=np.int64).reshape(len(offers), len(RESOURCES))
    allow = np.array([o.allow for o in offers], dtype=np.int64)
    node_trust = np.array([o.trust for o in offers], dtype=np.int64)
    node_types, node_type = unique_rows(np.column_stack([capacity, allow, node_trust]).reshape(len(offers), 7))
    base = Market.build(
        MarketConfig(
            n_clients=max(len(jobs), 1), n_nodes=max(len(offers), 1), n_mediators=N_MEDIATORS, modules=MODULES
        ),
        np.random.default_rng(0),
    )
    market = dataclasses.replace(
        base,
        node_capacity=capacity,
        node_price=np.array([o.price for o in offers], dtype=np.int64),
        node_allow=allow,
        node_trust=node_trust,
        client_fixed=np.array([j.fixed for j in jobs], dtype=bool),
        client_max_price=np.array([j.max_price for j in jobs], dtype=np.int64),
        client_trust=trust_masks[code],
        client_trust_code=code,
        trust_masks=trust_masks,
        node_type=node_type,
        node_types=node_types,
    )
    # every client posts its job and every node its offer, at the given arrival ranks (only these draws are read)
    draws = SimpleNamespace(
        client_active=np.ones(len(jobs), dtype=bool),
        job_module=np.array([j.module for j in jobs], dtype=np.int64),
        job_arrival=np.array(job_arrival, dtype=np.int64),
        node_active=np.ones(len(offers), dtype=bool),
        node_arrival=np.array(offer_arrival, dtype=np.int64),
    )
    job_offers, resource_offers = JobOffers.post(market, draws), ResourceOffers.post(market, draws)
    assert job_offers.client.tolist() == list(range(len(jobs)))  # job i is row i
    return job_offers, resource_offers, market


Matcher = Callable[[JobOffers, ResourceOffers, Market], np.ndarray]
MATCHERS: dict[str, Matcher] = {
    "fast": lambda jobs, res, market: match(jobs, res, TypeTable.build(market)),
    "reference": lambda jobs, res, market: match_reference(jobs, res),
}

# (id, jobs, offers, expected match per job, extra order_book kwargs)
ROWS: list[tuple[str, list[Job], list[Offer], list[int], dict[str, Any]]] = [
    ("covers-exactly", [Job()], [Offer()], [0], {}),
    *[(f"short-{r}", [Job()], [Offer(capacity=short(r))], [-1], {}) for r in RESOURCES],
    *[
        (f"short-{r}-skipped-for-pricier", [Job()], [Offer(capacity=short(r), price=1), Offer(price=50)], [1], {})
        for r in RESOURCES
    ],
    ("module-on-allowlist", [Job()], [Offer(allow=0b01)], [0], {}),
    ("module-not-on-allowlist", [Job()], [Offer(allow=0b10)], [-1], {}),
    ("other-module-on-allowlist", [Job(module=1)], [Offer(allow=0b10)], [0], {}),
    ("empty-allowlist-allows-all", [Job(module=1), Job(module=0)], [Offer(allow=0), Offer(allow=0)], [0, 1], {}),
    ("allowlist-skipped-for-pricier", [Job()], [Offer(allow=0b10, price=1), Offer(price=50)], [1], {}),
    ("fixed-price-equal-limit", [Job(fixed=True, max_price=10)], [Offer(price=10)], [0], {}),
    ("fixed-price-above-limit", [Job(fixed=True, max_price=9)], [Offer(price=10)], [-1], {}),
    ("fixed-price-takes-affordable", [Job(fixed=True, max_price=10)], [Offer(price=11), Offer(price=10)], [1], {}),
    ("market-mode-ignores-limit", [Job(fixed=False, max_price=1)], [Offer(price=10)], [0], {}),
    ("no-mutual-mediator", [Job(trust=0b001)], [Offer(trust=0b110)], [-1], {}),
    ("one-mutual-mediator", [Job(trust=0b011)], [Offer(trust=0b110)], [0], {}),
    ("mediators-skipped-for-pricier", [Job(trust=0b001)], [Offer(trust=0b010, price=1), Offer(price=50)], [1], {}),
    ("cheapest-wins", [Job()], [Offer(price=12), Offer(price=9), Offer(price=10)], [1], {}),
    ("cheaper-beats-older", [Job()], [Offer(price=10), Offer(price=9)], [1], {"offer_arrival": [0, 1]}),
    ("tie-to-older-offer", [Job()], [Offer(), Offer(), Offer()], [1], {"offer_arrival": [2, 0, 1]}),
    (
        "tie-to-older-offer-across-types",
        [Job()],
        [Offer(capacity=(9999, 9, 9999, 9999, 9999)), Offer()],
        [1],
        {"offer_arrival": [1, 0]},
    ),
    ("older-job-served-first", [Job(), Job()], [Offer()], [-1, 0], {"job_arrival": [1, 0]}),
    ("older-job-takes-cheapest", [Job(), Job()], [Offer(price=9), Offer(price=10)], [1, 0], {"job_arrival": [1, 0]}),
    (
        "greedy-not-maximal",
        [Job(trust=0b011), Job(trust=0b010)],
        [Offer(trust=0b010, price=9), Offer(price=10)],
        [0, -1],
        {},
    ),
    (
        "offer-used-once",
        [Job(), Job(), Job()],
        [Offer(price=10), Offer(price=11)],
        [1, -1, 0],
        {"job_arrival": [1, 2, 0]},
    ),
    ("unaffordable-older-job-leaves-offer", [Job(fixed=True, max_price=5), Job()], [Offer()], [-1, 0], {}),
    ("no-offers", [Job()], [], [-1], {}),
    ("no-jobs", [], [Offer()], [], {}),
]


@pytest.mark.parametrize("matcher", sorted(MATCHERS))
@pytest.mark.parametrize(("jobs", "offers", "expected", "kwargs"), [pytest.param(*r[1:], id=r[0]) for r in ROWS])
def test_matching_rule(
    matcher: str, jobs: list[Job], offers: list[Offer], expected: list[int], kwargs: dict[str, Any]
) -> None:
    job_offers, resource_offers, market = order_book(jobs, offers, **kwargs)
    assert MATCHERS[matcher](job_offers, resource_offers, market).tolist() == expected


def check_greedy(jobs: JobOffers, res: ResourceOffers, matched: np.ndarray) -> None:
    """The rule stated declaratively, independently of both implementations: every pair is compatible, no offer
    is used twice, an unmatched job has no compatible offer left over, and every offer a matched job would have
    preferred (cheaper, or as cheap and older) went to an older job."""

    def fits(j: int, r: int) -> bool:
        return (
            bool(np.all(res.capacity[r] >= jobs.needs[j]))
            and (res.allow[r] == 0 or bool((res.allow[r] >> jobs.module[j]) & 1))
            and (not jobs.fixed[j] or res.rank[r] <= jobs.max_price[j])
            and bool(jobs.trust[j] & res.trust[r])
        )

    used = matched[matched >= 0]
    assert len(set(used.tolist())) == len(used)
    owner = {int(r): j for j, r in enumerate(matched) if r >= 0}
    for j, r in enumerate(matched.tolist()):
        better = [
            k
            for k in range(len(res.node))
            if fits(j, k) and (r < 0 or (res.rank[k], res.arrival[k]) < (res.rank[r], res.arrival[r]))
        ]
        for k in better:
            assert k in owner and jobs.arrival[owner[k]] < jobs.arrival[j], f"job {j} should have taken offer {k}"
        if r >= 0:
            assert fits(j, r)


@given(data=st.data(), seed=st.integers(0, 2**32 - 1), replicas=st.integers(1, 3))
def test_match_equals_reference_on_random_markets(
    random_market: Any, data: st.DataObject, seed: int, replicas: int
) -> None:
    """Random markets (some jobs bought as several replicas), one round each: both paths give the same match."""
    config = from_mapping(MarketConfig, data.draw(random_market(max_agents=20)), "market")
    rng = np.random.default_rng(seed)
    market = Market.build(config, rng)
    draws = DrawSource(config, market.module_cum_weight, 0, rng, replicas).next_round()
    jobs, offers = JobOffers.post(market, draws, replicas), ResourceOffers.post(market, draws)
    fast = match(jobs, offers, TypeTable.build(market))
    assert fast.tolist() == match_reference(jobs, offers).tolist()
    check_greedy(jobs, offers, fast)
