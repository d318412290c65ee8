"""The fleet marker: a gateway and its workers, measured in the same minutes. Each worker's share of the requests
and its latency, the balance between workers (the slowest against the rest), and what the gateway itself adds
(each request through it against its twin sent straight to the worker it chose)."""

from __future__ import annotations

import numpy as np

from .. import stats
from ..timing import Timing, timing_name
from .target import Measured, Measurement, MeasurementError, NotMeasurable, Target, batches, check_tokens


def embed_fleet(target: Target, *, batch_size: int = 1, tokens: int = 128, requests: int = 200,
                warmup: int = 20) -> Measured:
    """Per-worker share and latency, the workers' balance and the gateway's overhead, one request in flight.

    A worker 20% slower than its peers hides in the fleet's p50 when it takes half the requests or fewer:
    the balance figure (the slowest worker's median over the others') does not.
    """
    workers = fleet_workers(target.server)
    if len(workers) < 2:
        raise NotMeasurable("not a fleet: boot one with --embed-workers N (N >= 2), or point --embed-url at a "
                            "gateway that lists two or more workers (SGLang's model gateway, GET /workers)")
    from ..load import run_through_gateway

    sent = batches(target, batch_size, tokens, warmup + requests)
    settle(target, workers, sent[:warmup])
    routed, direct, pairs = run_through_gateway((target.url, target.model, target.api_key), workers,
                                                sent[warmup:], timeout=target.timeout)
    if routed.failures:
        raise MeasurementError(f"through the gateway: {routed.failure_text()}")
    check_tokens(routed, tokens)
    shape = f"batch {batch_size} x {tokens} tokens"
    names = {url: f"worker {index} of {len(workers)} ({url})" for index, url in enumerate(workers, 1)}
    by_worker = {url: [s for s, w in zip(routed.latencies, routed.routed) if (w or "").rstrip("/") == url]
                 for url in workers}
    strays = len(routed.latencies) - sum(map(len, by_worker.values()))  # routed to a worker it did not list
    share = "; ".join(f"worker {i} {len(by_worker[url])}" for i, url in enumerate(workers, 1))
    note = f"{requests} requests through the gateway after {warmup} warm-up; requests per worker: {share}" + (
        f"; {strays} to workers the gateway did not list" if strays else "")
    figures, timings = [], []
    for index, url in enumerate(workers, 1):
        samples = by_worker[url]
        if not samples:
            continue
        ms = [s * 1000 for s in samples]
        name = f"{timing_name('latency', batch_size, tokens)}, worker {index} of {len(workers)}"
        timings.append(Timing(name, samples, {"batch_size": batch_size, "tokens": tokens, "concurrency": 1,
                                              "worker": url}))
        figures.append(Measurement(
            "latency_p50_ms", float(np.median(ms)), stats.interval(ms, np.median),
            f"{len(samples)} of {len(routed.latencies)} requests ({len(samples) / len(routed.latencies):.0%}) "
            "went to this worker, through the gateway", f"{shape}, worker {index} of {len(workers)}",
            timing=name, statistic="p50", subject=names[url]))
    figures.append(balance_figure(by_worker, names, note, shape))
    if direct.failures or not pairs:
        figures.append(Measurement("gateway_overhead_ratio", float("nan"), None, None, shape, missing=(
            "no request reached a worker straight from this machine"
            + (f" ({direct.failure_text()})" if direct.failures else "")
            + ": the workers' own addresses must be reachable from here to measure what the gateway adds")))
    else:
        routed_s, direct_s = [p[1] for p in pairs], [p[2] for p in pairs]
        ratio, interval = stats.paired_ratio(routed_s, direct_s, center=np.median)
        figures.append(Measurement(
            "gateway_overhead_ratio", ratio, interval,
            f"{len(pairs)} requests through the gateway, each followed by its twin sent straight to the worker it "
            "chose; median of the pairs' ratios", shape,
            pair=(float(np.median(direct_s)) * 1000, float(np.median(routed_s)) * 1000)))
    return Measured(figures, timings=timings)


# smg 1.13 polls its workers' load every 10 s, and routes around one it last saw busy until a poll says otherwise:
# after another test's burst, a worker can get nothing for seconds. The figures are of the settled fleet.
SETTLE_SECONDS = 30.0


def settle(target: Target, workers: list[str], warmup: list[list[str]]) -> None:
    """Warm up until the gateway routes to every worker again, for at most SETTLE_SECONDS; a worker it still
    avoids after that shows in the figures (the gateway does not use it)."""
    import time

    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        routed = {(worker or "").rstrip("/") for worker in target.load(warmup, concurrency=1).routed}
        avoided = [url for url in workers if url not in routed]
        if not avoided or time.monotonic() > deadline:
            return
        target.progress(f"embed_fleet: the gateway sent no warm-up request to {', '.join(avoided)}; waiting for "
                        "its view of the workers' load to settle")
        time.sleep(2.0)


def balance_figure(by_worker: dict[str, list[float]], names: dict[str, str], note: str, shape: str) -> Measurement:
    """The slowest worker's median latency over the other workers' (their requests pooled), with a bootstrap
    interval of both. A worker that got no request at all is no figure: the gateway does not use it."""
    idle = [names[url] for url, samples in by_worker.items() if not samples]
    if idle:
        return Measurement("fleet_balance_ratio", float("inf"), None, f"{note}; no request went to {idle[0]}",
                           shape, subject=idle[0])
    medians = {url: float(np.median(samples)) for url, samples in by_worker.items()}
    slowest = max(medians, key=medians.get)
    rest = [s for url, samples in by_worker.items() if url != slowest for s in samples]
    value = medians[slowest] / float(np.median(rest))
    interval = stats.ratio_interval(by_worker[slowest], rest, np.median)
    return Measurement("fleet_balance_ratio", value, interval, note, shape,
                       pair=(float(np.median(rest)) * 1000, medians[slowest] * 1000), subject=names[slowest])


def fleet_workers(server) -> list[str]:
    """The workers behind the server's gateway, by URL: a booted fleet's own, or those the gateway at --embed-url
    lists; [] for one server."""
    listed = getattr(server, "worker_urls", None)
    return [url.rstrip("/") for url in listed()] if listed else []
