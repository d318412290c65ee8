"""The throughput marker: tokens/s and requests/s at one concurrency or the best of a sweep; in a pair,
windows of load alternated between the two servers (A B B A ...) and judged as the candidate's ratio."""

from __future__ import annotations

import time
from dataclasses import replace

from .. import stats
from ..timing import Timing, timing_name
from .target import Measured, Measurement, Target, batches, check_tokens

SWEEP = (1, 2, 4, 8, 16, 32, 64)
WINDOWS = 4  # windows per server in a pair (A B B A A B B A)


def embed_throughput(target: Target, *, batch_size: int = 32, tokens: int = 128, concurrency: int = 4,
                     requests: int | None = None, sweep: bool = False, sweep_seconds: float = 60.0,
                     processes: int = 1) -> Measured:
    """Tokens/s and requests/s at one concurrency, or the maximum tokens/s found by a concurrency sweep.

    ``processes``: client processes sharing the load, for a server (a fleet) faster than one client process can
    drive; the note says what the client spent, so a client-bound figure shows itself.

    The sweep doubles the concurrency in short probes until two steps in a row gain less than 5%, or
    until ``sweep_seconds`` are spent (a CPU server saturates at once; a GPU one much later). The best
    probe only picks the concurrency: the figure is a full-length run there, because the largest of
    several short, noisy probes is biased upwards and would make every later run look like a regression.
    """
    if processes < 1:
        raise ValueError(f"embed_throughput: processes={processes}: give 1 or more client processes")
    if sweep:
        concurrency = _saturating_concurrency(target, batch_size, tokens, sweep_seconds, processes)
    count = requests or max(8 * concurrency, 48)
    shape = throughput_shape(batch_size, tokens, concurrency, sweep, processes)
    paired_figures = []
    if target.incumbent:
        per_window = max(count // WINDOWS, 2 * concurrency)
        windows, incumbent = throughput_windows(
            target, lambda side: _throughput_at(side, batch_size, tokens, concurrency, per_window, inputs=target,
                                                processes=processes))
        result = pooled(windows)
        paired_figures = [throughput_figure(windows, incumbent, f"concurrency {concurrency}", shape)]
    else:
        result = _throughput_at(target, batch_size, tokens, concurrency, count, processes=processes)
    note = f"concurrency {concurrency}, {result.requests} requests; {result.client_text()}"
    timing = Timing(timing_name("throughput", batch_size, tokens, concurrency), result.latencies,
                    {"batch_size": batch_size, "tokens": tokens, "concurrency": concurrency},
                    extra={"tokens_per_s": result.tokens_per_s, "requests_per_s": result.requests_per_s,
                           "client_processes": processes, "client_cpu_seconds": result.client_cpu_seconds})
    if sweep:
        figures = [Measurement("max_throughput_tokens_per_s", result.tokens_per_s, None,
                               f"{note}; the sweep saturated by concurrency {concurrency}", shape)]
    else:
        figures = [Measurement("throughput_tokens_per_s", result.tokens_per_s, None, note, shape),
                   Measurement("throughput_requests_per_s", result.requests_per_s, None, note, shape)]
    return Measured(figures + paired_figures, timings=[timing])


def _saturating_concurrency(target: Target, batch_size: int, tokens: int, seconds: float, processes: int = 1) -> int:
    best, best_at, flat = 0.0, 1, 0
    deadline = time.monotonic() + seconds
    for level in SWEEP:
        probe = _throughput_at(target, batch_size, tokens, level, max(16, 4 * level), processes=processes).tokens_per_s
        target.progress(f"embed_throughput: sweep, concurrency {level}: {probe:.0f} tokens/s")
        if probe > best * 1.05:
            best_at, flat = level, 0
        else:
            flat += 1
        best = max(best, probe)
        if flat == 2 or time.monotonic() > deadline:  # two steps without a 5% gain: saturated
            break
    return best_at


def _throughput_at(target: Target, batch_size: int, tokens: int, concurrency: int, count: int,
                   inputs: Target | None = None, processes: int = 1):
    """One full run at ``concurrency``; ``inputs``: whose tokenizer makes the texts (the candidate's, in a pair)."""
    inputs = inputs or target
    sent = batches(inputs, batch_size, tokens, count + concurrency)
    target.load(sent[:concurrency], concurrency)  # warm-up: one request per connection
    result = target.load(sent[concurrency:], concurrency, processes)
    if inputs.server.spec == target.server.spec:  # a swapped-in model's tokenizer counts its own way
        check_tokens(result, tokens)
    return result


def throughput_shape(batch_size: int, tokens: int, concurrency: int, sweep: bool, processes: int = 1) -> str:
    """A sweep's figure is the best concurrency's, whichever it was: its shape names the sweep instead. Several
    client processes can reach a rate one cannot: a figure of its own."""
    clients = f", {processes} client processes" if processes > 1 else ""
    return f"batch {batch_size} x {tokens} tokens, " + ("sweep" if sweep else f"concurrency {concurrency}") + clients


def throughput_windows(target: Target, run_window) -> tuple[list, list]:
    """Per-window load results of the candidate and of the incumbent; ``run_window(side)`` runs one window.
    Even windows go candidate first, odd ones incumbent first: A B, B A, A B, ... = A B B A A B ..."""
    candidate, incumbent = [], []
    for index in range(WINDOWS):
        order = target.sides() if index % 2 == 0 else target.sides()[::-1]
        for side in order:
            (candidate if side is target else incumbent).append(run_window(side))
    return candidate, incumbent


def pooled(results: list):
    """One server's windows as one load: every latency, and tokens/s over all the windows' seconds."""
    return replace(results[0], latencies=[s for r in results for s in r.latencies],
                   prompt_tokens=sum(r.prompt_tokens for r in results), failures=sum(r.failures for r in results),
                   wall_seconds=sum(r.wall_seconds for r in results),
                   client_cpu_seconds=sum(r.client_cpu_seconds for r in results))


def throughput_figure(candidate: list, incumbent: list, note: str, shape: str) -> Measurement:
    ratio, interval = stats.paired_ratio([r.tokens_per_s for r in candidate], [r.tokens_per_s for r in incumbent])
    return Measurement("paired_throughput_ratio", ratio, interval,
                       f"{note}; {len(candidate)} window pairs, A B B A", shape,
                       pair=(pooled(incumbent).tokens_per_s, pooled(candidate).tokens_per_s))
