"""Two servers measured side by side: the candidate and a reference, in turns.

A stored baseline was measured at another time, on a machine in another mood: on a shared 2-core
runner the same server's p50 moves 30-45% in an evening. Measuring both in turns, A B B A ..., puts
them in the same moments: latency sends each request to both servers back to back, throughput
alternates windows of load; the ratio cancels what the moment did to both, and only the difference
between the servers is left. The markers call these functions when their target has a reference;
the figures are ratios (or differences) judged against a built-in 1 (or 0).
"""

from __future__ import annotations

import numpy as np

from .markers import Measurement, MeasurementError, Target, _check_tokens
from .measure import stats
from .vectors import row_cosines

THROUGHPUT_WINDOWS = 4  # windows per server for throughput (A B B A A B B A)


def _sides(target: Target, index: int) -> tuple[Target, Target]:
    # Even windows go candidate first, odd ones reference first: A B, B A, A B, ... = A B B A A B ...
    return (target, target.reference) if index % 2 == 0 else (target.reference, target)


def latency_pairs(target: Target, batches: list[list[str]], tokens: int) -> tuple[list, list]:
    """Each batch's latency (seconds) on the candidate and on the reference, sent back to back, A B B A."""
    from .measure.load import run_alternating

    ends = [(side.url, side.model, side.api_key) for side in (target, target.reference)]
    results = run_alternating(*ends, batches, timeout=target.timeout)
    for side, result in zip((target, target.reference), results):
        if result.failures:
            raise MeasurementError(f"{'reference' if side is target.reference else 'candidate'}: "
                                   f"{result.failure_text()}")
        if side.server.spec == target.server.spec:  # a swapped-in model's tokenizer counts its own way
            _check_tokens(result, tokens)
    return results[0].latencies, results[1].latencies


def latency_figures(candidate: list, reference: list, note: str, shape: str) -> list[Measurement]:
    """Candidate over reference: the median request pair's ratio, and the ratio of the means.

    The median pair's ratio rather than the ratio of the two medians: each pair shares its moment, so
    its ratio holds only the servers' difference, where two medians each carry the moment's noise.
    """
    note = f"{note}; each request sent to both servers back to back, A B B A"
    p50, p50_interval = stats.paired_ratio(candidate, reference, center=np.median)
    mean = float(np.mean(candidate) / np.mean(reference))
    mean_interval = stats.ratio_interval(candidate, reference, np.mean, paired=True)
    ms = lambda values, statistic: float(statistic(values)) * 1000  # noqa: E731
    return [Measurement("paired_latency_p50_ratio", p50, p50_interval, note + ", median of the pairs' ratios",
                        shape, pair=(ms(reference, np.median), ms(candidate, np.median))),
            Measurement("paired_latency_mean_ratio", mean, mean_interval, note, shape,
                        pair=(ms(reference, np.mean), ms(candidate, np.mean)))]


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


def throughput_figure(candidate: list, reference: list, note: str, shape: str) -> Measurement:
    ratio, interval = stats.paired_ratio([r.tokens_per_s for r in candidate], [r.tokens_per_s for r in reference])
    return Measurement("paired_throughput_ratio", ratio, interval,
                       f"{note}; {len(candidate)} window pairs, A B B A", shape,
                       pair=(pooled(reference).tokens_per_s, pooled(candidate).tokens_per_s))


def memory_figure(candidate: Measurement, reference: Measurement) -> Measurement:
    return Measurement("paired_memory_ratio", candidate.value / reference.value, None,
                       f"{candidate.metric} of both servers after the same load", candidate.shape,
                       pair=(reference.value, candidate.value))


def drift_figure(target: Target, texts: list[str], candidate: np.ndarray) -> Measurement:
    """The worst cosine between the two servers' vectors of the same probe text."""
    from . import drift

    reference = np.asarray([target.reference.client.embed([text])[0] for text in texts])
    cosines = row_cosines(candidate, reference, "candidate", "reference")
    return Measurement("paired_min_cosine", float(cosines.min()), None,
                       "candidate vs reference vectors of each probe text; " + drift.worst(texts, cosines))
