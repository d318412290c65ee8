"""The load generator: requests of a fixed shape, a fixed number in flight, every one timed.

One asyncio loop and one pooled HTTP/1.1 client, so the generator is never the bottleneck: no thread
per request, no connection per request, and the response is parsed only as far as counting needs.
Requests are never retried: a retry would hide a failure and distort the latency it measured.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

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
    headers = auth_headers(api_key)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    next_index = iter(range(len(batches)))

    async def worker(client: httpx.AsyncClient) -> None:
        for index in next_index:
            batch = batches[index]
            started = time.perf_counter()
            try:
                response = await client.post("/v1/embeddings", json={"model": model, "input": batch, **extra})
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}: {response.text[:200]}")
                body = response.json()
                if len(body.get("data", ())) != len(batch):
                    raise ValueError(f"{len(body.get('data', ()))} vectors for {len(batch)} inputs")
            except (httpx.HTTPError, ValueError) as exc:
                result.failures += 1
                if len(result.errors) < 5:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            result.latencies.append(elapsed)
            result.prompt_tokens += int(body.get("usage", {}).get("prompt_tokens", 0))

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        result.wall_seconds = time.perf_counter() - started
    return result


def run_load(url: str, model: str, batches: list[list[str]], *, concurrency: int = 1, api_key: str | None = None,
             timeout: float = 120.0, **extra) -> LoadResult:
    """Send every batch once, ``concurrency`` at a time; ``extra`` goes into each request body."""
    return asyncio.run(_drive(url.rstrip("/"), model, batches, concurrency, api_key, timeout, extra))
