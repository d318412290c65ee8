"""Overhead: CPU that the plugin's own measuring machinery costs, at rest and per request.

One minilm server on the CPU, no requests while the at-rest windows run. Measured in this process with
time.process_time() (user + system time of all its threads; reading /proc/PID/smaps_rollup is system time):

  1. idle:     this process doing nothing for --seconds (the floor: interpreter, imported libraries).
  2. sampler:  `PeakSampler(lambda: tree_pss_bytes(server_pid))` at its defaults (0.5 s, capped at 2% of a core) for --seconds,
               minus the idle floor; also the CPU of one sample and the number of samples.
  3. load generator at rest: for --seconds right after a `run_load` finished (it keeps no thread, loop or
               connection between runs, so this should equal the idle floor), minus the idle floor.
  4. load generator per request: `run_load` at concurrency 1, batch 1, --tokens tokens (the latency marker's
               shape), client CPU per request and its share of one core while it runs; beside it, for
               reference, the same requests from a plain http.client keep-alive loop.

Goal: sampler + load generator < 5% of one core at rest.

    python benchmarks/overhead.py [--seconds 20] [--requests 100] [--tokens 128]
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from pathlib import Path

from pytest_embedeval.serve.sglang import SGLangServer
from pytest_embedeval.measure.load import run_load
from pytest_embedeval.measure.memory import PeakSampler, tree_pss_bytes
from pytest_embedeval.serve.processes import process_tree
from pytest_embedeval.measure.inputs import texts_of_tokens
from pytest_embedeval.facts.registry import Registry


def cpu_over(seconds: float) -> tuple[float, float]:
    """(CPU seconds used by this process, wall seconds) over a window."""
    cpu, wall = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    return time.process_time() - cpu, time.perf_counter() - wall


def plain_client(url: str, model: str, texts: list[str]) -> float:
    """Client CPU seconds per request of a plain keep-alive http.client loop (the leanest reference)."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    cpu = time.process_time()
    for text in texts:
        connection.request("POST", "/v1/embeddings", json.dumps({"model": model, "input": [text]}),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200 or len(json.loads(response.read())["data"]) != 1:
            raise SystemExit(f"plain client: HTTP {response.status}")
    connection.close()
    return (time.process_time() - cpu) / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each at-rest window")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="embedeval-overhead-"))
    spec = Registry().resolve("minilm")
    texts = texts_of_tokens(spec.model, args.tokens, args.requests + 10)  # built before any window
    server = SGLangServer(spec, device="cpu", log_path=workdir / "server.log")
    server.start()
    try:
        pid = server.process.pid
        tree = process_tree(pid)
        print(f"server {server.url} booted in {server.boot_seconds:.1f} s; tree of {len(tree)} processes "
              f"({', '.join(p.name() for p in tree)})", flush=True)
        time.sleep(3)  # let the server settle into --sleep-on-idle

        idle_cpu, idle_wall = cpu_over(args.seconds)
        idle = idle_cpu / idle_wall

        samples = []

        def sample():
            started = time.thread_time()
            value = tree_pss_bytes(pid)
            samples.append(time.thread_time() - started)
            return value

        cpu, wall = time.process_time(), time.perf_counter()
        with PeakSampler(sample) as sampler:
            time.sleep(args.seconds)
        sampler_cpu, sampler_wall = time.process_time() - cpu, time.perf_counter() - wall
        sampler_share = max(sampler_cpu / sampler_wall - idle, 0.0)
        interval = sampler.interval
        per_sample = sum(samples) / len(samples)

        # The load generator: one run, then an at-rest window after it.
        batches = [[t] for t in texts]
        run_load(server.url, spec.alias, batches[:10], concurrency=1)  # warm-up (server and client imports)
        threads_before = threading.active_count()
        cpu, wall = time.process_time(), time.perf_counter()
        result = run_load(server.url, spec.alias, batches[10:], concurrency=1)
        load_cpu, load_wall = time.process_time() - cpu, time.perf_counter() - wall
        if result.failures:
            raise SystemExit(result.failure_text())
        rest_cpu, rest_wall = cpu_over(args.seconds)
        rest_share = max(rest_cpu / rest_wall - idle, 0.0)
        threads_after = threading.active_count()
        plain = plain_client(server.url, spec.alias, texts[10:])
    finally:
        server.stop()

    per_request = load_cpu / result.requests
    print()
    print(f"minilm on CPU; at-rest windows of {args.seconds:g} s; no requests during them")
    print(f"idle floor of this process:            {idle * 100:6.2f}% of one core")
    print(f"memory sampler (interval {interval:g} s, cap {sampler.max_cpu_share:.0%}): {sampler_share * 100:6.2f}% of one core above the floor "
          f"({len(samples)} samples, {per_sample * 1000:.1f} ms CPU per sample of tree_pss_bytes over "
          f"{len(tree)} processes; peak {sampler.peak / 1e9:.2f} GB)")
    print(f"load generator at rest:                {rest_share * 100:6.2f}% of one core above the floor "
          f"(threads before/after a run: {threads_before}/{threads_after})")
    total = sampler_share + rest_share
    print(f"total at rest:                         {total * 100:6.2f}% of one core")
    print(f"goal sampler + load generator < 5% of one core at rest: {'met' if total < 0.05 else 'NOT met'}")
    print()
    print(f"load generator under load (concurrency 1, batch 1, {args.tokens} tokens, {result.requests} requests): "
          f"{per_request * 1000:.2f} ms client CPU per request, {load_cpu / load_wall * 100:.1f}% of one core "
          f"while running (p50 {sorted(result.latencies)[len(result.latencies) // 2] * 1000:.1f} ms)")
    print(f"plain http.client keep-alive loop, same requests: {plain * 1000:.2f} ms client CPU per request "
          f"(plugin/plain = {per_request / plain:.1f}x)")
    print(f"sampler cost at other intervals (from {per_sample * 1000:.1f} ms per sample): "
          + ", ".join(f"{i:g} s -> {per_sample / i * 100:.1f}%" for i in (0.2, 0.5, 1.0, 2.0, 5.0)))


if __name__ == "__main__":
    main()
