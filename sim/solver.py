"""The solver: greedy matching of job offers to resource offers with the Lilypad rules.

Jobs are served oldest first; each takes the cheapest compatible resource offer still free, ties to the older
offer. The fast path uses offer types (offers of one type differ only in price and age, see `Market`): within a
type offers are consumed cheapest first, so each job only compares the heads of the compatible types, in a
compiled loop. `match_reference` is the plain statement of the same rule (a scan of one sorted list).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from sim.market import Market
from sim.offers import JobOffers, ResourceOffers, compatible


@dataclass(frozen=True)
class TypeTable:
    """Which resource types can serve which job types, price aside (CSR over job types); built once per run."""

    start: np.ndarray  # compatible resource types of job type t: rtype[start[t]:start[t+1]]
    rtype: np.ndarray
    n_rtypes: int

    @classmethod
    def build(cls, market: Market) -> TypeTable:
        j, r = market.job_types, market.node_types
        ok = compatible(
            j[:, None, :5], j[:, None, 5], False, 0, j[:, None, 6], r[None, :, :5], r[None, :, 5], 0, r[None, :, 6]
        )
        jt, rt = np.nonzero(ok)
        return cls(np.searchsorted(jt, np.arange(len(j) + 1)).astype(np.int64), rt.astype(np.int64), len(r))


def match(jobs: JobOffers, res: ResourceOffers, types: TypeTable, job_order: np.ndarray | None = None) -> np.ndarray:
    """For each job offer, the index of its matched resource offer, or -1. Offers are compared by their effective
    price `rank` (the price unless a mechanism adjusts it), which is also what a fixed-price job's limit binds.
    `job_order` is `arrival_order(jobs.arrival)` when the caller has it already."""
    if len(jobs.client) == 0 or len(res.node) == 0:
        return np.full(len(jobs.client), -1, dtype=np.int64)
    order = offer_order(res)  # by type, then effective price, then age
    type_start = np.searchsorted(res.rtype[order], np.arange(types.n_rtypes + 1)).astype(np.int64)
    job_order = arrival_order(jobs.arrival) if job_order is None else job_order
    return _greedy(
        job_order,
        jobs.jtype,
        jobs.fixed,
        jobs.max_price,
        types.start,
        types.rtype,
        type_start,
        order,
        res.rank,
        res.arrival,
    )


def arrival_order(arrival: np.ndarray) -> np.ndarray:
    """The stable argsort of non-negative ranks, in linear time when they are distinct (arrival ranks are a
    permutation): each index is put at its rank's slot, and the filled slots read in order."""
    if len(arrival) == 0:
        return np.zeros(0, dtype=np.int64)
    slot = np.full(int(arrival.max()) + 1, -1, dtype=np.int64)
    slot[arrival] = np.arange(len(arrival), dtype=np.int64)
    order = slot[slot >= 0]
    return order if len(order) == len(arrival) else np.argsort(arrival, kind="stable").astype(np.int64)


#: Sort keys up to this size are sorted by numpy's stable radix sort (16-bit keys), in linear time.
RADIX_KEYS = int(np.iinfo(np.int16).max)


def offer_order(res: ResourceOffers) -> np.ndarray:
    """`np.lexsort((res.arrival, res.rank, res.rtype))`: offers by type, then effective price, then age. With few
    types and prices the (type, price) key fits 16 bits and a stable radix sort of the offers taken by age gives
    the same order in linear time."""
    by_age = arrival_order(res.arrival)
    rtype, rank = res.rtype[by_age], res.rank[by_age]
    lo = int(rank.min())
    span = int(rank.max()) - lo + 1
    if (int(rtype.max()) + 1) * span > RADIX_KEYS:
        return np.lexsort((res.arrival, res.rank, res.rtype)).astype(np.int64)
    key = (rtype * span + (rank - lo)).astype(np.int16)
    return by_age[np.argsort(key, kind="stable")]


@njit(cache=True)
def _greedy(
    job_order, jtype, fixed, max_price, compat_start, compat_rt, type_start, sorted_res, price, arrival
):  # pragma: no cover - compiled
    head = type_start[:-1].copy()
    out = np.full(len(job_order), -1, dtype=np.int64)
    for j in job_order:
        jt = jtype[j]
        best = -1
        best_t = -1
        for k in range(compat_start[jt], compat_start[jt + 1]):
            t = compat_rt[k]
            h = head[t]
            if h >= type_start[t + 1]:
                continue
            r = sorted_res[h]
            if fixed[j] and price[r] > max_price[j]:
                continue
            if best < 0 or price[r] < price[best] or (price[r] == price[best] and arrival[r] < arrival[best]):
                best = r
                best_t = t
        if best >= 0:
            out[j] = best
            head[best_t] += 1
    return out


def match_reference(jobs: JobOffers, res: ResourceOffers) -> np.ndarray:
    """The same rule, stated plainly: offers sorted once cheapest first (ties to the older), then each job, oldest
    first, takes the first compatible offer still free. No offer types, no compilation: the reference to test against.
    """
    out = np.full(len(jobs.client), -1, dtype=np.int64)
    free = sorted(range(len(res.node)), key=lambda r: (res.rank[r], res.arrival[r]))
    for j in sorted(range(len(jobs.client)), key=lambda j: jobs.arrival[j]):
        for k, r in enumerate(free):
            if compatible(
                jobs.needs[j],
                jobs.module[j],
                jobs.fixed[j],
                jobs.max_price[j],
                jobs.trust[j],
                res.capacity[r],
                res.allow[r],
                res.rank[r],
                res.trust[r],
            ):
                out[j] = r
                del free[k]
                break
    return out
