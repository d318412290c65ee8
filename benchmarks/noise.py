"""Noise and sensitivity of the latency verdict: false regressions on clean runs, detection of a planted 30%.

One minilm server on the CPU, reached through a delaying reverse proxy (an aiohttp server in its own process
on a new 127.0.0.1 port, one pooled aiohttp client to the server, hop-by-hop headers dropped, status, body and
content type passed back). Every run goes through the proxy, so the planted delay is the only difference
between clean and slowed runs; one direct run shows what the proxy itself costs.

A reference run of `markers.embed_latency` (batch 1, 128 tokens, the marker's defaults: 20 warm-up + 200
measured requests) is written as the baseline, exactly as `--embed-update-baselines` writes it: its four figures
(p50, p90, p99, mean) into a scratch baselines directory's TOML, every request's latency into its timings
file. Every later run is judged by the plugin's own judge, `RunSession.measure`: the run's ratio interval
against the stored samples (both runs resampled; the metrics' default tolerances; a regression only when the
whole 95% interval lies beyond the tolerance; a first window that regressed is measured again and the second
decides). A run fails, as its test would, when any figure regressed.

  clean: --clean back-to-back runs, no delay. Goal: 0 false regressions.
  slow:  --slow runs with the proxy waiting --slowdown (0.3) x the baseline p50 before forwarding each request
         (a 30% slowdown of the median). Goal: every one flagged (its p50 REGRESSED).

    python benchmarks/noise.py [--clean 10] [--slow 5] [--slowdown 0.3] [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from proxy import DelayingProxy, ProxiedServer

from pytest_embedeval.measure import markers
from pytest_embedeval.serve.client import EmbeddingClient
from pytest_embedeval.serve.sglang import SGLangServer
from pytest_embedeval.facts.hardware import HardwareProfile
from pytest_embedeval.facts.metrics import metric
from pytest_embedeval.facts.registry import Registry
from pytest_embedeval.run.record import ModelRun
from pytest_embedeval.run.session import Policy, RunSession
from pytest_embedeval.store import Store
from pytest_embedeval.judge.verdicts import Outcome

HERE = HardwareProfile("cpu-noise", "sglang", "float32")


FIGURES = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms")
ARGUMENTS = {"batch_size": 1, "tokens": 128}


def judged_run(store: Path, target: markers.Target, requests: int, update: bool = False) -> dict:
    """One run of the marker, judged by the plugin's own session (as a test would be): metric -> verdict."""
    session = RunSession(Store(store), Policy(update=update), progress=lambda line: None)
    run = session.open_model(ModelRun(target.server.spec.alias, HERE, "noise.py", "noise.py"))
    verdicts = session.measure(run, "embed_latency", target, {**ARGUMENTS, "requests": requests})
    session.finish()
    return {v.metric: v for v in verdicts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=int, default=10)
    parser.add_argument("--slow", type=int, default=5)
    parser.add_argument("--slowdown", type=float, default=0.3, help="planted delay, as a fraction of the baseline p50")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per run (marker default 200)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="embedeval-noise-"))
    spec = Registry().resolve("minilm")
    server = SGLangServer(spec, device="cpu", log_path=workdir / "server.log")
    store = workdir / "baselines"
    rows = []
    server.start()
    try:
        print(f"server {server.url} booted in {server.boot_seconds:.1f} s; log {server.log_path}", flush=True)
        with DelayingProxy(server.url) as proxy:
            proxied = markers.Target(ProxiedServer(proxy.url, spec), EmbeddingClient(proxy.url, spec.alias))
            direct_target = markers.Target(server, EmbeddingClient(server.url, spec.alias))
            direct = markers.embed_latency(direct_target, **ARGUMENTS, requests=args.requests).measurements[0].value
            started = time.monotonic()
            baseline = judged_run(store, proxied, args.requests, update=True)["latency_p50_ms"].measured
            print(f"direct run (no proxy): p50 {direct:.2f} ms; reference run through the proxy: p50 {baseline:.2f} ms "
                  f"(load {os.getloadavg()[0]:.2f}) -> baseline and samples in {store} "
                  f"({time.monotonic() - started:.0f} s per run)", flush=True)

            def judge(kind: str, index: int) -> None:
                judged = judged_run(store, proxied, args.requests)
                p50 = judged["latency_p50_ms"]
                failed = [n for n, v in judged.items() if v.outcome is Outcome.REGRESSED]
                second = any("second run" in (v.note or "") for v in judged.values())
                rows.append((kind, index, p50, failed, second, os.getloadavg()[0]))
                print(f"{kind:6} {index:3d}  p50 {p50.measured:8.2f} ms  interval {p50.interval[0]:.2f}..{p50.interval[1]:.2f}"
                      f"  {p50.delta_text()}  p50 {p50.outcome.value}; regressed: {', '.join(failed) or '-'}"
                      + (" (after a second run)" if second else ""), flush=True)

            for i in range(args.clean):
                judge("clean", i + 1)
            proxy.delay = args.slowdown * baseline / 1000
            print(f"the proxy now waits {proxy.delay * 1000:.2f} ms per request ({args.slowdown:.0%} of the baseline p50)",
                  flush=True)
            for i in range(args.slow):
                judge("slow", i + 1)
    finally:
        server.stop()

    print()
    print(f"minilm on CPU, embed_latency batch 1 x 128 tokens, {args.requests} requests per run, all through the proxy; "
          f"baseline p50 {baseline:.2f} ms from a reference run; judged as the plugin judges (tolerances: "
          + ", ".join(f"{name} {metric(name).tolerance}" for name in FIGURES)
          + "; 95% bootstrap interval of this run against the reference run's samples)")
    print("(a run whose first window regressed was measured again, as the plugin does; the row shows the deciding one)")
    print(f"{'run':10}{'p50 ms':>9}{'95% interval ms':>20}{'vs baseline':>13}  {'p50 verdict':12}  {'regressed figures':38} "
          "2nd run  load")
    for kind, index, p50, failed, second, load in rows:
        print(f"{kind + ' ' + str(index):10}{p50.measured:9.2f}{f'{p50.interval[0]:.2f}..{p50.interval[1]:.2f}':>20}"
              f"{p50.delta_text():>13}  {p50.outcome.value:12}  {', '.join(failed) or '-':38} {'yes' if second else '':7}  "
              f"{load:.2f}")
    clean = [r for r in rows if r[0] == "clean"]
    slow = [r for r in rows if r[0] == "slow"]
    values = [r[2].measured for r in clean]
    if values:
        print(f"clean runs: p50 from {min(values):.2f} to {max(values):.2f} ms "
              f"({(min(values) / baseline - 1) * 100:+.1f}% .. {(max(values) / baseline - 1) * 100:+.1f}% of baseline)")
    false_alarms = sum(bool(r[3]) for r in clean)
    flagged = sum(r[2].outcome is Outcome.REGRESSED for r in slow)
    print(f"clean runs whose test would fail (any figure regressed): {false_alarms}/{len(clean)} "
          f"(goal 0: {'met' if false_alarms == 0 else 'NOT met'})")
    print(f"planted {args.slowdown:.0%} slowdown flagged (p50 REGRESSED): {flagged}/{len(slow)} "
          f"(goal {len(slow)}/{len(slow)}: {'met' if flagged == len(slow) else 'NOT met'})")


if __name__ == "__main__":
    main()
