"""Measured values with intervals: means over independent samples, and where a fitted line crosses zero."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.99  # two-sided confidence level of every reported interval


@dataclass(frozen=True)
class Estimate:
    """A measured value and its interval [lo, hi]."""

    value: float
    lo: float
    hi: float

    def covers(self, x: float) -> bool:
        return self.lo <= x <= self.hi

    def widened(self, by: float) -> Estimate:
        """The interval widened by a known bound on a deterministic error (e.g. floor rounding)."""
        return Estimate(self.value, self.lo - by, self.hi + by)


def exact(value: float) -> Estimate:
    """A value the twin produces without randomness (its interval is the point)."""
    return Estimate(value, value, value)


def mean(samples: np.ndarray, level: float = LEVEL) -> Estimate:
    """Mean of independent samples with a Student-t interval."""
    x = np.asarray(samples, dtype=float)
    m = float(x.mean())
    if len(x) < 2 or x.std() == 0:
        return exact(m)
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return Estimate(m, m - half, m + half)


def zero_crossing(x: np.ndarray, y: np.ndarray, level: float = LEVEL) -> Estimate:
    """Where the least-squares line through (x, y) crosses y = 0, with a Fieller interval (exact for a ratio of
    normal estimates; falls back to the delta method when the slope is not significant)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    design = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = len(x) - 2
    cov = np.linalg.inv(design.T @ design) * float(resid @ resid) / dof
    a, b = coef
    root = -a / b
    t = float(stats.t.ppf(0.5 + level / 2, dof))
    # Fieller: the x0 with (a + b x0)^2 <= t^2 Var(a + b x0)
    qa = b * b - t * t * cov[1, 1]
    qb = 2 * (a * b - t * t * cov[0, 1])
    qc = a * a - t * t * cov[0, 0]
    disc = qb * qb - 4 * qa * qc
    if qa > 0 and disc >= 0:
        lo, hi = sorted(((-qb - np.sqrt(disc)) / (2 * qa), (-qb + np.sqrt(disc)) / (2 * qa)))
        return Estimate(float(root), float(lo), float(hi))
    grad = np.array([-1 / b, a / (b * b)])
    half = t * float(np.sqrt(grad @ cov @ grad))
    return Estimate(float(root), float(root - half), float(root + half))
