"""What a marker measures (``Target``: a server, its counted client, in a pair its incumbent) and what it
gives back (``Measured``: figures, timings, probe vectors), with the two ways a measurement can fail."""

from __future__ import annotations

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
    pair: tuple[float, float] | None = None  # a paired figure: the incumbent's and the candidate's own values
    items: tuple = field(default=(), compare=False, repr=False)  # an accuracy figure's per-item values
    missing: str | None = None  # no value: a stored input it needs is not there (the judge says "no baseline")
    subject: str | None = None  # what within the server it is about, when not all of it: "worker 2 of 2 (URL)"


@dataclass
class Measured:
    """What one marker measured: the figures, and what an update stores beside them."""

    measurements: list[Measurement]
    timings: list = field(default_factory=list)  # measure.timing.Timing of every request measured
    vectors: tuple | None = None  # (probe texts, vectors) for an update to store


@dataclass
class Target:
    """What a marker measures: the server, the run's one counted client, and what is stored to compare with."""

    server: object  # serve.sglang.SGLangServer or serve.remote.RemoteServer
    client: object  # serve.client.EmbeddingClient: every request it sends is counted, retries included
    api_key: str | None = field(default=None, repr=False)  # a repr reaches tracebacks (a failing test's arguments)
    progress: Callable[[str], None] = print
    stored_vectors: Callable[[], tuple | None] = lambda: None  # (texts, vectors) stored with the baselines
    update: bool = False  # --embed-update-baselines: a first recording compares the probe set with itself
    timeout: float = 120.0  # seconds for one request (--embed-request-timeout)
    incumbent: "Target | None" = None  # the server the candidate is paired with, measured in the same minutes
    mteb_results: object = None  # a folder for mteb's own result files of every accuracy task (--embed-mteb-results)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def model(self) -> str:
        return self.client.model

    def texts(self, tokens: int, count: int) -> list[str]:
        from ..inputs import texts_of_tokens

        local = self.server.spec.local_dir()
        if local is None:
            raise MeasurementError(f"the tokenizer of {self.server.spec.model!r} is not on this machine")
        return texts_of_tokens(local, tokens, count)

    def load(self, batches: list[list[str]], concurrency: int, processes: int = 1):
        from ..load import run_load

        result = run_load(self.url, self.model, batches, concurrency=concurrency, api_key=self.api_key,
                          timeout=self.timeout, processes=processes)
        if result.failures:
            # A figure built on failed requests would be a lie: no verdict at all.
            raise MeasurementError(result.failure_text())
        return result

    def sides(self) -> tuple["Target", ...]:
        """The servers a marker measures: the candidate, then its incumbent in a paired run."""
        return (self, self.incumbent) if self.incumbent else (self,)


def batches(target: Target, batch_size: int, tokens: int, count: int) -> list[list[str]]:
    texts = target.texts(tokens, batch_size * count)
    return [texts[i * batch_size:(i + 1) * batch_size] for i in range(count)]


def check_tokens(result, tokens: int) -> None:
    """A server that counts other prompt tokens than the model's tokenizer makes per-token figures wrong."""
    expected = tokens * result.batch_size * result.requests
    if result.prompt_tokens != expected:
        raise MeasurementError(
            f"the server counted {result.prompt_tokens} prompt tokens where the model's tokenizer counts "
            f"{expected} ({result.requests} requests x {result.batch_size} inputs x {tokens} tokens): "
            "server and tokenizer disagree, so per-token figures would be wrong"
        )
