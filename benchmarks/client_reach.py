"""Client reach: how many requests a second one load-generator process can drive, and what several processes add.

A fleet of two minilm workers (one thread each) behind SGLang's model gateway, on the CPU; small requests (batch 1,
--tokens tokens) so that the client's own cost per request counts. Side by side, alternating rounds, the order
flipping each round: `run_load` from one client process, and from --processes processes sharing the same
concurrency. Per side: requests/s, the client's CPU per request (every client process's time.process_time()) and
its busy share of a core. One process's reach is one core over its CPU per request: past that rate, one process
measures itself, not the fleet.

Goal: the client's CPU per request is the same from one process or several (the split costs nothing per request),
and one process's reach is at least 5x what this fleet serves, so that a 2-core runner's figures are the fleet's.

    python benchmarks/client_reach.py [--rounds 4] [--requests 400] [--tokens 16] [--concurrency 8] [--processes 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from pytest_embedeval.facts.registry import Registry
from pytest_embedeval.measure.inputs import texts_of_tokens
from pytest_embedeval.measure.load import run_load
from pytest_embedeval.serve.fleet import Fleet
from pytest_embedeval.serve.gateway import Gateway
from pytest_embedeval.serve.sglang import SGLangServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    logs = Path(tempfile.mkdtemp(prefix="embedeval-"))
    spec = Registry().resolve("minilm")
    key = "benchmark-key"
    workers = [SGLangServer(spec, device="cpu", api_key=key, cpu_threads=1, log_path=logs / f"worker{i}.log")
               for i in (1, 2)]
    fleet = Fleet(workers, Gateway([w.url for w in workers], key, logs / "gateway.log", env=workers[0].environment()))
    texts = texts_of_tokens(spec.local_dir(), args.tokens, args.requests)
    batches = [[text] for text in texts]
    with fleet:
        run_load(fleet.url, spec.alias, batches[:32], concurrency=args.concurrency, api_key=key)  # warm-up
        sides = {1: [], args.processes: []}
        for round_ in range(args.rounds):
            for processes in (list(sides) if round_ % 2 == 0 else list(sides)[::-1]):
                result = run_load(fleet.url, spec.alias, batches, concurrency=args.concurrency, api_key=key,
                                  processes=processes)
                if result.failures:
                    raise SystemExit(result.failure_text())
                sides[processes].append(result)
                print(f"round {round_ + 1}, {processes} process(es): {result.requests_per_s:.1f} req/s; "
                      f"{result.client_text()}")
    print(f"\nfleet of 2 minilm workers (1 thread each) behind smg, batch 1 x {args.tokens} tokens, "
          f"concurrency {args.concurrency}, {args.rounds} rounds of {args.requests} requests (medians):")
    summary = {}
    for processes, results in sides.items():
        rate = statistics.median(r.requests_per_s for r in results)
        cpu_ms = statistics.median(1000 * r.client_cpu_seconds / r.requests for r in results)
        summary[processes] = (rate, cpu_ms)
        print(f"  {processes} client process(es): {rate:7.1f} req/s, client CPU {cpu_ms:.2f} ms/request, "
              f"one process reaches {1000 / cpu_ms:7.0f} req/s")
    (one_rate, one_cpu), (many_rate, many_cpu) = summary[1], summary[args.processes]
    reach = 1000 / one_cpu
    print(f"  ratios: {args.processes} processes / 1: {many_rate / one_rate:.2f}x req/s, {many_cpu / one_cpu:.2f}x "
          f"client CPU per request; one process's reach / the fleet's rate: {reach / one_rate:.1f}x")
    met = many_cpu / one_cpu <= 1.2 and reach >= 5 * one_rate
    print(f"goal (same CPU per request within 20%, reach >= 5x the fleet's rate): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
