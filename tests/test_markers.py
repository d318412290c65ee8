"""Latency, throughput and memory markers, as users write them, against the real server."""

import json
from pathlib import Path
import subprocess
import sys
import time

import numpy as np
import pytest

from pytest_embedeval.measure import markers
from pytest_embedeval.measure.markers.target import check_tokens
from pytest_embedeval.measure.load import LoadResult
from pytest_embedeval.measure.memory import PeakSampler
from pytest_embedeval.facts.hardware import HardwareProfile
from pytest_embedeval.measure.stats import percentile, percentile_interval, ratio_interval
from pytest_embedeval.run.record import ModelRun
from pytest_embedeval.run.session import Policy, RunSession
from pytest_embedeval.store import Store
from pytest_embedeval.measure.timing import Timing

# -- the pure parts ---------------------------------------------------------------------------------


def test_percentile_interval_brackets_the_estimate_and_narrows_with_samples():
    rng = np.random.default_rng(7)
    few, many = rng.lognormal(3, 0.3, 30), rng.lognormal(3, 0.3, 3000)
    low_few, high_few = percentile_interval(few, 50)
    low_many, high_many = percentile_interval(many, 50)
    assert low_few <= np.median(few) <= high_few
    assert low_many <= np.median(many) <= high_many
    assert high_many - low_many < (high_few - low_few) / 3
    assert percentile_interval([5.0] * 10, 50) == (5.0, 5.0)


def test_the_ratio_interval_weighs_both_runs_noise():
    rng = np.random.default_rng(3)
    baseline = rng.lognormal(np.log(0.036), 0.08, 200)
    again = rng.lognormal(np.log(0.036), 0.08, 200)
    median = percentile(50)
    low, high = ratio_interval(again, baseline, median)
    assert low < 1 < high  # the same server twice: no difference beyond noise
    low, high = ratio_interval(again * 1.3, baseline, median)
    assert 1.15 < low < 1.3 < high  # a 30% slowdown lies wholly beyond a 15% tolerance
    alone = percentile_interval(again * 1000, 50)
    assert high - low > (alone[1] - alone[0]) / np.percentile(again * 1000, 50)  # wider than one run's own


class _Server:  # the session only reads a figure's model from the run record
    spec = None


def _session_with_latency_baseline(tmp_path, lines):
    (tmp_path / "m.toml").write_text(
        'model = "m"\n[profiles.here]\nhardware = "any"\nengine = "any"\ndtype = "any"\nsource = "measured"\n'
        'date = "2026-12-01"\n[profiles.here.metrics]\nlatency_p50_ms = 40.0\n')
    session = RunSession(Store(tmp_path), Policy(), progress=lines.append)
    run = session.open_model(ModelRun("m", HardwareProfile("cpu-2c", "sglang", "float32"), "", ""))
    return session, run


@pytest.mark.parametrize("windows, decided, runs", [
    ([50.0, 40.0], 40.0, 2),   # a noisy first window: the second decides, and passes
    ([50.0, 51.0], 51.0, 2),   # a slower server: regressed twice, the second is reported
    ([40.0, 99.0], 40.0, 1),   # no regression: measured once
])
def test_a_timed_regression_counts_only_when_a_second_window_shows_it(monkeypatch, tmp_path, windows, decided, runs):
    seen, lines = iter(windows), []

    def fake_latency(target, **arguments):  # stands in for the real marker: the session's policy is what is tested
        return markers.Measured([markers.Measurement("latency_p50_ms", next(seen), note="batch 1")],
                                timings=[Timing(f"window {len(lines)}", [0.04])])

    monkeypatch.setitem(markers.MARKERS, "embed_latency", fake_latency)
    session, run = _session_with_latency_baseline(tmp_path, lines)
    (verdict,) = session.measure(run, "embed_latency", markers.Target(_Server(), None), {})
    assert verdict.measured == decided and len(lines) == runs - 1
    assert run.verdicts == [verdict]  # recorded once, whatever was measured
    assert len(run.timings) == 1  # only the deciding window's samples are kept
    if runs == 2:
        assert lines[0].startswith("@pytest.mark.embed_latency: latency_p50_ms regressed; measuring again")
        assert verdict.note == "batch 1; second run, the first regressed (50)"


def test_untimed_markers_are_measured_once(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setitem(markers.MARKERS, "embed_drift", lambda target: calls.append(1) or markers.Measured(
        [markers.Measurement("drift_min_cosine", 0.5)]))
    session, run = _session_with_latency_baseline(tmp_path, [])
    session.measure(run, "embed_drift", markers.Target(_Server(), None), {})
    assert calls == [1]  # a wrong vector is wrong every time: no second look


def test_the_sampler_keeps_under_its_cpu_share_however_costly_a_sample():
    def costly():  # 20 ms of CPU per sample, like a PSS reading of a big tree
        started = time.thread_time()
        while time.thread_time() - started < 0.02:
            pass
        return 1

    with PeakSampler(costly, interval=0.01, max_cpu_share=0.05) as capped:
        time.sleep(1.0)
    with PeakSampler(costly, interval=0.01, max_cpu_share=1.0) as uncapped:
        time.sleep(1.0)
    assert capped.peak == uncapped.peak == 1
    assert capped.samples <= 3  # 20 ms / 5% = one sample every 0.4 s
    assert uncapped.samples >= 3 * capped.samples


def test_a_server_that_miscounts_tokens_gives_no_figure():
    result = LoadResult(concurrency=1, batch_size=2, latencies=[0.01] * 3, prompt_tokens=3 * 2 * 127)
    with pytest.raises(markers.MeasurementError, match="server counted 762 prompt tokens where the model's tokenizer counts 768"):
        check_tokens(result, 128)


def test_failed_requests_give_no_figure():
    result = LoadResult(concurrency=1, batch_size=1, latencies=[0.01], failures=2, errors=["HTTP 500: boom"])
    assert result.failure_text() == "2 of 3 requests failed; first errors: HTTP 500: boom"


def test_marker_arguments_are_checked_by_name():
    with pytest.raises(TypeError, match=r"@pytest.mark.embed_latency: .*'batchsize'.*accepted arguments: batch_size, tokens"):
        markers.bind("embed_latency", (), {"batchsize": 2})
    assert markers.bind("embed_throughput", (), {"sweep": True}).arguments["sweep"] is True


def test_the_judges_arguments_are_split_from_the_measuring_ones():
    measuring, judging = markers.arguments("embed_latency", (), {"batch_size": 2, "tolerance": "10%", "paired_tolerance": "3%"})
    assert measuring == {"batch_size": 2} and judging == {"tolerance": "10%", "paired_tolerance": "3%"}
    with pytest.raises(TypeError, match="accepted arguments: task, dimensions, batch_size, concurrency, tolerance$"):
        markers.bind("embed_accuracy", (), {"paired_tolerance": 1})  # its paired scores have a built-in tolerance


def test_every_marker_is_registered_with_its_signature(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines([
        "@pytest.mark.embed_latency(batch_size=1, tokens=128, requests=200, warmup=20, tolerance=None, "
        "paired_tolerance=None): Request latency*",
        "@pytest.mark.embed_throughput(*sweep=False*",
        "@pytest.mark.embed_memory(*",
    ])


# -- against the real server ------------------------------------------------------------------------

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


@pytest.mark.server
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


@pytest.mark.server
def test_a_slower_server_than_the_baseline_fails_with_the_interval(pytester, embed_server):
    pytester.makepyfile("import pytest\n\n@pytest.mark.embed_latency(requests=40, warmup=5)\ndef test_latency():\n    pass\n")
    args = (f"--embed-url={embed_server.url}", "--embed-model=minilm")
    pytester.runpytest(*args, "--embed-update-baselines").assert_outcomes(passed=1)
    path = pytester.path / "baselines" / "minilm.toml"
    text = path.read_text()
    label = '"latency_p50_ms (batch 1 x 128 tokens)"'
    line = next(line for line in text.splitlines() if line.startswith(f"{label} = "))
    measured = float(line.split("=")[1])
    path.write_text(text.replace(line, f"{label} = {measured / 3:.3f}"))  # as if it used to be 3x faster
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


@pytest.mark.server
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


@pytest.mark.server
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


@pytest.mark.server
def test_a_broken_timings_file_is_named(pytester, recorded):
    args, stored = recorded
    stored.write_text('{"benchmarks": [{"name": "latency batch 1 x 128 tokens"}]}')
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*no measurement: {stored}: benchmarks[].stats.data: not a pytest-benchmark*"])
