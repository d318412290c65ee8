"""The store of request timings (``measure/timing.py``'s), in pytest-benchmark's JSON format.

Two uses of one format:

- ``<baselines>/timings/<model>/<profile>.json``: the per-request samples of the run that wrote the
  latency baselines. A latency verdict resamples them beside the new run's (``stats.ratio_interval``),
  so the baseline's own noise counts, not only the new run's.
- ``--embed-benchmark-json PATH``: a run's timings for the tools that read pytest-benchmark files
  (``pytest-benchmark compare``, github-action-benchmark's ``pytest`` tool).

pytest-benchmark computes the statistics (``Stats``), the machine info and the commit info, so the
files are the ones its own ``--benchmark-json`` writes, one benchmark per marker measurement.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from dataclasses import dataclass
from pathlib import Path

import pytest_benchmark
from pytest_benchmark.stats import Stats
from pytest_benchmark.utils import get_commit_info

from ..measure.timing import Timing
from .baselines import BaselineError
from .files import inside, locked, write_atomically


def _benchmark(timing: Timing, group: str) -> dict:
    stats = Stats()
    for sample in timing.samples:
        stats.update(sample)
    return {
        "group": group,
        "name": timing.name,
        "fullname": f"{timing.test}::{timing.name}" if timing.test else timing.name,
        "params": timing.params or None,
        "param": None,
        "extra_info": timing.extra,
        "options": {"timer": "perf_counter", "disable_gc": False, "min_rounds": len(timing.samples),
                    "max_time": None, "min_time": None, "warmup": True},
        "stats": {**stats.as_dict(), "data": list(timing.samples), "iterations": 1},
    }


def machine_info() -> dict:
    """The fields pytest-benchmark's own machine info has, read without importing its pytest plugin."""
    from cpuinfo import get_cpu_info  # pytest-benchmark's dependency; slow (~1 s), so only when writing

    return {"node": platform.node(), "processor": platform.processor(), "machine": platform.machine(),
            "python_compiler": platform.python_compiler(),
            "python_implementation": platform.python_implementation(),
            "python_implementation_version": platform.python_version(), "python_version": platform.python_version(),
            "python_build": list(platform.python_build()), "release": platform.release(),
            "system": platform.system(), "cpu": get_cpu_info()}


def document(timings: dict[str, list[Timing]], machine: dict | None = None) -> dict:
    """A pytest-benchmark JSON document; ``timings`` maps a model to its timings (the benchmark group)."""
    info = machine_info()
    info.update(machine or {})
    return {
        "machine_info": info,
        "commit_info": get_commit_info(),
        "benchmarks": [_benchmark(t, model) for model, entries in timings.items() for t in entries],
        "datetime": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "version": pytest_benchmark.__version__,
    }


@dataclass
class TimingStore:
    """``<baselines>/timings/<model>/<profile>.json``, next to the TOML whose figures they back."""

    directory: Path

    def path(self, model: str, profile: str) -> Path:
        return inside(self.directory, Path(self.directory) / "timings" / model / f"{profile}.json", "timings")

    def load(self, model: str, profile: str) -> dict[str, list[float]]:
        """Samples by timing name; empty when none were stored."""
        path = self.path(model, profile)
        if not path.exists():
            return {}
        try:
            benchmarks = json.loads(path.read_text(encoding="utf-8"))["benchmarks"]
            return {b["name"]: [float(s) for s in b["stats"]["data"]] for b in benchmarks}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BaselineError(path, "benchmarks[].stats.data",
                                f"not a pytest-benchmark JSON file with per-request data ({exc!r}); "
                                "restore it from version control or rewrite it with --embed-update-baselines") from None

    def save(self, model: str, profile: str, timings: list[Timing], machine: dict | None = None) -> Path:
        """Replace the entries of the same names, keep the others; one writer at a time."""
        path = self.path(model, profile)
        with locked(Path(self.directory)):
            kept = []
            if path.exists():
                old = json.loads(path.read_text(encoding="utf-8"))
                names = {t.name for t in timings}
                kept = [b for b in old.get("benchmarks", []) if b.get("name") not in names]
            data = document({model: timings}, machine)
            data["benchmarks"] = kept + data["benchmarks"]
            write_atomically(path, json.dumps(data, indent=2))
        return path
