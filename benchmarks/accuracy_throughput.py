"""Throughput during an mteb run against the server's throughput for the same texts sent directly.

The encoder mteb drives (batches, requests in flight, prompts) should keep the server about as busy
as a plain load generator does. Goal: ratio >= 0.8.

    python benchmarks/accuracy_throughput.py [--task EmbedEvalSTS-en] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from pytest_embedeval.measure import accuracy
from pytest_embedeval.serve.client import EmbeddingClient
from pytest_embedeval.serve.sglang import SGLangServer
from pytest_embedeval.measure.load import run_load
from pytest_embedeval.facts.registry import Registry


class RecordingEncoder(accuracy.ServerEncoder):
    """The real encoder, keeping the texts it sent so the direct run can send the very same ones."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    def embed_batch(self, texts):
        self.sent.extend(texts)
        return super().embed_batch(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="EmbedEvalSTS-en")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    spec = Registry().resolve("minilm")
    log = Path(tempfile.mkdtemp(prefix="embedeval-acc-")) / "sglang.log"
    with SGLangServer(spec, device="cpu", log_path=log) as server:
        client = EmbeddingClient(server.url, spec.alias)
        via_mteb, direct = [], []
        for round_ in range(args.rounds):
            encoder = RecordingEncoder(client, spec, batch_size=args.batch_size, concurrency=args.concurrency)
            accuracy.evaluate(encoder, accuracy.resolve_target(args.task))
            via_mteb.append(encoder.texts_encoded / encoder.encode_seconds)
            texts = encoder.sent
            batches = [texts[i:i + args.batch_size] for i in range(0, len(texts), args.batch_size)]
            result = run_load(server.url, spec.alias, batches, concurrency=args.concurrency)
            direct.append(len(texts) / result.wall_seconds)
            print(f"round {round_ + 1}: mteb run {via_mteb[-1]:.1f} texts/s, direct {direct[-1]:.1f} texts/s "
                  f"({len(texts)} texts)", flush=True)
    ratio = statistics.median(via_mteb) / statistics.median(direct)
    print(f"task {args.task}, batch {args.batch_size}, {args.concurrency} in flight, {args.rounds} rounds")
    print(f"during the mteb run: median {statistics.median(via_mteb):.1f} texts/s")
    print(f"same texts sent directly: median {statistics.median(direct):.1f} texts/s")
    print(f"ratio mteb/direct: {ratio:.3f} (goal >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})")


if __name__ == "__main__":
    main()
