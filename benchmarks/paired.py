"""Paired verdicts against stored ones, on a quiet machine and beside a CPU hog: is a 10% slowdown caught?

Two minilm servers on the CPU, the same files and the same arguments: the incumbent and the candidate, each
behind its own proxy process (benchmarks/proxy.py), so that the planted change is the only difference. Each
server gets the OpenMP threads the plugin gives two servers it boots on one CPU (half the cores each;
--threads torch: torch's own, a thread per core each). A
first run records the stored baselines and samples from the candidate, as --embed-update-baselines does.
Then, in each phase (quiet; then with a hog, a process that keeps one core busy for the whole phase):

  clean  --runs paired runs, nothing planted
  slow   --runs paired runs, the candidate's proxy holding each answer back --slowdown x the time it took
  (stretch: --stretch, the same with a smaller slowdown)

Every run is the plugin's own embed_latency marker with an incumbent, judged by the plugin's own judge
(RunSession.measure, second window included): the paired p50 ratio (each request sent to both servers back to
back, A B B A; the median pair's ratio with its bootstrap interval, tolerance 5% or --paired-tolerance) and,
from the same candidate samples, today's stored-baseline verdict of latency_p50_ms (its default tolerance,
15%, with both runs' samples resampled). Last, the vectors: the candidate's proxy turns every vector to cosine
0.999 from the served one, and embed_drift's paired_min_cosine must be flagged; and the accuracy: the candidate's proxy cuts
every input to its first --accuracy-words words (a server whose context shrank), which costs the shipped
STS-en score 0.59 points (sentence-transformers, 20 words: 15 of its 359 pairs change), and embed_accuracy's paired difference (a paired bootstrap over the pairs)
must be flagged.

    python benchmarks/paired.py [--runs 10] [--slowdown 0.10] [--stretch 0.05] [--requests 200]
                                [--phases quiet,hog] [--stretch-phases quiet,hog] [--threads split|torch]
                                [--paired-tolerance 3%]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import SimpleNamespace

from proxy import DelayingProxy, ProxiedServer

from pytest_embedeval.serve.client import EmbeddingClient
from pytest_embedeval.serve.sglang import SGLangServer
from pytest_embedeval.facts.hardware import HardwareProfile
from pytest_embedeval.facts.registry import Registry
from pytest_embedeval.run.record import ModelRun
from pytest_embedeval.serve.placement import paired_cpu_threads
from pytest_embedeval.run.session import Policy, RunSession
from pytest_embedeval.store import Store
from pytest_embedeval.judge.verdicts import Outcome
from pytest_embedeval.measure import markers

HERE = HardwareProfile("cpu-paired", "sglang", "float32")
SETTINGS = SimpleNamespace(api_key=None, request_timeout=120.0, mteb_results=None)


def _spin() -> None:
    while True:
        pass


@contextmanager
def hog(active: bool):
    """A process that keeps one core busy for the whole block."""
    if not active:
        yield
        return
    process = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    process.start()
    try:
        yield
    finally:
        process.terminate()
        process.join(10)


def judged(store: Path, candidate, incumbent, marker: str, arguments: dict, update: bool = False) -> dict:
    """One run of ``marker`` on the pair, judged as the plugin judges it: metric -> verdict."""
    session = RunSession(Store(store), Policy(update=update), progress=lambda line: None)
    run = session.open_model(ModelRun("minilm", HERE, "paired.py", "paired.py"))
    target = session.target(run, *candidate, SETTINGS, incumbent=incumbent)
    verdicts = session.measure(run, marker, target, *markers.arguments(marker, (), arguments))
    session.finish()
    return {v.metric: v for v in verdicts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--slowdown", type=float, default=0.10, help="the planted slowdown (0: skip)")
    parser.add_argument("--stretch", type=float, default=0.05, help="a smaller slowdown as well (0: skip)")
    parser.add_argument("--requests", type=int, default=200, help="requests per server and run (the marker's default)")
    parser.add_argument("--accuracy-words", type=int, default=20, help="words kept of each input (the accuracy drop)")
    parser.add_argument("--phases", default="quiet,hog", help="which of quiet,hog to run")
    parser.add_argument("--stretch-phases", default="quiet,hog", help="the phases that run the stretch as well")
    parser.add_argument("--paired-tolerance", default=None,
                        help="embed_latency's paired_tolerance (default: the metric's own, 5%%)")
    parser.add_argument("--threads", choices=("split", "torch"), default="split",
                        help="each server's OpenMP threads: the plugin's split of the cores, or torch's default")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="embedeval-paired-"))
    store = workdir / "baselines"
    spec = Registry().resolve("minilm")
    latency = {"batch_size": 1, "tokens": 128, "requests": args.requests, "warmup": 20}
    paired_latency = {**latency, "paired_tolerance": args.paired_tolerance}
    rows = []
    with ExitStack() as stack:
        threads = paired_cpu_threads() if args.threads == "split" else None
        servers = [stack.enter_context(SGLangServer(spec, device="cpu", cpu_threads=threads,
                                                    log_path=workdir / f"{role}.log"))
                   for role in ("incumbent", "candidate")]
        proxies = [stack.enter_context(DelayingProxy(server.url)) for server in servers]
        sides = [(ProxiedServer(proxy.url, spec), EmbeddingClient(proxy.url, spec.alias)) for proxy in proxies]
        incumbent, candidate = sides
        slow_proxy = proxies[1]
        print(f"servers booted ({', '.join(f'{s.boot_seconds:.0f} s' for s in servers)}), OpenMP threads "
              f"{servers[0].omp_threads or 'torch default'} each; work files in {workdir}",
              flush=True)
        recorded = judged(store, candidate, None, "embed_latency", latency, update=True)
        judged(store, candidate, None, "embed_drift", {}, update=True)
        baseline = recorded["latency_p50_ms"].measured
        print(f"stored baseline (candidate alone): p50 {baseline:.2f} ms", flush=True)

        def paired_run(phase: str, kind: str, index: int) -> None:
            started = time.monotonic()
            verdicts = judged(store, candidate, incumbent, "embed_latency", paired_latency)
            ratio, stored = verdicts["paired_latency_p50_ratio"], verdicts["latency_p50_ms"]
            rows.append((phase, kind, ratio, stored, os.getloadavg()[0]))
            print(f"{phase:5} {kind:10} {index:2d}  paired {ratio.measured:.3f} "
                  f"[{ratio.interval[0]:.3f}, {ratio.interval[1]:.3f}] {ratio.outcome.value:9}  stored p50 "
                  f"{stored.measured:7.2f} ms {stored.delta_text():>7} {stored.outcome.value:9}  "
                  f"({time.monotonic() - started:.0f} s, load {os.getloadavg()[0]:.1f})", flush=True)

        plans = [("clean", 0.0)]
        if args.slowdown:
            plans.append((f"slow {args.slowdown:.0%}", args.slowdown))
        if args.stretch:
            plans.append((f"slow {args.stretch:.0%}", args.stretch))
        for phase, busy in (("quiet", False), ("hog", True)):
            if phase not in args.phases.split(","):
                continue
            with hog(busy):
                for kind, slowdown in plans:
                    if kind.endswith(f"{args.stretch:.0%}") and phase not in args.stretch_phases.split(","):
                        continue
                    slow_proxy.stretch = slowdown
                    for index in range(args.runs):
                        paired_run(phase, kind, index + 1)
        slow_proxy.stretch = 0.0

        slow_proxy.turn = 0.999
        drift = judged(store, candidate, incumbent, "embed_drift", {})["paired_min_cosine"]
        slow_proxy.turn = 1.0
        slow_proxy.truncate = args.accuracy_words
        accuracy = judged(store, candidate, incumbent, "embed_accuracy", {"task": "EmbedEvalSTS-en"})
        slow_proxy.truncate = 0

    print()
    print(f"minilm on the CPU ({os.cpu_count()} cores, threads: {args.threads}), embed_latency batch 1 x 128 tokens, {args.requests} requests "
          "per server and run; paired: request pairs A B B A, median pair's ratio, tolerance "
          f"{args.paired_tolerance or '5%'}; stored: the candidate's p50 against "
          f"the baseline recorded at the start ({baseline:.2f} ms), tolerance 15%")
    print(f"{'phase':6}{'runs':12}{'paired flagged':>16}{'stored flagged':>16}   paired ratios"
          "            stored deltas")
    for phase in args.phases.split(","):
        for kind, _ in plans:
            chosen = [r for r in rows if r[0] == phase and r[1] == kind]
            if not chosen:
                continue
            paired = sum(r[2].outcome is Outcome.REGRESSED for r in chosen)
            stored = sum(r[3].outcome is Outcome.REGRESSED for r in chosen)
            ratios = [r[2].measured for r in chosen]
            deltas = [r[3].measured / baseline - 1 for r in chosen]
            print(f"{phase:6}{kind:12}{f'{paired}/{len(chosen)}':>16}{f'{stored}/{len(chosen)}':>16}   "
                  f"{min(ratios):.3f}..{max(ratios):.3f}           {min(deltas):+.1%}..{max(deltas):+.1%}")
    print(f"planted drift, candidate vectors at cosine 0.999: paired_min_cosine {drift.measured:.6f} -> "
          f"{drift.outcome.value}")
    for name, verdict in accuracy.items():
        if name.startswith("paired:"):
            low, high = verdict.interval or (float("nan"), float("nan"))
            print(f"planted accuracy drop (inputs cut to {args.accuracy_words} words): {name} "
                  f"{verdict.measured:+.2f} points [{low:+.2f}, {high:+.2f}] ({verdict.pair_text()}) -> "
                  f"{verdict.outcome.value}")


if __name__ == "__main__":
    main()
