"""One judge: every figure is judged once, by the run session, and nothing that is not a number passes.

Each case is a user's suite against a server that misbehaves on purpose. The bad answers come from the
STAND-IN server (tests/support/standin.py): no real server can be made to return zeros, fail a fifth of
its requests or cut its vectors short on cue.
"""

import json

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def against(pytester, server, *args, model="minilm"):
    return pytester.runpytest(f"--embed-url={server.url}", f"--embed-model={model}", *args)


def test_zero_vectors_fail_a_suite_with_only_an_accuracy_marker(pytester, standin):
    server = standin("zeros")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.embed_accuracy(task="EmbedEvalSTS-en")
        def test_accuracy():
            pass
    """)
    result = against(pytester, server)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.embed_accuracy: no measurement: BadEmbeddingResponse: "
                                 "* vectors are all zeros or one repeated value, which no model returns*"])
    assert "nan points" not in result.stdout.str()


def test_a_figure_that_is_not_a_number_fails_and_is_never_written(pytester, standin):
    server = standin()
    pytester.makepyfile("""
        def test_nan(embed_metric):
            embed_metric("drift_min_cosine", float("nan"))
    """)
    result = against(pytester, server, "--embed-update-baselines")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["drift_min_cosine is not a number (measured nan): likely cause: the server "
                                 "returned vectors of zeros or NaN*",
                                 "drift_min_cosine*NOT A NUMBER",
                                 "drift_min_cosine*refused: not a number"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    stored = pytester.path / "baselines" / "minilm.toml"
    assert not stored.exists() or "nan" not in stored.read_text()


def test_a_server_failing_a_fifth_of_its_requests_fails_though_retries_hide_it(pytester, standin):
    server = standin("some-errors", every=5)
    pytester.makepyfile("""
        def test_vectors(embed_client):
            for i in range(12):
                assert embed_client.embed([f"text {i}"]).shape == (1, 384)
    """)
    result = against(pytester, server, "--embed-report=report.json")
    result.assert_outcomes(failed=1)
    # Attempts 5 and 10 got HTTP 500, each retried: 12 vectors took 14 attempts.
    result.stdout.fnmatch_lines(["failed_requests_percent regressed: measured 14.29 %, baseline 0 %*",
                                 "*2 of this test's 14 request attempts got a server error or no answer (the client "
                                 "retried them)*"])
    (model,) = json.loads((pytester.path / "report.json").read_text())["models"]
    assert model["requests"] == {"candidate": {"attempts": 14, "failed": 2}}
    shares = [v for v in model["verdicts"] if v["metric"] == "failed_requests_percent"]
    share = pytest.approx(100 * 2 / 14)
    # The test's share, then the run's: the same attempts here, both against the built-in 0.
    assert [(v["test"] is None, v["measured"], v["outcome"]) for v in shares] == [
        (False, share, "regressed"), (True, share, "regressed")]


def test_a_healthy_server_shows_a_failed_share_of_zero(pytester, standin):
    server = standin()
    pytester.makepyfile("def test_vectors(embed_client):\n    embed_client.embed(['a', 'b'])\n")
    result = against(pytester, server)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["failed_requests_percent  0 % (built in, every server)  0 %*pass"])


OURS = """
[tool.embedeval.models.ours]
model = "acme/ours"
dimensions = {dimensions}
max_tokens = 256
pooling = "mean"
"""


def test_truncated_vectors_name_both_shapes_in_the_drift_check(pytester, standin):
    pytester.makepyfile("import pytest\n\n@pytest.mark.embed_drift\ndef test_drift():\n    pass\n")
    pytester.makefile(".toml", pyproject=OURS.format(dimensions=384))
    against(pytester, standin(), "--embed-update-baselines", model="ours").assert_outcomes(passed=1)
    # The deployment now serves 128 numbers a vector, and the facts were changed to let the client accept them.
    pytester.makefile(".toml", pyproject=OURS.format(dimensions=128))
    result = against(pytester, standin("truncated", dimensions=128), model="ours")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.embed_drift: no measurement: drift: served vectors are 12 x 128, "
                                 "stored vectors are 12 x 384: the vector length changed. If the new size is "
                                 "intended, re-record the probe vectors with --embed-update-baselines*"])
    assert "broadcast" not in result.stdout.str()


BASELINE_100_MS = """
model = "minilm"
[profiles.published]
hardware = "any"
engine = "any"
dtype = "any"
source = "measured"
date = "2026-12-01"
[profiles.published.metrics]
latency_p50_ms = 100.0
"""


@pytest.mark.parametrize("measured, interval, outcome, action", [
    (120.0, (110.0, 130.0), "passed", "new"),  # the interval reaches into the 15% band: a pass, and written
    (150.0, (140.0, 160.0), "failed", "refused: regressed"),  # wholly beyond it: failed, and kept out
])
def test_the_update_writes_what_the_test_passed_and_refuses_what_it_failed(pytester, standin, measured, interval,
                                                                          outcome, action):
    (pytester.path / "baselines").mkdir()
    (pytester.path / "baselines" / "minilm.toml").write_text(BASELINE_100_MS)
    pytester.makepyfile(f"""
        def test_latency(embed_metric):
            embed_metric("latency_p50_ms", {measured}, interval={interval})
    """)
    result = against(pytester, standin(), "--embed-update-baselines")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines([f"latency_p50_ms *{action}*"])
    assert result.ret == (pytest.ExitCode.OK if outcome == "passed" else pytest.ExitCode.TESTS_FAILED)
    assert (f"latency_p50_ms = {measured}" in (pytester.path / "baselines" / "minilm.toml").read_text()) == (
        outcome == "passed")
