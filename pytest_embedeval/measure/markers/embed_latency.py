"""The latency marker: one request in flight, p50/p90/p99/mean with intervals; in a pair, each request sent to
both servers back to back and judged as the candidate's ratio to the incumbent."""

from __future__ import annotations

import numpy as np

from .. import stats
from ..timing import Timing, timing_name
from .target import Measured, Measurement, MeasurementError, Target, batches, check_tokens


def embed_latency(target: Target, *, batch_size: int = 1, tokens: int = 128, requests: int = 200,
                  warmup: int = 20) -> Measured:
    """Request latency, one request in flight: p50, p90, p99 and mean, each with a 95% bootstrap interval.

    Every request's latency is kept with the figures: when the baseline run's samples are stored,
    the verdict resamples both runs, so the baseline's own noise counts too.
    """
    sent = batches(target, batch_size, tokens, warmup + requests)
    for side in target.sides():
        side.load(sent[:warmup], concurrency=1)
    note = f"{requests} requests after {warmup} warm-up"
    shape = f"batch {batch_size} x {tokens} tokens"
    paired_figures = []
    if target.incumbent:
        latencies, incumbent = latency_pairs(target, sent[warmup:], tokens)
        paired_figures = latency_figures(latencies, incumbent, note, shape)
    else:
        result = target.load(sent[warmup:], concurrency=1)
        check_tokens(result, tokens)
        latencies = result.latencies
    name = timing_name("latency", batch_size, tokens)
    timing = Timing(name, latencies, {"batch_size": batch_size, "tokens": tokens, "concurrency": 1})
    ms = [s * 1000 for s in latencies]
    figures = [
        Measurement(f"latency_{statistic}_ms", float(stats.STATISTICS[statistic](ms)),
                    stats.interval(ms, stats.STATISTICS[statistic]), note, shape, timing=name, statistic=statistic)
        for statistic in ("p50", "p90", "p99", "mean")
    ]
    return Measured(figures + paired_figures, timings=[timing])


def latency_pairs(target: Target, sent: list[list[str]], tokens: int) -> tuple[list, list]:
    """Each batch's latency (seconds) on the candidate and on the incumbent, sent back to back, A B B A.

    A stored baseline was measured at another time, on a machine in another mood: on a shared 2-core runner
    the same server's p50 moves 30-45% in an evening. Sent back to back, both servers meet the same moment.
    """
    from ..load import run_alternating

    ends = [(side.url, side.model, side.api_key) for side in target.sides()]
    results = run_alternating(*ends, sent, timeout=target.timeout)
    for side, result in zip(target.sides(), results):
        if result.failures:
            raise MeasurementError(f"{'incumbent' if side is target.incumbent else 'candidate'}: "
                                   f"{result.failure_text()}")
        if side.server.spec == target.server.spec:  # a swapped-in model's tokenizer counts its own way
            check_tokens(result, tokens)
    return results[0].latencies, results[1].latencies


def latency_figures(candidate: list, incumbent: list, note: str, shape: str) -> list[Measurement]:
    """Candidate over incumbent: the median request pair's ratio, and the ratio of the means.

    The median pair's ratio rather than the ratio of the two medians: each pair shares its moment, so
    its ratio holds only the servers' difference, where two medians each carry the moment's noise.
    """
    note = f"{note}; each request sent to both servers back to back, A B B A"
    p50, p50_interval = stats.paired_ratio(candidate, incumbent, center=np.median)
    mean = float(np.mean(candidate) / np.mean(incumbent))
    mean_interval = stats.ratio_interval(candidate, incumbent, np.mean, paired=True)
    ms = lambda values, statistic: float(statistic(values)) * 1000  # noqa: E731
    return [Measurement("paired_latency_p50_ratio", p50, p50_interval, note + ", median of the pairs' ratios",
                        shape, pair=(ms(incumbent, np.median), ms(candidate, np.median))),
            Measurement("paired_latency_mean_ratio", mean, mean_interval, note, shape,
                        pair=(ms(incumbent, np.mean), ms(candidate, np.mean)))]
