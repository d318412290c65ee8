"""The load generator: requests of a fixed shape, a fixed number in flight, every one timed.

One asyncio loop and one pooled aiohttp session, so the generator is never the bottleneck: no thread
per request, no connection per request. aiohttp rather than httpx because the client shares the
machine with the server it measures: httpx spent ~3 ms of CPU per request here, aiohttp ~1 ms
(benchmarks/overhead.py), and on a 2-core runner that difference is taken from the server.
Requests are never retried: a retry would hide a failure and distort the latency it measured.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
import orjson
from pytest_benchmark.timers import default_timer

from ..facts.server_access import AnswerTooLarge, answer_limit, auth_headers
from ..serve.gateway import ROUTED_HEADER


class MalformedBody(ValueError):
    """An HTTP 200 whose body is not one embedding per input with the server's token count."""


def check_body(payload: bytes, expected: int) -> int:
    """The prompt tokens of a well-formed embeddings answer; MalformedBody with the reason otherwise.

    A request counts as served only if it returned what a client could use: one vector per input, each
    a list of numbers (or base64), and usage.prompt_tokens, which the throughput in tokens/s is built on.
    """
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise MalformedBody(f"body is not JSON: {payload[:80]!r}") from None
    if not isinstance(body, dict):
        raise MalformedBody(f"body is a JSON {type(body).__name__}, not an object with 'data'")
    data = body.get("data")
    if not isinstance(data, list):
        raise MalformedBody(f"no 'data' list in the body (got {type(data).__name__})")
    if len(data) != expected:
        raise MalformedBody(f"{len(data)} vectors for {expected} inputs")
    for position, item in enumerate(data):
        vector = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(vector, str) and vector:
            continue  # base64 float32
        if not isinstance(vector, list) or not vector or None in vector:
            raise MalformedBody(f"item {position} has no vector of numbers (embedding {str(vector)[:40]})")
    usage = body.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if type(tokens) is not int or tokens < 0:
        raise MalformedBody(f"usage.prompt_tokens is {tokens!r}, not a count of tokens "
                            f"(usage: {str(usage)[:60]})")
    return tokens


@dataclass
class LoadResult:
    concurrency: int
    batch_size: int
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    routed: list[str | None] = field(default_factory=list)  # beside each latency: the worker a gateway chose
    prompt_tokens: int = 0  # as the server's usage reports them
    failures: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, for the report
    wall_seconds: float = 0.0
    client_cpu_seconds: float = 0.0  # CPU the load generator itself spent (every client process's)
    processes: int = 1  # client processes that sent the requests

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def tokens_per_s(self) -> float:
        return self.prompt_tokens / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.wall_seconds if self.wall_seconds else 0.0

    def client_text(self) -> str:
        """What the load generator cost: the rate one client process can drive is one core over this."""
        per_request = 1000 * self.client_cpu_seconds / max(self.requests + self.failures, 1)
        busy = self.client_cpu_seconds / self.wall_seconds / self.processes if self.wall_seconds else 0.0
        return (f"client: {self.processes} process{'es' if self.processes > 1 else ''}, {per_request:.2f} ms CPU per "
                f"request, {busy:.0%} of {'each' if self.processes > 1 else 'its'} core")

    def failure_text(self) -> str:
        total = self.requests + self.failures
        return f"{self.failures} of {total} requests failed; first errors: {'; '.join(self.errors[:3])}"


class _Server:
    """One server's pooled session and the result its requests are counted into."""

    def __init__(self, url: str, model: str, api_key: str | None, timeout: float, concurrency: int,
                 batch_size: int):
        self.endpoint, self.model, self.timeout = f"{url}/v1/embeddings", model, timeout
        self.headers = {"Content-Type": "application/json", **auth_headers(api_key)}
        self.result = LoadResult(concurrency=concurrency, batch_size=batch_size)
        self.concurrency = concurrency

    async def __aenter__(self) -> "_Server":
        # total: one deadline for connecting, sending and reading the whole body, however slowly it trickles.
        self.session = aiohttp.ClientSession(headers=self.headers, timeout=aiohttp.ClientTimeout(total=self.timeout),
                                             connector=aiohttp.TCPConnector(limit=self.concurrency))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()

    def body(self, batch: list[str], extra: dict) -> bytes:
        # Bodies are encoded before the clock starts: the timer holds the request, not our JSON encoder.
        return orjson.dumps({"model": self.model, "input": batch, **extra})

    async def send(self, body: bytes, inputs: int) -> str | None:
        """One timed request, counted as a latency or as a failure with its reason; the worker a gateway routed
        it to, where one did."""
        result = self.result
        started = default_timer()
        try:
            async with self.session.post(self.endpoint, data=body) as response:
                payload = await _read_at_most(response, answer_limit(inputs))
            elapsed = default_timer() - started
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}: {payload[:200].decode(errors='replace')}")
            tokens = check_body(payload, inputs)
        except asyncio.TimeoutError:
            result.failures += 1
            if len(result.errors) < 5:
                result.errors.append(f"no complete answer within the {self.timeout:g} s deadline")
            return
        except (aiohttp.ClientError, ValueError) as exc:
            result.failures += 1
            if len(result.errors) < 5:
                result.errors.append(f"{type(exc).__name__}: {exc}")
            return
        result.latencies.append(elapsed)
        result.routed.append(response.headers.get(ROUTED_HEADER))
        result.prompt_tokens += tokens
        return result.routed[-1]


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or AnswerTooLarge as soon as it passes ``limit`` bytes: memory stays bounded."""
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise AnswerTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _drive(url: str, model: str, batches: list[list[str]], concurrency: int, api_key: str | None,
                 timeout: float, extra: dict) -> LoadResult:
    async with _Server(url, model, api_key, timeout, concurrency, len(batches[0]) if batches else 0) as server:
        bodies = [server.body(batch, extra) for batch in batches]
        next_index = iter(range(len(batches)))

        async def worker() -> None:
            for index in next_index:
                await server.send(bodies[index], len(batches[index]))

        started, cpu = default_timer(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        server.result.wall_seconds = default_timer() - started
        server.result.client_cpu_seconds = time.process_time() - cpu
    return server.result


def _drive_in_process(url: str, model: str, batches: list[list[str]], concurrency: int, api_key: str | None,
                      timeout: float, extra: dict, start_at: float) -> tuple[LoadResult, float, float]:
    """One client process's share: starts at the wall-clock ``start_at`` with its peers; (result, start, end)."""
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    result = asyncio.run(_drive(url, model, batches, concurrency, api_key, timeout, extra))
    return result, started, time.time()


def _drive_processes(url: str, model: str, batches: list[list[str]], concurrency: int, processes: int,
                     api_key: str | None, timeout: float, extra: dict) -> LoadResult:
    """The batches split over ``processes`` client processes, the concurrency with them, all started together:
    one asyncio loop is one core, and past that core's rate one process measures itself, not the server."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    shares = [batches[index::processes] for index in range(processes)]
    each = [concurrency // processes + (index < concurrency % processes) for index in range(processes)]
    # spawn, not fork: this process may hold threads (pytest's, the sampler's) that a fork would copy half-way.
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        start_at = time.time() + 3.0  # every process imported and waiting: they start in the same second
        done = [future.result() for future in [
            pool.submit(_drive_in_process, url, model, share, max(1, level), api_key, timeout, extra, start_at)
            for share, level in zip(shares, each) if share]]
    results = [result for result, _, _ in done]
    merged = LoadResult(concurrency=concurrency, batch_size=len(batches[0]) if batches else 0, processes=processes)
    for result in results:
        merged.latencies += result.latencies
        merged.routed += result.routed
        merged.prompt_tokens += result.prompt_tokens
        merged.failures += result.failures
        merged.errors += result.errors[:5 - len(merged.errors)]
        merged.client_cpu_seconds += result.client_cpu_seconds
    merged.wall_seconds = max(end for _, _, end in done) - min(start for _, start, _ in done)
    return merged


async def _drive_alternating(first: tuple, second: tuple, batches: list[list[str]], timeout: float,
                             extra: dict) -> tuple[LoadResult, LoadResult]:
    size = len(batches[0]) if batches else 0
    async with _Server(*first, timeout, 1, size) as a, _Server(*second, timeout, 1, size) as b:
        bodies = [(a.body(batch, extra), b.body(batch, extra)) for batch in batches]
        for index, batch in enumerate(batches):
            # A B, B A, A B, ...: neither server is always the one that follows the other.
            order = ((a, bodies[index][0]), (b, bodies[index][1]))
            for server, body in order if index % 2 == 0 else order[::-1]:
                await server.send(body, len(batch))
    return a.result, b.result


async def _drive_through_gateway(gateway: tuple, workers: list[str], batches: list[list[str]], timeout: float,
                                 extra: dict) -> tuple[LoadResult, LoadResult, list]:
    size = len(batches[0]) if batches else 0
    async with _Server(*gateway, timeout, 1, size) as routed, _Server(*gateway, timeout, 1, size) as direct:
        # The direct session sends the routed request's twin to the worker the gateway chose, by its own URL.
        endpoints = {worker.rstrip("/"): f"{worker.rstrip('/')}/v1/embeddings" for worker in workers}
        pairs = []
        for batch in batches:
            body = routed.body(batch, extra)
            worker = (await routed.send(body, len(batch)) or "").rstrip("/")
            if worker not in endpoints:
                continue  # failed, or went to a worker the gateway did not list: no twin to compare with
            direct.endpoint, before = endpoints[worker], len(direct.result.latencies)
            await direct.send(body, len(batch))
            if len(direct.result.latencies) > before:
                pairs.append((worker, routed.result.latencies[-1], direct.result.latencies[-1]))
    return routed.result, direct.result, pairs


def run_through_gateway(gateway: tuple, workers: list[str], batches: list[list[str]], *, timeout: float = 120.0,
                        **extra) -> tuple[LoadResult, LoadResult, list]:
    """Each batch through the gateway ((url, model, api_key)), then at once the same batch straight to the worker
    it was routed to. One request in flight: a pair shares its moment, and what differs is the gateway's own time.
    Returns (routed, direct, pairs): pairs are (worker URL, routed seconds, direct seconds)."""
    gateway = (gateway[0].rstrip("/"), *gateway[1:])
    return asyncio.run(_drive_through_gateway(gateway, workers, batches, timeout, extra))


def run_load(url: str, model: str, batches: list[list[str]], *, concurrency: int = 1, api_key: str | None = None,
             timeout: float = 120.0, processes: int = 1, **extra) -> LoadResult:
    """Send every batch once, ``concurrency`` at a time, from ``processes`` client processes; ``extra`` goes into
    each request body."""
    if processes > 1:
        return _drive_processes(url.rstrip("/"), model, batches, concurrency, processes, api_key, timeout, extra)
    return asyncio.run(_drive(url.rstrip("/"), model, batches, concurrency, api_key, timeout, extra))


def run_alternating(first: tuple, second: tuple, batches: list[list[str]], *, timeout: float = 120.0,
                    **extra) -> tuple[LoadResult, LoadResult]:
    """Each batch sent to both servers ((url, model, api_key) each), one request in flight, A B B A order.

    Request i of one server and request i of the other are sent back to back, so whatever the machine
    does in that second slows both alike: their latencies are a pair. One loop, one session per server.
    """
    first, second = ((url.rstrip("/"), *rest) for url, *rest in (first, second))
    return asyncio.run(_drive_alternating(first, second, batches, timeout, extra))
