"""What people read: the step summary, the JSON report, benchmark files, the comparison and xdist merges."""

import json

import pytest

from pytest_embedeval.cli import main as embedeval

from support.suites import MARKED_SUITE


@pytest.fixture
def run_suite(pytester, embed_server):
    pytester.makepyfile(MARKED_SUITE)
    return lambda *args: pytester.runpytest(f"--embed-url={embed_server.url}", *args)


def test_github_step_summary_and_benchmark_files(pytester, run_suite, monkeypatch):
    summary = pytester.path / "summary.md"
    summary.write_text("earlier steps' text\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run_suite("--embed-model=minilm", "--embed-benchmark-dir=bench").assert_outcomes(passed=3)
    text = summary.read_text()
    assert text.startswith("earlier steps' text\n## Embedding regression tests (pytest-embedeval)")  # appended
    assert "### minilm on cpu-" in text and ": nothing failing" in text
    assert "| metric | baseline | measured | 95% CI | delta | tolerance | verdict | vs published |" in text
    assert "| latency_p50_ms (batch 1 x 128 tokens) | - |" in text
    smaller = json.loads((pytester.path / "bench" / "smaller-is-better.json").read_text())
    bigger = json.loads((pytester.path / "bench" / "bigger-is-better.json").read_text())
    # One series per figure: two shapes of one metric are two charts.
    assert {e["name"] for e in smaller} >= {"minilm latency_p50_ms (batch 1 x 128 tokens)",
                                            "minilm latency_p99_ms (batch 1 x 128 tokens)"}
    assert {e["name"] for e in bigger} == {"minilm throughput_tokens_per_s (batch 4 x 128 tokens, concurrency 2)",
                                           "minilm throughput_requests_per_s (batch 4 x 128 tokens, concurrency 2)"}
    assert all(e["unit"] and e["value"] > 0 for e in smaller + bigger)
    assert "minilm dimensions" not in {e["name"] for e in smaller + bigger}


def test_json_report_has_the_environment_and_junit_has_the_figures(pytester, run_suite):
    run_suite("--embed-model=minilm", "--embed-report=run.json", "--junitxml=junit.xml").assert_outcomes(passed=3)
    report = json.loads((pytester.path / "run.json").read_text())
    environment = report["environment"]
    assert environment["packages"]["sglang"] == "0.5.23" and environment["packages"]["mteb"].startswith("2.26")
    assert environment["plugin"] and environment["python"] and "gpus" in environment
    (model,) = report["models"]
    assert {"latency_p50_ms", "throughput_tokens_per_s", "dimensions"} <= {v["metric"] for v in model["verdicts"]}
    p50 = next(v for v in model["verdicts"] if v["metric"] == "latency_p50_ms")
    assert p50["interval"][0] <= p50["measured"] <= p50["interval"][1]
    assert (p50["shape"], p50["note"]) == ("batch 1 x 128 tokens", "12 requests after 2 warm-up")
    junit = (pytester.path / "junit.xml").read_text()
    assert '<property name="embedeval:latency_p50_ms (batch 1 x 128 tokens)" value="' in junit


def test_two_runs_side_by_side_as_the_articles_table_with_a_chart(pytester, run_suite, cls_pooled_minilm, capsys):
    run_suite("--embed-model=minilm", "--embed-report=a.json").assert_outcomes(passed=3)
    run_suite(f"--embed-model={cls_pooled_minilm}", "--embed-report=b.json").assert_outcomes(passed=3)
    chart = pytester.path / "chart.png"
    capsys.readouterr()  # drop what the inner runs printed
    assert embedeval(["table", str(pytester.path / "a.json"), str(pytester.path / "b.json"),
                      "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert "minilm [cpu-" in header and "minilm-cls [cpu-" in header
    for row in ("parameters", "context length", "dimensions", "Matryoshka", "instructions", "latency p50", "max throughput"):
        assert any(line.startswith(row) for line in out.splitlines()), row
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000


def test_xdist_workers_merge_into_one_report(pytester, run_suite):
    result = run_suite("--embed-model=minilm", "-n", "2", "--embed-report=merged.json")
    result.assert_outcomes(passed=3)
    (model,) = json.loads((pytester.path / "merged.json").read_text())["models"]
    tests = {v["test"].split("::")[1] for v in model["verdicts"] if v["test"]}
    assert tests == {"test_latency[minilm]", "test_throughput[minilm]", "test_dimensions[minilm]"}
    # The run's failed-request share is judged once, by the controller, over both workers' attempts.
    (share,) = [v for v in model["verdicts"] if v["test"] is None]
    assert share["metric"] == "failed_requests_percent" and model["requests"]["candidate"]["attempts"] > 0
    result.stdout.fnmatch_lines(["*embedeval: minilm on cpu-*", "latency_p50_ms *"])
