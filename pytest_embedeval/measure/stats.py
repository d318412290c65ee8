"""Numbers only: latency statistics and their bootstrap confidence intervals (scipy)."""

from __future__ import annotations

from functools import partial

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def percentile(q: float):
    """The q-th percentile as a statistic for ``interval`` and ``ratio_interval``."""
    return partial(np.percentile, q=q)


# The summaries a timed figure can be, by the name a Measurement gives its statistic.
STATISTICS = {"p50": percentile(50), "p90": percentile(90), "p99": percentile(99), "mean": np.mean}


def interval(samples, statistic=np.mean, confidence: float = CONFIDENCE, resamples: int = 2000,
             seed: int = 0) -> tuple[float, float]:
    """Bootstrap confidence interval of ``statistic(samples)`` (scipy's BCa; percentile method as fallback).

    A verdict compares this interval, not the point estimate, with the baseline's tolerance band:
    a run on a noisy runner whose interval still reaches into the band is not a regression.
    """
    data = np.asarray(samples, dtype=float)
    if data.size < 2 or np.ptp(data) == 0:
        value = float(statistic(data)) if data.size else float("nan")
        return value, value
    for method in ("BCa", "percentile"):
        result = stats.bootstrap((data,), statistic, confidence_level=confidence, n_resamples=resamples,
                                 method=method, random_state=np.random.default_rng(seed), vectorized=True)
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high)
    value = float(statistic(data))
    return value, value


def percentile_interval(samples, q: float, **options) -> tuple[float, float]:
    return interval(samples, percentile(q), **options)


def ratio_interval(measured, baseline, statistic=np.mean, confidence: float = CONFIDENCE, resamples: int = 2000,
                   seed: int = 0, paired: bool = False) -> tuple[float, float]:
    """Bootstrap confidence interval of statistic(measured) / statistic(baseline).

    Both runs are resampled, so the baseline run's own noise widens the interval: a single
    baseline run measured in a lucky minute cannot by itself make the next run a regression.
    ``paired``: sample i of both was measured together, and is resampled together, so what the
    moment did to both cancels in the ratio instead of widening it.
    """
    def ratio(x, y, axis=-1):
        return statistic(x, axis=axis) / statistic(y, axis=axis)

    samples = (np.asarray(measured, dtype=float), np.asarray(baseline, dtype=float))
    result = stats.bootstrap(samples, ratio, confidence_level=confidence, n_resamples=resamples, paired=paired,
                             method="percentile", random_state=np.random.default_rng(seed), vectorized=True)
    low, high = result.confidence_interval
    return float(low), float(high)


def paired_ratio(candidate, incumbent, center=np.mean, confidence: float = CONFIDENCE, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, tuple[float, float]]:
    """The typical candidate[i] / incumbent[i] over pairs, with its bootstrap interval.

    Each pair was measured back to back (A B B A ...), so a busy moment slows both sides of a pair
    alike and cancels in its ratio; the spread of the ratios across pairs is what is left, and what
    the interval measures. ``center`` of the log ratios: np.mean gives the geometric mean, np.median
    the median pair. Logs make a 10% slower and a 10% faster pair weigh the same.
    """
    logs = np.log(np.asarray(candidate, dtype=float) / np.asarray(incumbent, dtype=float))
    point = float(np.exp(center(logs)))
    if logs.size < 2 or np.ptp(logs) == 0:
        return point, (point, point)
    low, high = interval(logs, center, confidence, resamples, seed)
    return point, (float(np.exp(low)), float(np.exp(high)))
