"""Exact money: `mul_bps` gives the floor of amount x rate / 10 000 exactly, or raises; it never wraps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mechanisms.money import BPS, INT64_MAX, MoneyOverflow, exact_sum, mul_bps

L = INT64_MAX
#: int64 amounts, often at the edges (where a product first leaves int64)
AMOUNTS = st.one_of(
    st.integers(-L, L), st.sampled_from([0, 1, -1, L, -L, L // BPS, L // 100, 10**15]), st.integers(L // 1000, L)
)
RATES = st.one_of(
    st.integers(0, 100 * BPS), st.sampled_from([0, 1, BPS - 1, BPS, BPS + 1, 100 * BPS]), st.integers(0, L // BPS)
)


def fits(values: list[int]) -> bool:
    return all(-L <= v <= L for v in values)


@given(amounts=st.lists(AMOUNTS, min_size=1, max_size=6), rate=RATES)
def test_mul_bps_is_exact_or_raises(amounts: list[int], rate: int) -> None:
    exact = [a * rate // BPS for a in amounts]
    if fits(exact):
        assert mul_bps(np.array(amounts, dtype=np.int64), rate).tolist() == exact
    else:
        with pytest.raises(MoneyOverflow):
            mul_bps(np.array(amounts, dtype=np.int64), rate)


@given(pairs=st.lists(st.tuples(AMOUNTS, RATES), min_size=1, max_size=6))
def test_mul_bps_with_a_rate_per_amount(pairs: list[tuple[int, int]]) -> None:
    """Rates per element (e.g. each node's own multiplier): the largest amount and the largest rate may belong to
    different elements, so only a product that really leaves int64 raises."""
    amounts, rates = (np.array(col, dtype=np.int64) for col in zip(*pairs, strict=True))
    exact = [a * r // BPS for a, r in pairs]
    if fits(exact):
        assert mul_bps(amounts, rates).tolist() == exact
    else:
        with pytest.raises(MoneyOverflow):
            mul_bps(amounts, rates)


@given(amount=st.integers(-(2**80), 2**80), rate=st.integers(0, 2**40))
def test_python_ints_are_exact_and_raise_past_int64(amount: int, rate: int) -> None:
    exact = amount * rate // BPS
    if fits([exact]):
        assert mul_bps(amount, rate) == exact
    else:
        with pytest.raises(MoneyOverflow):
            mul_bps(amount, rate)


def test_the_edges() -> None:
    """Where numpy's own int64 multiply would wrap: 100% of the largest amount, and one unit past the largest."""
    assert mul_bps(np.array([L]), BPS).tolist() == [L]  # L x 10_000 wraps in int64; the value itself fits
    assert mul_bps(np.array([10**15]), 100 * BPS).tolist() == [10**17]
    with pytest.raises(MoneyOverflow):
        mul_bps(np.array([L]), BPS + 1)
    with pytest.raises(MoneyOverflow):
        mul_bps(np.array([L // 2, 3]), 2 * BPS + 1)
    assert mul_bps(np.zeros(0, dtype=np.int64), BPS).tolist() == []


@given(values=st.lists(AMOUNTS, max_size=8))
def test_exact_sum_is_exact_or_raises(values: list[int]) -> None:
    if fits([sum(values)]):
        assert exact_sum(np.array(values, dtype=np.int64)) == sum(values)
    else:
        with pytest.raises(MoneyOverflow):
            exact_sum(np.array(values, dtype=np.int64))
