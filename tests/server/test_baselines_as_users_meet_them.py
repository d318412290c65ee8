"""Baselines as users meet them: record, update, compare, refuse, and the CLI on the same files."""

import json

import pytest

from pytest_embedeval.cli import main as embedeval

from support.suites import FIGURES_SUITE


@pytest.fixture
def run_suite(pytester, embed_server):
    pytester.makepyfile(FIGURES_SUITE)

    def run(*args):
        return pytester.runpytest(f"--embed-url={embed_server.url}", "--embed-model=minilm", *args)

    return run


def only_profile(pytester):
    text = (pytester.path / "baselines" / "minilm.toml").read_text()
    return text, [line for line in text.splitlines() if line.startswith("[profiles.") and "metrics" not in line]


def test_update_writes_this_hardwares_profile_then_the_next_run_compares_against_it(pytester, run_suite):
    first = run_suite("--embed-update-baselines")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["*embedeval: minilm on cpu-* / sglang / float32*",
                                "*baseline update for minilm*", "dimensions*-*384 dims*new"])
    text, profiles = only_profile(pytester)
    assert len(profiles) == 1 and "-sglang-float32]" in profiles[0]
    assert 'source = "measured"' in text and "dimensions = 384" in text

    second = run_suite()
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(["dimensions*384 dims (any-sglang-float32, measured)*384 dims*+0*0*pass"])


def test_a_doctored_baseline_fails_the_matching_test_with_the_whole_story(pytester, run_suite):
    run_suite("--embed-update-baselines").assert_outcomes(passed=2)
    path = pytester.path / "baselines" / "minilm.toml"
    path.write_text(path.read_text().replace("dimensions = 384", "dimensions = 383"))
    result = run_suite()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*test_dimensions*",
        "dimensions regressed: measured 384 dims, baseline 383 dims (+1, tolerance 0; profile 'any-*', source measured)",
        "metric     dimensions",
        "baseline   383 dims",
        "measured   384 dims",
        "delta      +1",
        "tolerance  0",
        "verdict    regressed",
    ])
    result.stdout.fnmatch_lines(["dimensions*383 dims*384 dims*+1*0*REGRESSED"])  # the summary table

    # the update command will not make the regression the new normal ...
    before = path.read_text()
    refused = run_suite("--embed-update-baselines")
    assert refused.ret == pytest.ExitCode.TESTS_FAILED
    refused.stdout.fnmatch_lines(["dimensions*383 dims*384 dims*+1*refused: regressed",
                                  "refused to write regressed values for dimensions*--embed-accept-regressions*"])
    assert path.read_text() == before
    # ... unless told to
    accepted = run_suite("--embed-update-baselines", "--embed-accept-regressions")
    accepted.assert_outcomes(passed=2)
    assert "dimensions = 384" in path.read_text()


def test_strict_mode_fails_metrics_without_a_baseline(run_suite):
    lenient = run_suite("-rA")
    lenient.assert_outcomes(passed=2)
    lenient.stdout.fnmatch_lines(["dimensions*-*384 dims*-*-*no baseline"])
    strict = run_suite("--embed-strict")
    strict.assert_outcomes(failed=2)
    strict.stdout.fnmatch_lines(["dimensions: measured 384 dims; no baseline for this figure's identity (cpu-*)"])


def test_a_misspelled_metric_fails_its_test_listing_the_known_ones(pytester, embed_server):
    pytester.makepyfile("def test_x(embed_metric):\n    embed_metric('latency_p50', 3.0)\n")
    result = pytester.runpytest(f"--embed-url={embed_server.url}", "--embed-model=minilm")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*embed_metric('latency_p50'): unknown metric 'latency_p50'; known: *latency_p50_ms*"])


def test_the_json_report_feeds_the_cli(pytester, run_suite, capsys):
    report = pytester.path / "run.json"
    run_suite(f"--embed-report={report}").assert_outcomes(passed=2)
    data = json.loads(report.read_text())
    (model,) = data["models"]
    assert model["model"] == "minilm" and model["profile"]["engine"] == "sglang"
    assert {v["metric"]: v["outcome"] for v in model["verdicts"]} == {
        "dimensions": "no baseline", "reference_min_cosine": "no baseline",
        "failed_requests_percent": "pass"}  # the run's share of failed request attempts, against a built-in 0

    assert embedeval(["report", str(report), "--markdown"]) == 0
    assert "| dimensions | - | 384 dims | - | - | - | no baseline |  |" in capsys.readouterr().out

    store = pytester.path / "store"
    assert embedeval(["baselines", "update", str(report), "--dir", str(store)]) == 0
    assert "dimensions            -    384 dims" in capsys.readouterr().out
    assert embedeval(["baselines", "show", "minilm", "--dir", str(store)]) == 0
    out = capsys.readouterr().out
    assert "any-sglang-float32 [measured, any]" in out and "384 dims" in out  # shapes: on any hardware
