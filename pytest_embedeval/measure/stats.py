"""Numbers only: percentiles of latency samples and their bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def percentile_interval(samples, q: float, confidence: float = CONFIDENCE, resamples: int = 2000,
                        seed: int = 0) -> tuple[float, float]:
    """Bootstrap confidence interval of the q-th percentile (scipy's BCa; percentile method as fallback).

    A verdict compares this interval, not the point estimate, with the baseline's tolerance band:
    a run on a noisy runner whose interval still reaches into the band is not a regression.
    """
    data = np.asarray(samples, dtype=float)
    if data.size < 2 or np.ptp(data) == 0:
        value = float(np.percentile(data, q)) if data.size else float("nan")
        return value, value

    def statistic(x, axis=-1):
        return np.percentile(x, q, axis=axis)

    for method in ("BCa", "percentile"):
        result = stats.bootstrap((data,), statistic, confidence_level=confidence, n_resamples=resamples,
                                 method=method, random_state=np.random.default_rng(seed), vectorized=True)
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high)
    return float(np.percentile(data, q)), float(np.percentile(data, q))


def latency_summary(seconds) -> dict[str, float]:
    """p50, p90, p99 and mean, in milliseconds."""
    ms = np.asarray(seconds, dtype=float) * 1000.0
    return {
        "latency_p50_ms": float(np.percentile(ms, 50)),
        "latency_p90_ms": float(np.percentile(ms, 90)),
        "latency_p99_ms": float(np.percentile(ms, 99)),
        "latency_mean_ms": float(ms.mean()),
    }


def ratio_interval(measured, baseline, q: float, confidence: float = CONFIDENCE, resamples: int = 2000,
                   seed: int = 0) -> tuple[float, float]:
    """Bootstrap confidence interval of percentile(measured, q) / percentile(baseline, q).

    Both runs are resampled, so the baseline run's own noise widens the interval: a single
    baseline run measured in a lucky minute cannot by itself make the next run a regression.
    """
    first, second = np.asarray(measured, dtype=float), np.asarray(baseline, dtype=float)

    def statistic(x, y, axis=-1):
        return np.percentile(x, q, axis=axis) / np.percentile(y, q, axis=axis)

    result = stats.bootstrap((first, second), statistic, confidence_level=confidence, n_resamples=resamples,
                             method="percentile", random_state=np.random.default_rng(seed), vectorized=True)
    low, high = result.confidence_interval
    return float(low), float(high)
