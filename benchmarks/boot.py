"""Boot-to-ready: the plugin's launcher against a bare `python -m sglang.launch_server`, side by side.

Both start the same argv with the same environment and poll /health every 0.2 s while checking that
the process is alive; runs alternate so that machine noise hits both alike. The goal: ratio <= 1.10.

    python benchmarks/boot.py [--model minilm] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from pytest_embedeval.serve.sglang import SGLangServer, detect_device
from pytest_embedeval.facts.registry import Registry


def bare_boot(server: SGLangServer) -> float:
    """What a person does by hand: start the command, poll /health, then stop it."""
    started = time.monotonic()
    with open(server.log_path, "wb") as log:
        process = subprocess.Popen(server.argv, stdout=log, stderr=subprocess.STDOUT, env=server.environment())
    try:
        with httpx.Client(timeout=5.0) as http:
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"bare server exited: see {server.log_path}")
                try:
                    if http.get(f"{server.url}/health").status_code == 200:
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
    finally:
        # Wait for the whole tree, as the plugin does: a scheduler still exiting would slow the next boot.
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        for proc in tree:
            proc.terminate()
        _, alive = psutil.wait_procs(tree, timeout=30)
        for proc in alive:
            proc.kill()
        time.sleep(3)


def plugin_boot(server: SGLangServer) -> float:
    started = time.monotonic()
    server.start()
    elapsed = time.monotonic() - started
    server.stop()
    time.sleep(3)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    spec = Registry.for_project(Path.cwd()).resolve(args.model)
    device = detect_device()
    logs = Path(tempfile.mkdtemp(prefix="embedeval-boot-"))
    bare, plugin = [], []
    for round_ in range(args.rounds):
        # Alternate which goes first, so that neither always boots on a machine the other just left.
        order = (("bare", bare_boot, bare), ("plugin", plugin_boot, plugin))
        for name, boot, times in order if round_ % 2 == 0 else reversed(order):
            times.append(boot(SGLangServer(spec, device=device, log_path=logs / f"{name}-{round_}.log")))
        print(f"round {round_ + 1}: bare {bare[-1]:.1f} s, plugin {plugin[-1]:.1f} s", flush=True)
    bare_median, plugin_median = statistics.median(bare), statistics.median(plugin)
    print(f"model {spec.alias}, device {device}, {args.rounds} rounds, logs in {logs}")
    print(f"bare sglang.launch_server boot-to-ready: median {bare_median:.2f} s  {[round(x, 1) for x in bare]}")
    print(f"plugin launcher boot-to-ready:          median {plugin_median:.2f} s  {[round(x, 1) for x in plugin]}")
    ratio = plugin_median / bare_median
    print(f"ratio plugin/bare: {ratio:.3f} (goal <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")


if __name__ == "__main__":
    main()
