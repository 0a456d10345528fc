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
    """Where the least-squares line through independent samples (x, y) crosses y = 0, with a Fieller interval."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    design = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = len(x) - 2
    cov = np.linalg.inv(design.T @ design) * float(resid @ resid) / dof
    return _fieller(coef, cov, float(stats.t.ppf(0.5 + level / 2, dof)))


def gain_difference(
    x: list[float], treated: list[np.ndarray], control: list[np.ndarray], level: float = LEVEL
) -> Estimate:
    """Where the gain mean(treated) - mean(control), measured at each level x[k] from independent samples, crosses
    zero: a line weighted by each difference's variance (a control mean is shared by all treated samples of its
    level, so the samples are not independent and `zero_crossing` would understate the interval)."""
    gain = np.array([t.mean() - c.mean() for t, c in zip(treated, control, strict=True)])
    var = np.array([t.var(ddof=1) / len(t) + c.var(ddof=1) / len(c) for t, c in zip(treated, control, strict=True)])
    design = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=float)])
    weights = 1.0 / np.maximum(var, 1e-300)
    cov = np.linalg.inv(design.T @ (design * weights[:, None]))
    coef = cov @ design.T @ (weights * gain)
    return _fieller(coef, cov, float(stats.norm.ppf(0.5 + level / 2)))


def _fieller(coef: np.ndarray, cov: np.ndarray, t: float) -> Estimate:
    """The root -a/b of the line a + b x and its Fieller interval: the x0 with (a + b x0)^2 <= t^2 Var(a + b x0)
    (exact for normal estimates; the delta method when the slope is not clearly non-zero)."""
    a, b = coef
    root = -a / b
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
