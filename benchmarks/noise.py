"""Noise and sensitivity of the latency verdict: false regressions on clean runs, detection of a planted 30%.

One minilm server on the CPU. A reference run of `markers.embed_latency` (batch 1, 128 tokens, the marker's
defaults: 20 warm-up + 200 measured requests) gives the baseline p50. Then:

  clean:   --clean back-to-back runs against the server; each p50 is judged with the plugin's own
           `verdicts.compare(metric("latency_p50_ms"), p50, baseline, interval=ci)` (tolerance 15%, the
           metric's default; a regression only when the whole 95% CI lies above baseline + 15%).
           Goal: 0 false regressions.
  control: --control runs through the proxy below with no delay: what the proxy itself costs.
  slow:    --slow runs through a delaying reverse proxy that waits 0.3 x the baseline p50 before forwarding
           each request (a 30% slowdown of the median). Goal: every one flagged REGRESSED.

The proxy is an honest HTTP reverse proxy (aiohttp server on a new 127.0.0.1 port, one pooled aiohttp client to
the server, hop-by-hop headers dropped, status/body/content type passed back) in its own thread and loop.

    python benchmarks/noise.py [--clean 10] [--slow 5] [--control 1] [--slowdown 0.3] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from pytest_embedeval import markers
from pytest_embedeval.engines.sglang import SGLangServer, free_port
from pytest_embedeval.metrics import metric
from pytest_embedeval.registry import ModelSpec, Registry
from pytest_embedeval.verdicts import Outcome, compare

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length"}


@dataclass
class ProxiedServer:
    """What `markers.Target` needs of a server: its URL and its model spec."""

    url: str
    spec: ModelSpec


class DelayingProxy:
    """Reverse proxy 127.0.0.1:<port> -> upstream; sleeps `delay` seconds per request before forwarding."""

    def __init__(self, upstream: str, delay: float = 0.0):
        self.upstream, self.delay = upstream.rstrip("/"), delay
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="delaying-proxy", daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(request.method, self.upstream + str(request.rel_url), data=body,
                                         headers=headers) as upstream:
            data = await upstream.read()
            passed = {k: v for k, v in upstream.headers.items()
                      if k.lower() not in HOP_BY_HOP and k.lower() != "content-encoding"}
            return web.Response(status=upstream.status, body=data, headers=passed)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def setup():
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300),
                                                  connector=aiohttp.TCPConnector(limit=64))
            app = web.Application(client_max_size=64 * 1024 ** 2)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        self._loop.run_until_complete(setup())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> "DelayingProxy":
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc) -> None:
        async def teardown():
            await self._runner.cleanup()
            await self._session.close()

        asyncio.run_coroutine_threadsafe(teardown(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


def measure(target: markers.Target, requests: int) -> tuple[float, tuple[float, float]]:
    found = {m.metric: m for m in markers.embed_latency(target, batch_size=1, tokens=128, requests=requests)}
    return found["latency_p50_ms"].value, found["latency_p50_ms"].interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=int, default=10)
    parser.add_argument("--slow", type=int, default=5)
    parser.add_argument("--control", type=int, default=1, help="runs through the proxy with no delay")
    parser.add_argument("--slowdown", type=float, default=0.3, help="planted delay, as a fraction of the baseline p50")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per run (marker default 200)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="embedeval-noise-"))
    spec = Registry().resolve("minilm")
    server = SGLangServer(spec, device="cpu", log_path=workdir / "server.log")
    p50_metric = metric("latency_p50_ms")
    rows = []
    server.start()
    try:
        print(f"server {server.url} booted in {server.boot_seconds:.1f} s; log {server.log_path}", flush=True)
        direct = markers.Target(server, spec.alias)
        started = time.monotonic()
        baseline, baseline_ci = measure(direct, args.requests)
        print(f"reference run: p50 {baseline:.2f} ms (95% CI {baseline_ci[0]:.2f}..{baseline_ci[1]:.2f}, "
              f"load {os.getloadavg()[0]:.2f}) "
              f"-> baseline; tolerance {p50_metric.tolerance} ({time.monotonic() - started:.0f} s per run)", flush=True)

        def judge(kind: str, index: int, p50: float, ci) -> None:
            verdict = compare(p50_metric, p50, baseline, interval=ci, model=spec.alias)
            load = os.getloadavg()[0]
            rows.append((kind, index, p50, ci, verdict.outcome, load))
            print(f"{kind:8} {index:3d}  p50 {p50:8.2f} ms  CI {ci[0]:8.2f}..{ci[1]:8.2f}  "
                  f"{(p50 / baseline - 1) * 100:+6.1f}%  {verdict.outcome.value}  (load {load:.2f})", flush=True)

        for i in range(args.clean):
            judge("clean", i + 1, *measure(direct, args.requests))
        delay = args.slowdown * baseline / 1000
        with DelayingProxy(server.url, delay=0.0) as proxy:
            proxied = markers.Target(ProxiedServer(proxy.url, spec), spec.alias)
            for i in range(args.control):
                judge("control", i + 1, *measure(proxied, args.requests))
            proxy.delay = delay
            print(f"proxy {proxy.url} -> {server.url} now delays each request {delay * 1000:.2f} ms "
                  f"({args.slowdown:.0%} of the baseline p50)", flush=True)
            for i in range(args.slow):
                judge("slow", i + 1, *measure(proxied, args.requests))
    finally:
        server.stop()

    clean = [r for r in rows if r[0] == "clean"]
    slow = [r for r in rows if r[0] == "slow"]
    false_regressions = sum(r[4] is Outcome.REGRESSED for r in clean)
    flagged = sum(r[4] is Outcome.REGRESSED for r in slow)
    print()
    print(f"minilm on CPU, embed_latency batch 1 x 128 tokens, {args.requests} requests per run; baseline p50 "
          f"{baseline:.2f} ms from a reference run; verdicts.compare with tolerance {p50_metric.tolerance} and "
          "the run's 95% bootstrap CI")
    print(f"{'run':12}{'p50 ms':>10}{'95% CI ms':>22}{'vs baseline':>13}  {'verdict':10}  load (1 min, 2 cores)")
    for kind, index, p50, ci, outcome, load in rows:
        print(f"{kind + ' ' + str(index):12}{p50:10.2f}{f'{ci[0]:.2f}..{ci[1]:.2f}':>22}"
              f"{(p50 / baseline - 1) * 100:+12.1f}%  {outcome.value:10}  {load:.2f}")
    spread = [r[2] for r in clean]
    if spread:
        print(f"clean runs: p50 from {min(spread):.2f} to {max(spread):.2f} ms "
              f"({(min(spread) / baseline - 1) * 100:+.1f}% .. {(max(spread) / baseline - 1) * 100:+.1f}% of baseline)")
    print(f"false regressions on clean runs: {false_regressions}/{len(clean)} "
          f"(goal 0: {'met' if false_regressions == 0 else 'NOT met'})")
    print(f"planted {args.slowdown:.0%} slowdown flagged REGRESSED: {flagged}/{len(slow)} "
          f"(goal {len(slow)}/{len(slow)}: {'met' if flagged == len(slow) else 'NOT met'})")


if __name__ == "__main__":
    main()
