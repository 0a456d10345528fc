"""Per-group (replicas of one job) reductions on deal columns, vectorized."""

from __future__ import annotations

import numpy as np


def group_sum(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each deal's group total of `values` (exact int64)."""
    keys, inverse = np.unique(group, return_inverse=True)
    sums = np.zeros(len(keys), dtype=np.int64)
    np.add.at(sums, inverse, values)
    return sums[inverse]


def group_any(group: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Whether any deal of each deal's group has the flag."""
    return group_sum(group, flags.astype(np.int64)) > 0


def group_first(group: np.ndarray, mask: np.ndarray, order: tuple[np.ndarray, ...]) -> np.ndarray:
    """Per deal, the row index of the first deal of its group with `mask`, by lexicographic `order` keys
    (first key most significant); -1 where the group has none."""
    keys, inverse = np.unique(group, return_inverse=True)
    rows = np.flatnonzero(mask)
    first = np.full(len(keys), -1, dtype=np.int64)
    if len(rows):
        ranked = rows[np.lexsort((*(k[rows] for k in reversed(order)), inverse[rows]))[::-1]]
        first[inverse[ranked]] = ranked  # later writes win: reversed order leaves the first
    return first[inverse]


def disagreeing(group: np.ndarray, posted: np.ndarray, result: np.ndarray) -> np.ndarray:
    """Per deal, whether the posted results of its group's replicas differ (a disagreement needs no check)."""
    lo = group_first(group, posted, (result,))
    hi = group_first(group, posted, (-result,))
    return (lo >= 0) & (result[np.clip(lo, 0, None)] != result[np.clip(hi, 0, None)])
