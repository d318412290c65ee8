"""What the plugin costs a pytest run that does not use it: an unrelated one-test project, with and without it.

The project has a baselines/ folder of its own (which the plugin must leave alone). Runs alternate, with the
plugin and with `-p no:embedeval`, so that both see the same machine; the figure is the difference of the
medians. Goal: within 50 ms.

    python benchmarks/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(project: Path, *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=project,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or "embedeval" in done.stdout:
        raise SystemExit(f"the unrelated project did not pass silently:\n{done.stdout}\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    project = Path(tempfile.mkdtemp(prefix="embedeval-startup-"))
    (project / "test_unrelated.py").write_text("def test_unrelated():\n    assert 1 + 1 == 2\n")
    (project / "baselines").mkdir()
    (project / "baselines" / "resnet.toml").write_text("top1 = 0.76\n")
    timed(project)  # warm the file cache once
    with_plugin, without = [], []
    for _ in range(args.runs):
        with_plugin.append(timed(project))
        without.append(timed(project, "-p", "no:embedeval"))
    a, b = statistics.median(with_plugin), statistics.median(without)
    print(f"pytest start-up of an unrelated one-test project, median of {args.runs} alternating runs:")
    print(f"  with pytest-embedeval installed  {a * 1000:7.1f} ms  (min {min(with_plugin) * 1000:.1f})")
    print(f"  with -p no:embedeval             {b * 1000:7.1f} ms  (min {min(without) * 1000:.1f})")
    print(f"  the plugin's cost                {(a - b) * 1000:+7.1f} ms  (goal: within 50 ms: "
          f"{'met' if a - b <= 0.050 else 'NOT met'})")


if __name__ == "__main__":
    main()
