"""The markers: each one is a plain function from its arguments and a server to measurements.

    @pytest.mark.embed_latency(batch_size=1, tokens=128)
    def test_latency(): ...

The plugin calls the function after the test body, compares every measurement with its baseline
(``verdicts.compare``) and fails the test on a regression. The functions know nothing of pytest.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from .measure import stats
from .measure.inputs import texts_of_tokens
from .measure.load import LoadResult, run_load
from .measure.memory import PeakSampler, tree_pss_bytes
from .timings import Timing, timing_name


class MeasurementError(RuntimeError):
    """The measurement itself failed (requests failed, tokens miscounted): there is no figure to judge."""


class NotMeasurable(RuntimeError):
    """This server cannot give this figure (for example memory behind --embed-url): skip, with the reason."""


@dataclass(frozen=True)
class Measurement:
    metric: str
    value: float
    interval: tuple[float, float] | None = None
    note: str | None = None
    tolerance: str | float | None = None  # this figure's own default, when it depends on the server
    # Interval of measured / baseline-run ratio, from both runs' samples (when the baseline run's are stored).
    ratio_interval: tuple[float, float] | None = None
    sampled_baseline: float | None = None  # the baseline run's own figure, from its samples


@dataclass
class Target:
    """What a marker measures: the server's URL, the model it serves, and the server object itself."""

    server: object  # SGLangServer or RemoteServer
    model: str
    api_key: str | None = field(default=None, repr=False)  # a repr reaches tracebacks (a failing test's arguments)
    progress: Callable[[str], None] = print
    vectors: object = None  # drift.VectorStore of the baseline directory
    samples: object = None  # timings.TimingStore of the baseline directory
    profile: str = ""  # the baseline profile name of this hardware
    update: bool = False  # --embed-update-baselines: store what is measured
    captured: dict = field(default_factory=dict)  # probe vectors for an update to store, if it passes
    timings: list = field(default_factory=list)  # timings.Timing of every request measured
    timeout: float = 120.0  # seconds for one request (--embed-request-timeout)

    @property
    def url(self) -> str:
        return self.server.url

    @cached_property
    def client(self):
        from .client import EmbeddingClient

        return EmbeddingClient(self.url, self.model, api_key=self.api_key, timeout=self.timeout)

    def texts(self, tokens: int, count: int) -> list[str]:
        local = self.server.spec.local_dir()
        if local is None:
            raise MeasurementError(f"the tokenizer of {self.server.spec.model!r} is not on this machine")
        return texts_of_tokens(local, tokens, count)

    def baseline_samples(self, name: str) -> list[float] | None:
        """The per-request samples of the run that wrote this hardware's baselines, if stored."""
        if self.samples is None:
            return None
        try:
            return self.samples.load(self.server.spec.alias, self.profile).get(name)
        except ValueError as exc:  # a broken file: name it, rather than judge without it
            raise MeasurementError(str(exc)) from None

    def load(self, batches: list[list[str]], concurrency: int) -> LoadResult:
        result = run_load(self.url, self.model, batches, concurrency=concurrency, api_key=self.api_key,
                          timeout=self.timeout)
        if result.failures:
            # A figure built on failed requests would be a lie: no verdict at all.
            raise MeasurementError(result.failure_text())
        return result


def _batches(target: Target, batch_size: int, tokens: int, count: int) -> list[list[str]]:
    texts = target.texts(tokens, batch_size * count)
    return [texts[i * batch_size:(i + 1) * batch_size] for i in range(count)]


def _check_tokens(result: LoadResult, tokens: int) -> None:
    expected = tokens * result.batch_size * result.requests
    if result.prompt_tokens != expected:
        raise MeasurementError(
            f"the server counted {result.prompt_tokens} prompt tokens where the model's tokenizer counts "
            f"{expected} ({result.requests} requests x {result.batch_size} inputs x {tokens} tokens): "
            "server and tokenizer disagree, so per-token figures would be wrong"
        )


def embed_latency(target: Target, *, batch_size: int = 1, tokens: int = 128, requests: int = 200,
                  warmup: int = 20, tolerance: str | None = None) -> list[Measurement]:
    """Request latency, one request in flight: p50, p90, p99 and mean, each with a 95% bootstrap interval.

    When the baseline run's samples are stored, each figure's interval is that of the ratio of
    this run to the baseline run, both resampled: the verdict then weighs both runs' noise.
    """
    batches = _batches(target, batch_size, tokens, warmup + requests)
    target.load(batches[:warmup], concurrency=1)
    result = target.load(batches[warmup:], concurrency=1)
    _check_tokens(result, tokens)
    name = timing_name("latency", batch_size, tokens)
    target.timings.append(Timing(name, result.latencies, {"batch_size": batch_size, "tokens": tokens,
                                                          "concurrency": 1}))
    baseline = target.baseline_samples(name)
    summary = stats.latency_summary(result.latencies)
    ms = [s * 1000 for s in result.latencies]
    note = f"batch {batch_size}, {tokens} tokens, {result.requests} requests after {warmup} warm-up"

    def figure(metric_name: str, statistic) -> Measurement:
        ratio = stats.ratio_interval(result.latencies, baseline, statistic) if baseline else None
        sampled = float(statistic(baseline)) * 1000 if baseline else None
        return Measurement(metric_name, summary[metric_name], stats.interval(ms, statistic), note,
                           ratio_interval=ratio, sampled_baseline=sampled)

    return [figure(f"latency_p{q}_ms", stats.percentile(q)) for q in (50, 90, 99)] + [
        figure("latency_mean_ms", np.mean)]


SWEEP = (1, 2, 4, 8, 16, 32, 64)


def _throughput_at(target: Target, batch_size: int, tokens: int, concurrency: int, count: int) -> LoadResult:
    batches = _batches(target, batch_size, tokens, count + concurrency)
    target.load(batches[:concurrency], concurrency)  # warm-up: one request per connection
    result = target.load(batches[concurrency:], concurrency)
    _check_tokens(result, tokens)
    return result


def embed_throughput(target: Target, *, batch_size: int = 32, tokens: int = 128, concurrency: int = 4,
                     requests: int | None = None, sweep: bool = False, sweep_seconds: float = 60.0,
                     tolerance: str | None = None) -> list[Measurement]:
    """Tokens/s and requests/s at one concurrency, or the maximum tokens/s found by a concurrency sweep.

    The sweep doubles the concurrency in short probes until two steps in a row gain less than 5%, or
    until ``sweep_seconds`` are spent (a CPU server saturates at once; a GPU one much later). The best
    probe only picks the concurrency: the figure is a full-length run there, because the largest of
    several short, noisy probes is biased upwards and would make every later run look like a regression.
    """
    if sweep:
        best, best_at, flat = 0.0, 1, 0
        deadline = time.monotonic() + sweep_seconds
        for level in SWEEP:
            probe = _throughput_at(target, batch_size, tokens, level, max(16, 4 * level)).tokens_per_s
            if probe > best * 1.05:
                best_at, flat = level, 0
            else:
                flat += 1
            best = max(best, probe)
            if flat == 2 or time.monotonic() > deadline:  # two steps without a 5% gain: saturated
                break
        concurrency = best_at
    count = requests or max(8 * concurrency, 48)
    result = _throughput_at(target, batch_size, tokens, concurrency, count)
    note = f"batch {batch_size}, {tokens} tokens, concurrency {concurrency}, {result.requests} requests"
    target.timings.append(Timing(
        timing_name("throughput", batch_size, tokens, concurrency), result.latencies,
        {"batch_size": batch_size, "tokens": tokens, "concurrency": concurrency},
        extra={"tokens_per_s": result.tokens_per_s, "requests_per_s": result.requests_per_s}))
    if sweep:
        return [Measurement("max_throughput_tokens_per_s", result.tokens_per_s, None,
                            f"{note}; the sweep saturated by concurrency {concurrency}")]
    return [Measurement("throughput_tokens_per_s", result.tokens_per_s, None, note),
            Measurement("throughput_requests_per_s", result.requests_per_s, None, note)]


def embed_memory(target: Target, *, batch_size: int = 32, tokens: int = 128, requests: int = 16,
                 tolerance: str | None = None) -> list[Measurement]:
    """Memory of the server's process tree after load, and (on a GPU) the peak under load."""
    server = target.server
    if server.process is None:
        raise NotMeasurable("server memory cannot be measured: --embed-url points at a server this run did not start")
    batches = _batches(target, batch_size, tokens, requests)
    if server.device == "cpu":
        target.load(batches, concurrency=4)
        return [Measurement("host_memory_bytes", tree_pss_bytes(server.process.pid), None,
                            "PSS of the server's process tree after load")]
    from .measure.gpu import tree_gpu_memory

    def sample():
        reading = tree_gpu_memory(server.process.pid, server.gpu_memory_before,
                                  list(server.gpus) if server.gpus is not None else None)
        return reading.bytes if reading else 0

    with PeakSampler(sample, interval=0.2) as sampler:
        target.load(batches, concurrency=4)
    after = tree_gpu_memory(server.process.pid, server.gpu_memory_before,
                            list(server.gpus) if server.gpus is not None else None)
    if after is None:
        raise NotMeasurable("no GPU memory to measure: NVML is not available")
    settings = server.memory_settings()
    note = f"{after.note()}; {settings}"
    return [Measurement("gpu_memory_bytes", after.bytes, None, note),
            Measurement("gpu_memory_peak_bytes", max(sampler.peak, after.bytes), None, note)]


# Presets whose average is a headline figure of their own.
_AVERAGES = {"cmteb": "cmteb_avg", "cmteb-sts": "cmteb_sts_avg"}


def embed_accuracy(target: Target, *, task: str = "embedeval", dimensions: int | None = None,
                   batch_size: int = 32, concurrency: int = 4, tolerance: float | None = None) -> list[Measurement]:
    """mteb main scores (0-100) of a task, a preset (embedeval, cmteb-sts, cmteb) or a path to your data."""
    from . import accuracy  # mteb takes seconds to import: only for tests that ask for a score

    try:
        tasks = accuracy.resolve_target(task)
        encoder = accuracy.ServerEncoder(target.client, target.server.spec, dimensions=dimensions,
                                         batch_size=batch_size, concurrency=concurrency)
        scores = accuracy.evaluate(encoder, tasks, progress=lambda name, index, total: target.progress(
            f"embed_accuracy: task {index}/{total} {name} ({target.server.spec.alias})"))
    except (accuracy.UnknownTarget, accuracy.DatasetNotCached, accuracy.TaskDataError) as exc:
        raise MeasurementError(str(exc)) from None
    note = f"{task}" + (f", {dimensions} dimensions" if dimensions else "")
    measurements = [Measurement(score.metric, score.value, None, note) for score in scores]
    if task in _AVERAGES and scores:
        average = sum(score.value for score in scores) / len(scores)
        measurements.append(Measurement(_AVERAGES[task], average, None, f"average of {len(scores)} tasks"))
    return measurements


def embed_drift(target: Target, *, tolerance: float | None = None) -> list[Measurement]:
    """Probe-set vectors against those stored with the baselines, and alone vs inside a batch.

    Tolerances are cosine distances from the recorded figure (1.0 when recorded on the same server):
    0.001 for a float32 server, 0.01 for half precision, which rounds every layer.
    """
    from . import drift

    texts = list(drift.PROBES)
    # One request per text, in order: a server that reuses cached prefix states shows it here.
    alone = [target.client.embed([text])[0] for text in texts]
    alone = np.asarray(alone)
    batched = target.client.embed(texts)
    spec = target.server.spec
    half = target.server.dtype not in ("float32", "float", "fp32")
    norms = np.linalg.norm(alone, axis=1)
    measurements = [Measurement("dimensions", alone.shape[1], None, "probe set"),
                    Measurement("l2_norm_mean", float(norms.mean()), None,
                                f"probe set, norms {norms.min():.4f}..{norms.max():.4f}")]
    invariance = drift.row_cosines(alone, batched)
    measurements.append(Measurement("batch_invariance_min_cosine", float(invariance.min()), None,
                                    "the same text alone and inside a batch; " + drift.worst(texts, invariance),
                                    tolerance if tolerance is not None else 0.001 if half else 0.0001))
    stored = target.vectors.load(spec.alias, target.profile) if target.vectors else None
    if target.update:
        target.captured[spec.alias] = (texts, alone)
        stored = stored or (texts, alone)  # the first recording compares with itself
    if stored is None:
        raise NotMeasurable(f"no stored probe vectors for {spec.alias} on {target.profile}: "
                            "run once with --embed-update-baselines to record them")
    stored_texts, stored_vectors = stored
    if stored_texts != texts:
        raise MeasurementError("the stored probe texts differ from this version's: re-record them with "
                               "--embed-update-baselines")
    cosines = drift.row_cosines(alone, stored_vectors)
    measurements.append(Measurement("drift_min_cosine", float(cosines.min()), None,
                                    f"{'half' if half else 'float32'} server vs stored vectors; "
                                    + drift.worst(texts, cosines),
                                    tolerance if tolerance is not None else 0.01 if half else 0.001))
    return measurements


MARKERS = {f.__name__: f for f in (embed_latency, embed_throughput, embed_memory, embed_accuracy, embed_drift)}
# Timed figures move with the machine's moment: a regression there is measured a second time before it counts.
CONFIRMED = ("embed_latency", "embed_throughput")


def measure(name: str, target: Target, arguments: dict, judge: Callable[[list[Measurement]], list[str]]):
    """Run marker ``name``; ``judge`` names the metrics that regressed against the baselines.

    One window of a shared runner can be slow for reasons that are not the server's. For the timed
    markers a regression counts only when a second, independent window shows it too: a noisy minute
    then fails a test only if it happens twice in a row, a slower server fails it every time.
    """
    measurements = MARKERS[name](target, **arguments)
    regressed = judge(measurements) if name in CONFIRMED else []
    if not regressed:
        return measurements
    target.progress(f"@pytest.mark.{name}: {', '.join(regressed)} regressed; measuring again to tell a "
                    "slower server from a noisy minute")
    first = {m.metric: m.value for m in measurements}
    target.timings.clear()  # only the deciding run's samples are kept
    return [replace(m, note=f"{m.note}; second run, the first regressed ({first[m.metric]:.4g})")
            if m.metric in regressed else m for m in MARKERS[name](target, **arguments)]


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
