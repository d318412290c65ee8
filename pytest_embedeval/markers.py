"""The markers: each one is a plain function from its arguments and a server to what it measured.

    @pytest.mark.embed_latency(batch_size=1, tokens=128)
    def test_latency(): ...

A marker measures and returns ``Measured`` (figures, plus the request timings and probe vectors
behind them). It judges nothing: the run session (``session.py``) compares every figure with its
baseline, decides whether a timed figure is measured once more, and fails the test. Nothing here
imports pytest, and the heavy imports wait until a marker runs.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class MeasurementError(RuntimeError):
    """The measurement itself failed (requests failed, tokens miscounted): there is no figure to judge."""


class NotMeasurable(RuntimeError):
    """This server cannot give this figure (for example memory behind --embed-url): skip, with the reason."""


@dataclass(frozen=True)
class Measurement:
    metric: str
    value: float
    interval: tuple[float, float] | None = None  # 95% confidence interval of the figure
    note: str | None = None
    shape: str | None = None  # what it was measured at, part of its identity: "batch 1 x 16 tokens"
    timing: str | None = None  # the Timing whose per-request samples this figure summarises
    statistic: str | None = None  # how it summarises them: "p50", "p90", "p99" or "mean"
    pair: tuple[float, float] | None = None  # a paired figure: the reference's and the candidate's own values
    items: tuple = field(default=(), compare=False, repr=False)  # an accuracy figure's per-item values
    missing: str | None = None  # no value: a stored input it needs is not there (the judge says "no baseline")


@dataclass
class Measured:
    """What one marker measured: the figures, and what an update stores beside them."""

    measurements: list[Measurement]
    timings: list = field(default_factory=list)  # store.timings.Timing of every request measured
    vectors: tuple | None = None  # (probe texts, vectors) for an update to store


@dataclass
class Target:
    """What a marker measures: the server, the run's one counted client, and what is stored to compare with."""

    server: object  # SGLangServer or RemoteServer
    client: object  # client.EmbeddingClient: every request it sends is counted, retries included
    api_key: str | None = field(default=None, repr=False)  # a repr reaches tracebacks (a failing test's arguments)
    progress: Callable[[str], None] = print
    stored_vectors: Callable[[], tuple | None] = lambda: None  # (texts, vectors) stored with the baselines
    update: bool = False  # --embed-update-baselines: a first recording compares the probe set with itself
    timeout: float = 120.0  # seconds for one request (--embed-request-timeout)
    reference: "Target | None" = None  # a reference server measured side by side (paired.py)
    mteb_results: object = None  # a folder for mteb's own result files of every accuracy task (--embed-mteb-results)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def model(self) -> str:
        return self.client.model

    def texts(self, tokens: int, count: int) -> list[str]:
        from .measure.inputs import texts_of_tokens

        local = self.server.spec.local_dir()
        if local is None:
            raise MeasurementError(f"the tokenizer of {self.server.spec.model!r} is not on this machine")
        return texts_of_tokens(local, tokens, count)

    def load(self, batches: list[list[str]], concurrency: int):
        from .measure.load import run_load

        result = run_load(self.url, self.model, batches, concurrency=concurrency, api_key=self.api_key,
                          timeout=self.timeout)
        if result.failures:
            # A figure built on failed requests would be a lie: no verdict at all.
            raise MeasurementError(result.failure_text())
        return result


def _batches(target: Target, batch_size: int, tokens: int, count: int) -> list[list[str]]:
    texts = target.texts(tokens, batch_size * count)
    return [texts[i * batch_size:(i + 1) * batch_size] for i in range(count)]


def _check_tokens(result, tokens: int) -> None:
    expected = tokens * result.batch_size * result.requests
    if result.prompt_tokens != expected:
        raise MeasurementError(
            f"the server counted {result.prompt_tokens} prompt tokens where the model's tokenizer counts "
            f"{expected} ({result.requests} requests x {result.batch_size} inputs x {tokens} tokens): "
            "server and tokenizer disagree, so per-token figures would be wrong"
        )


def embed_latency(target: Target, *, batch_size: int = 1, tokens: int = 128, requests: int = 200,
                  warmup: int = 20, tolerance: str | None = None, paired_tolerance: str | None = None) -> Measured:
    """Request latency, one request in flight: p50, p90, p99 and mean, each with a 95% bootstrap interval.

    Every request's latency is kept with the figures: when the baseline run's samples are stored,
    the verdict resamples both runs, so the baseline's own noise counts too.
    """
    from .measure import stats
    from .store.timings import Timing, timing_name

    batches = _batches(target, batch_size, tokens, warmup + requests)
    for side in (target, target.reference) if target.reference else (target,):
        side.load(batches[:warmup], concurrency=1)
    note = f"{requests} requests after {warmup} warm-up"
    shape = f"batch {batch_size} x {tokens} tokens"
    paired_figures = []
    if target.reference:
        from . import paired

        latencies, reference = paired.latency_pairs(target, batches[warmup:], tokens)
        paired_figures = paired.latency_figures(latencies, reference, note, shape)
    else:
        result = target.load(batches[warmup:], concurrency=1)
        _check_tokens(result, tokens)
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


SWEEP = (1, 2, 4, 8, 16, 32, 64)


def _throughput_at(target: Target, batch_size: int, tokens: int, concurrency: int, count: int,
                   inputs: Target | None = None):
    """One full run at ``concurrency``; ``inputs``: whose tokenizer makes the texts (the candidate's, in a pair)."""
    inputs = inputs or target
    batches = _batches(inputs, batch_size, tokens, count + concurrency)
    target.load(batches[:concurrency], concurrency)  # warm-up: one request per connection
    result = target.load(batches[concurrency:], concurrency)
    if inputs.server.spec == target.server.spec:  # a swapped-in model's tokenizer counts its own way
        _check_tokens(result, tokens)
    return result


def embed_throughput(target: Target, *, batch_size: int = 32, tokens: int = 128, concurrency: int = 4,
                     requests: int | None = None, sweep: bool = False, sweep_seconds: float = 60.0,
                     tolerance: str | None = None, paired_tolerance: str | None = None) -> Measured:
    """Tokens/s and requests/s at one concurrency, or the maximum tokens/s found by a concurrency sweep.

    The sweep doubles the concurrency in short probes until two steps in a row gain less than 5%, or
    until ``sweep_seconds`` are spent (a CPU server saturates at once; a GPU one much later). The best
    probe only picks the concurrency: the figure is a full-length run there, because the largest of
    several short, noisy probes is biased upwards and would make every later run look like a regression.
    """
    from .store.timings import Timing, timing_name

    if sweep:
        best, best_at, flat = 0.0, 1, 0
        deadline = time.monotonic() + sweep_seconds
        for level in SWEEP:
            probe = _throughput_at(target, batch_size, tokens, level, max(16, 4 * level)).tokens_per_s
            target.progress(f"embed_throughput: sweep, concurrency {level}: {probe:.0f} tokens/s")
            if probe > best * 1.05:
                best_at, flat = level, 0
            else:
                flat += 1
            best = max(best, probe)
            if flat == 2 or time.monotonic() > deadline:  # two steps without a 5% gain: saturated
                break
        concurrency = best_at
    count = requests or max(8 * concurrency, 48)
    paired_figures = []
    if target.reference:
        from . import paired

        per_window = max(count // paired.THROUGHPUT_WINDOWS, 2 * concurrency)
        windows, reference = paired.throughput_windows(
            target, lambda side: _throughput_at(side, batch_size, tokens, concurrency, per_window, inputs=target))
        result = paired.pooled(windows)
        paired_figures = [paired.throughput_figure(windows, reference, f"concurrency {concurrency}",
                                                   throughput_shape(batch_size, tokens, concurrency, sweep))]
    else:
        result = _throughput_at(target, batch_size, tokens, concurrency, count)
    note = f"concurrency {concurrency}, {result.requests} requests"
    shape = throughput_shape(batch_size, tokens, concurrency, sweep)
    timing = Timing(timing_name("throughput", batch_size, tokens, concurrency), result.latencies,
                    {"batch_size": batch_size, "tokens": tokens, "concurrency": concurrency},
                    extra={"tokens_per_s": result.tokens_per_s, "requests_per_s": result.requests_per_s})
    if sweep:
        figures = [Measurement("max_throughput_tokens_per_s", result.tokens_per_s, None,
                               f"{note}; the sweep saturated by concurrency {concurrency}", shape)]
    else:
        figures = [Measurement("throughput_tokens_per_s", result.tokens_per_s, None, note, shape),
                   Measurement("throughput_requests_per_s", result.requests_per_s, None, note, shape)]
    return Measured(figures + paired_figures, timings=[timing])


def throughput_shape(batch_size: int, tokens: int, concurrency: int, sweep: bool) -> str:
    """A sweep's figure is the best concurrency's, whichever it was: its shape names the sweep instead."""
    return f"batch {batch_size} x {tokens} tokens, " + ("sweep" if sweep else f"concurrency {concurrency}")


def embed_memory(target: Target, *, batch_size: int = 32, tokens: int = 128, requests: int = 16,
                 tolerance: str | None = None, paired_tolerance: str | None = None) -> Measured:
    """Memory of the server's process tree after load, and (on a GPU) the peak under load."""
    shape = f"after {requests} batches of {batch_size} x {tokens} tokens"
    figures = _memory(target, _batches(target, batch_size, tokens, requests), shape, "server")
    if target.reference:
        from . import paired

        if target.reference.server.process is None:  # judged as missing: the candidate's figures stand
            figures.append(Measurement("paired_memory_ratio", math.nan, None, None, shape, missing=(
                "the reference's memory cannot be measured: --embed-reference-url points at a server this run "
                "did not start")))
        else:
            figures.append(paired.memory_figure(figures[0], _memory(target.reference, _batches(
                target, batch_size, tokens, requests), shape, "the reference server's")[0]))
    return Measured(figures)


def _memory(target: Target, batches: list[list[str]], shape: str, whose: str) -> list[Measurement]:
    from .measure.memory import PeakSampler, tree_pss_bytes

    server = target.server
    if server.process is None:
        raise NotMeasurable(f"{whose} memory cannot be measured: --embed-url points at a server this run did not "
                            "start")
    if server.device == "cpu":
        target.load(batches, concurrency=4)
        return [Measurement("host_memory_bytes", tree_pss_bytes(server.process.pid), None,
                            "PSS of the server's process tree after load", shape)]
    from .measure.gpu import tree_gpu_memory

    gpus = list(server.gpus) if server.gpus is not None else None

    def sample():
        reading = tree_gpu_memory(server.process.pid, server.gpu_memory_before, gpus)
        return reading.bytes if reading else 0

    with PeakSampler(sample, interval=0.2) as sampler:
        target.load(batches, concurrency=4)
    after = tree_gpu_memory(server.process.pid, server.gpu_memory_before, gpus)
    if after is None:
        raise NotMeasurable("no GPU memory to measure: NVML is not available")
    note = f"{after.note()}; {server.memory_settings()}"
    return [Measurement("gpu_memory_bytes", after.bytes, None, note, shape),
            Measurement("gpu_memory_peak_bytes", max(sampler.peak, after.bytes), None, note, shape)]


# Presets whose average is a headline figure of their own.
_AVERAGES = {"cmteb": "cmteb_avg", "cmteb-sts": "cmteb_sts_avg"}


def embed_accuracy(target: Target, *, task: str = "embedeval", dimensions: int | None = None,
                   batch_size: int = 32, concurrency: int = 4, tolerance: float | None = None) -> Measured:
    """mteb main scores (0-100) of a task, a preset (embedeval, cmteb-sts, cmteb) or a path to your data.

    Each score carries its 95% interval from a bootstrap over the task's items (pairs, queries), so a
    change counts only when it is beyond the tolerance and beyond what that many items can tell.
    """
    scores = _scores(target, task, dimensions, batch_size, concurrency)
    shape = f"{dimensions} dimensions" if dimensions else None  # the task is in the metric's name
    figures = []
    for score in scores:
        note = f"{task}; {score.items} {score.item_unit}" if score.items else task
        if score.too_small_for_one_point:  # the judge calls a too-wide interval inconclusive; this says why
            note += "; too few items to tell a 1-point change"
        figures.append(Measurement(score.metric, score.value, score.interval, note, shape, items=score.groups))
    if task in _AVERAGES and scores:
        average = sum(score.value for score in scores) / len(scores)
        figures.append(Measurement(_AVERAGES[task], average, None, f"average of {len(scores)} tasks", shape))
    if target.reference:
        from .accuracy.paired import paired_difference_interval

        reference = _scores(target.reference, task, dimensions, batch_size, concurrency, ", reference")
        for mine, theirs in zip(scores, reference):
            interval = paired_difference_interval(mine.groups, theirs.groups)
            figures.append(Measurement(
                f"paired:{mine.metric}", mine.value - theirs.value,
                None if interval is None else (100 * interval[0], 100 * interval[1]),
                f"{task}; the same {mine.items or ''} {mine.item_unit or 'items'} on both servers, "
                "resampled together", shape, pair=(theirs.value, mine.value)))
    return Measured(figures)


def _scores(target: Target, task: str, dimensions, batch_size: int, concurrency: int, role: str = "") -> list:
    from . import accuracy

    try:
        tasks = accuracy.resolve_target(task)  # fresh task objects: a run mutates them
        encoder = accuracy.ServerEncoder(target.client, target.server.spec, dimensions=dimensions,
                                         batch_size=batch_size, concurrency=concurrency)
        return accuracy.evaluate(encoder, tasks, progress=lambda name, index, total: target.progress(
            f"embed_accuracy: task {index}/{total} {name} ({target.server.spec.alias}{role})"),
            results_dir=target.mteb_results)
    except (accuracy.UnknownTarget, accuracy.DatasetNotCached, accuracy.TaskDataError) as exc:
        raise MeasurementError(str(exc)) from None


def embed_drift(target: Target, *, tolerance: float | None = None, paired_tolerance: float | None = None) -> Measured:
    """Probe-set vectors against those stored with the baselines, and alone vs inside a batch.

    Tolerances are cosine distances from the recorded figure (1.0 when recorded on the same server); the
    defaults, for float32 and for half precision, are the metrics' own (``metrics.py``).
    """
    import numpy as np

    from . import drift
    from .vectors import ShapeMismatch, is_half_precision, row_cosines

    texts = list(drift.PROBES)
    # One request per text, in order: a server that reuses cached prefix states shows it here.
    alone = np.asarray([target.client.embed([text])[0] for text in texts])
    batched = target.client.embed(texts)
    half = is_half_precision(target.server.dtype)
    norms = np.linalg.norm(alone, axis=1)
    figures = [Measurement("dimensions", alone.shape[1], None, "probe set"),
               Measurement("l2_norm_mean", float(norms.mean()), None,
                           f"probe set, norms {norms.min():.4f}..{norms.max():.4f}")]
    invariance = row_cosines(alone, batched, "batched", "alone")
    figures.append(Measurement("batch_invariance_min_cosine", float(invariance.min()), None,
                               "the same text alone and inside a batch; " + drift.worst(texts, invariance)))
    if target.reference:
        from . import paired

        figures.append(paired.drift_figure(target, texts, alone))
    stored = target.stored_vectors()
    if target.update:
        stored = stored or (texts, alone)  # the first recording compares with itself
    if stored is None:  # every other figure is judged all the same; this one has no baseline
        figures.append(Measurement("drift_min_cosine", math.nan, missing=(
            f"no stored probe vectors for {target.server.spec.alias}: run once with --embed-update-baselines "
            "to record them")))
        return Measured(figures)
    stored_texts, stored_vectors = stored
    if stored_texts != texts:
        raise MeasurementError("the stored probe texts differ from this version's: re-record them with "
                               "--embed-update-baselines")
    try:
        cosines = row_cosines(alone, stored_vectors, "served", "stored")
    except ShapeMismatch as exc:
        raise MeasurementError(f"drift: {exc}. If the new size is intended, re-record the probe vectors with "
                               "--embed-update-baselines") from None
    figures.append(Measurement("drift_min_cosine", float(cosines.min()), None,
                               f"{'half' if half else 'float32'} server vs stored vectors; "
                               + drift.worst(texts, cosines)))
    return Measured(figures, vectors=(texts, alone))


MARKERS = {f.__name__: f for f in (embed_latency, embed_throughput, embed_memory, embed_accuracy, embed_drift)}
# Timed figures move with the machine's moment: the session measures a regressed one a second time.
TIMED = ("embed_latency", "embed_throughput")


def arguments(name: str, args: tuple, kwargs: dict) -> dict:
    """A marker's arguments by name, checked against its function (TypeError naming the accepted ones)."""
    bound = dict(bind(name, args, kwargs).arguments)
    bound.pop("target")
    return bound


def bind(name: str, args: tuple, kwargs: dict) -> inspect.BoundArguments:
    """Check a marker's arguments against its function; a misspelling names the accepted ones."""
    function = MARKERS[name]
    signature = inspect.signature(function)
    accepted = [p for p in signature.parameters if p != "target"]
    try:
        return signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"@pytest.mark.{name}: {exc}; accepted arguments: {', '.join(accepted)}") from None


def help_line(name: str) -> str:
    function = MARKERS[name]
    params = [f"{n}={p.default!r}" for n, p in inspect.signature(function).parameters.items() if n != "target"]
    return f"{name}({', '.join(params)}): {inspect.getdoc(function).splitlines()[0]}"
