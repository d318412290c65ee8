"""The load generator: requests of a fixed shape, a fixed number in flight, every one timed.

One asyncio loop and one pooled aiohttp session, so the generator is never the bottleneck: no thread
per request, no connection per request. aiohttp rather than httpx because the client shares the
machine with the server it measures: httpx spent ~3 ms of CPU per request here, aiohttp ~1 ms
(benchmarks/overhead.py), and on a 2-core runner that difference is taken from the server.
Requests are never retried: a retry would hide a failure and distort the latency it measured.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
import orjson
from pytest_benchmark.timers import default_timer

from ..engines import auth_headers


@dataclass
class LoadResult:
    concurrency: int
    batch_size: int
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    prompt_tokens: int = 0  # as the server's usage reports them
    failures: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, for the report
    wall_seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def tokens_per_s(self) -> float:
        return self.prompt_tokens / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.wall_seconds if self.wall_seconds else 0.0

    def failure_text(self) -> str:
        total = self.requests + self.failures
        return f"{self.failures} of {total} requests failed; first errors: {'; '.join(self.errors[:3])}"


async def _drive(url: str, model: str, batches: list[list[str]], concurrency: int, api_key: str | None,
                 timeout: float, extra: dict) -> LoadResult:
    result = LoadResult(concurrency=concurrency, batch_size=len(batches[0]) if batches else 0)
    headers = {"Content-Type": "application/json", **auth_headers(api_key)}
    # Bodies are encoded before the clock starts: the timer holds the request, not our JSON encoder.
    bodies = [orjson.dumps({"model": model, "input": batch, **extra}) for batch in batches]
    next_index = iter(range(len(batches)))
    endpoint = f"{url}/v1/embeddings"

    async def worker(session: aiohttp.ClientSession) -> None:
        for index in next_index:
            started = default_timer()
            try:
                async with session.post(endpoint, data=bodies[index]) as response:
                    payload = await response.read()
                elapsed = default_timer() - started
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}: {payload[:200].decode(errors='replace')}")
                body = orjson.loads(payload)
                if len(body.get("data", ())) != len(batches[index]):
                    raise ValueError(f"{len(body.get('data', ()))} vectors for {len(batches[index])} inputs")
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                result.failures += 1
                if len(result.errors) < 5:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            result.latencies.append(elapsed)
            result.prompt_tokens += int(body.get("usage", {}).get("prompt_tokens", 0))

    connector = aiohttp.TCPConnector(limit=concurrency)
    session_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(headers=headers, timeout=session_timeout, connector=connector) as session:
        started = default_timer()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        result.wall_seconds = default_timer() - started
    return result


def run_load(url: str, model: str, batches: list[list[str]], *, concurrency: int = 1, api_key: str | None = None,
             timeout: float = 120.0, **extra) -> LoadResult:
    """Send every batch once, ``concurrency`` at a time; ``extra`` goes into each request body."""
    return asyncio.run(_drive(url.rstrip("/"), model, batches, concurrency, api_key, timeout, extra))
