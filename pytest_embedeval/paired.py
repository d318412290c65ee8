"""Two servers measured side by side: the candidate and a reference, in alternating windows.

A stored baseline was measured at another time, on a machine in another mood: on a shared 2-core
runner the same server's p50 moves 30-45% in an evening. Windows that alternate A B B A ... put both
servers in the same minutes; each window pair's ratio cancels what the minute did to both, and the
spread of those ratios is the only noise left. The markers call these functions when their target
has a reference; the figures are ratios (or differences) judged against a built-in 1 (or 0).
"""

from __future__ import annotations

import numpy as np

from .markers import Measurement, Target, _check_tokens
from .measure import stats
from .vectors import is_half_precision, row_cosines

WINDOW = 20  # requests per latency window: short enough to share a minute, long enough for a median
THROUGHPUT_WINDOWS = 4  # windows per server for throughput (A B B A A B B A)


def _sides(target: Target, index: int) -> tuple[Target, Target]:
    # Even windows go candidate first, odd ones reference first: A B, B A, A B, ... = A B B A A B ...
    return (target, target.reference) if index % 2 == 0 else (target.reference, target)


def latency_windows(target: Target, batches: list[list[str]], tokens: int) -> tuple[list, list]:
    """Per-window latencies (seconds) of the candidate and of the reference, the same inputs for both."""
    candidate, reference = [], []
    for index, start in enumerate(range(0, len(batches), WINDOW)):
        window = batches[start:start + WINDOW]
        for side in _sides(target, index):
            result = side.load(window, concurrency=1)
            if side.server.spec == target.server.spec:  # a swapped-in model's tokenizer counts its own way
                _check_tokens(result, tokens)
            (candidate if side is target else reference).append(result.latencies)
    return candidate, reference


def latency_figures(candidate: list, reference: list, note: str) -> list[Measurement]:
    """The p50 and mean ratios over window pairs; each with both servers' own figure over all windows."""
    figures = []
    for name, statistic in (("paired_latency_p50_ratio", np.median), ("paired_latency_mean_ratio", np.mean)):
        ratio, interval = stats.paired_ratio([statistic(w) for w in candidate], [statistic(w) for w in reference])
        pair = (float(statistic(np.concatenate(reference))) * 1000, float(statistic(np.concatenate(candidate))) * 1000)
        figures.append(Measurement(name, ratio, interval, f"{note}; {len(candidate)} window pairs of {WINDOW} "
                                   "requests, A B B A", pair=pair))
    return figures


def throughput_windows(target: Target, run_window) -> tuple[list, list]:
    """Per-window load results of the candidate and of the reference; ``run_window(side)`` runs one window."""
    candidate, reference = [], []
    for index in range(THROUGHPUT_WINDOWS):
        for side in _sides(target, index):
            (candidate if side is target else reference).append(run_window(side))
    return candidate, reference


def pooled(results: list):
    """One server's windows as one load: every latency, and tokens/s over all the windows' seconds."""
    from dataclasses import replace

    return replace(results[0], latencies=[s for r in results for s in r.latencies],
                   prompt_tokens=sum(r.prompt_tokens for r in results), failures=sum(r.failures for r in results),
                   wall_seconds=sum(r.wall_seconds for r in results))


def throughput_figure(candidate: list, reference: list, note: str) -> Measurement:
    ratio, interval = stats.paired_ratio([r.tokens_per_s for r in candidate], [r.tokens_per_s for r in reference])
    return Measurement("paired_throughput_ratio", ratio, interval,
                       f"{note}; {len(candidate)} window pairs, A B B A",
                       pair=(pooled(reference).tokens_per_s, pooled(candidate).tokens_per_s))


def memory_figure(candidate: Measurement, reference: Measurement) -> Measurement:
    return Measurement("paired_memory_ratio", candidate.value / reference.value, None,
                       f"{candidate.metric} of both servers after the same load",
                       pair=(reference.value, candidate.value))


def drift_figure(target: Target, texts: list[str], candidate: np.ndarray, tolerance: float | None) -> Measurement:
    """The worst cosine between the two servers' vectors of the same probe text."""
    from . import drift

    reference = np.asarray([target.reference.client.embed([text])[0] for text in texts])
    cosines = row_cosines(candidate, reference, "candidate", "reference")
    half = is_half_precision(target.server.dtype) or is_half_precision(target.reference.server.dtype)
    return Measurement("paired_min_cosine", float(cosines.min()), None,
                       "candidate vs reference vectors of each probe text; " + drift.worst(texts, cosines),
                       # Two servers of the same files and dtype compute the same vectors: fp32 to ~1e-7.
                       tolerance if tolerance is not None else 0.001 if half else 0.0001)
