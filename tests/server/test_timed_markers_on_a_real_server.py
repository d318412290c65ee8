"""Latency, throughput and memory markers, as users write them, against the real server: measured into the summary, a
slower server failed with its interval, timings stored in pytest-benchmark's format and judged on both runs'
samples."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


MARKED = """
import pytest

@pytest.mark.embed_latency(requests=40, warmup=5)
def test_latency():
    pass

@pytest.mark.embed_throughput(batch_size=8, concurrency=2, requests=6)
def test_throughput():
    pass

@pytest.mark.embed_memory(requests=2)
def test_memory():
    pass

class TestInAClass:
    pytestmark = pytest.mark.embed_latency(requests=10, warmup=2, tokens=32)

    def test_short_inputs(self):
        pass

@pytest.mark.embed_latency(batchsize=2)
def test_misspelled():
    pass
"""


def test_markers_measure_the_server_and_fill_the_summary(pytester, embed_server):
    pytester.makepyfile(MARKED)
    result = pytester.runpytest(f"--embed-url={embed_server.url}", "--embed-model=minilm", "-rs", "-v")
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    result.stdout.fnmatch_lines([
        "*test_misspelled*FAILED*",
        "*server memory cannot be measured: --embed-url points at a server this run did not start*",
    ])
    result.stdout.fnmatch_lines([
        "*@pytest.mark.embed_latency: * unexpected keyword argument 'batchsize'; accepted arguments: batch_size,*"])
    for metric in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms",
                   "throughput_tokens_per_s", "throughput_requests_per_s"):
        result.stdout.fnmatch_lines([f"{metric} *-*no baseline"])


def test_a_slower_server_than_the_baseline_fails_with_the_interval(pytester, embed_server):
    pytester.makepyfile("import pytest\n\n@pytest.mark.embed_latency(requests=40, warmup=5)\ndef test_latency():\n    pass\n")
    args = (f"--embed-url={embed_server.url}", "--embed-model=minilm")
    pytester.runpytest(*args, "--embed-update-baselines").assert_outcomes(passed=1)
    path = pytester.path / "baselines" / "minilm.toml"
    text = path.read_text()
    label = '"latency_p50_ms (batch 1 x 128 tokens)"'
    line = next(line for line in text.splitlines() if line.startswith(f"{label} = "))
    measured = float(line.split("=")[1])
    # As if it used to be 10x faster: more than any busy moment of a shared machine makes of the same server.
    path.write_text(text.replace(line, f"{label} = {measured / 10:.3f}"))
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "@pytest.mark.embed_latency: latency_p50_ms* regressed; measuring again to tell a slower server*",
        "latency_p50_ms (batch 1 x 128 tokens) regressed: measured *ms, 95% CI *ms..*ms, baseline *ms (+*%, "
        "tolerance 15%; profile 'cpu-*",
        "95% CI*",
        "measured as  40 requests after 5 warm-up; second run, the first regressed (*)",
    ])


LATENCY_ONLY = "import pytest\n\n@pytest.mark.embed_latency(requests=40, warmup=5)\ndef test_latency():\n    pass\n"


@pytest.fixture
def recorded(pytester, embed_server):
    """A project with one latency test whose baselines (and samples) were just written: (args, timings file)."""
    pytester.makepyfile(LATENCY_ONLY)
    args = (f"--embed-url={embed_server.url}", "--embed-model=minilm")
    pytester.runpytest(*args, "--embed-update-baselines").assert_outcomes(passed=1)
    return args, next(pytester.path.glob("baselines/timings/minilm/*.json"))


def pytest_benchmark_compare(*paths) -> subprocess.CompletedProcess:
    command = Path(sys.executable).parent / "pytest-benchmark"  # its console script, as users run it
    return subprocess.run([str(command), "compare", *map(str, paths)],
                          capture_output=True, text=True, timeout=60)


def test_timings_are_stored_and_written_in_pytest_benchmark_format(pytester, recorded):
    args, stored = recorded
    entry = json.loads(stored.read_text())["benchmarks"][0]
    assert entry["name"] == "latency batch 1 x 128 tokens"
    assert len(entry["stats"]["data"]) == 40 and entry["stats"]["rounds"] == 40

    # A wide tolerance: this test is about the files, and a shared machine may be slower a second later.
    pytester.makepyfile(LATENCY_ONLY.replace("warmup=5)", "warmup=5, tolerance='1000%')"))
    result = pytester.runpytest(*args, "--embed-benchmark-json=run.json", "--embed-report=report.json")
    result.assert_outcomes(passed=1)
    verdicts = json.loads((pytester.path / "report.json").read_text())["models"][0]["verdicts"]
    p50 = next(v for v in verdicts if v["metric"] == "latency_p50_ms")
    assert p50["outcome"] != "regressed" and "both runs' samples resampled" in p50["note"]
    # pytest-benchmark's own tool reads both files: the baseline run and this one, side by side.
    compared = pytest_benchmark_compare(stored, pytester.path / "run.json")
    assert compared.returncode == 0, compared.stderr
    assert compared.stdout.count("latency batch 1 x 128 tokens") == 2


def test_a_baseline_run_that_was_faster_fails_on_both_runs_samples(pytester, recorded):
    args, stored = recorded
    # As if the baseline run had been 3x faster: its samples and its figures together.
    data = json.loads(stored.read_text())
    faster = [s / 3 for s in data["benchmarks"][0]["stats"]["data"]]
    data["benchmarks"][0]["stats"]["data"] = faster
    stored.write_text(json.dumps(data))
    path = pytester.path / "baselines" / "minilm.toml"
    text = path.read_text()
    label = '"latency_p50_ms (batch 1 x 128 tokens)"'
    line = next(line for line in text.splitlines() if line.startswith(f"{label} = "))
    path.write_text(text.replace(line, f"{label} = {np.percentile(faster, 50) * 1000:.6f}"))
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["latency_p50_ms (batch 1 x 128 tokens) regressed: measured *",
                                 "*both runs' samples resampled*"])


def test_a_broken_timings_file_is_named(pytester, recorded):
    args, stored = recorded
    stored.write_text('{"benchmarks": [{"name": "latency batch 1 x 128 tokens"}]}')
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*no measurement: {stored}: benchmarks[].stats.data: not a pytest-benchmark*"])
