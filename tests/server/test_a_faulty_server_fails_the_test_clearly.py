"""Faults, as users meet them: every bad answer of a server ends in a clear error, never in a pass, and its API key
shows nowhere.

Bad answers come from the STAND-IN server (tests/support/standin.py), because no real server can be made
to send NaN or half a response on purpose; the inner pytest points at it with --embed-url, as a user
would point at their own server.
"""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest

from pytest_embedeval.serve.client import EmbeddingClient, EmbeddingRequestError
from pytest_embedeval.serve.sglang import SGLangServer
from pytest_embedeval.facts.registry import Registry

from support.standin import DIMENSIONS, StandinServer, unit_vector
from support.suites import THREE_TEXTS


SECRET = f"sk-embedeval-test-{uuid.uuid4().hex}"


def run_against(pytester, server: StandinServer, *args: str):
    """The inner pytest against the stand-in, and how long it took."""
    started = time.monotonic()
    result = pytester.runpytest(f"--embed-url={server.url}", "--embed-model=minilm", *args)
    return result, time.monotonic() - started


# -- wrong answers -------------------------------------------------------------------------------------

WRONG_ANSWERS = [
    ("nan", {}, "*BadEmbeddingResponse: NaN or inf in the vectors of inputs [[]1[]]"),
    ("inf", {"bad_inputs": (0, 2)}, "*BadEmbeddingResponse: NaN or inf in the vectors of inputs [[]0, 2[]]"),
    ("fewer-vectors", {}, "*BadEmbeddingResponse: 2 vectors for 3 inputs: expected one vector per input*"),
    ("more-vectors", {}, "*BadEmbeddingResponse: 4 vectors for 3 inputs; indexes out of range [[]3[]]*"),
    ("duplicate-index", {}, "*BadEmbeddingResponse: duplicate indexes [[]0[]]: *got indexes [[]0, 0, 1[]]"),
    ("non-json", {}, "*BadEmbeddingResponse: the server answered HTTP 200 with a body that is not JSON "
                     "(text/html, 50 bytes): '<html><body><h1>502 Bad Gateway*"),
    ("empty-body", {}, "*BadEmbeddingResponse: the server answered HTTP 200 (application/json) with an empty body*"),
]


@pytest.mark.parametrize(("fault", "options", "says"), WRONG_ANSWERS, ids=[fault for fault, _, _ in WRONG_ANSWERS])
def test_a_wrong_answer_fails_the_test_with_a_sentence_naming_it(pytester, standin, fault, options, says):
    server = standin(fault, **options)
    pytester.makepyfile(THREE_TEXTS)
    result, seconds = run_against(pytester, server)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([says])
    assert server.embedding_requests == 1  # a wrong answer is refused, not retried until it looks right
    assert seconds < 30


def test_vectors_sent_out_of_order_are_put_back_in_input_order(pytester, standin):
    server = standin("shuffled")
    pytester.makepyfile("""
        import numpy as np

        def test_batch_equals_one_by_one(embed_client):
            texts = ["first text", "second text", "third text"]
            batch = embed_client.embed(texts)
            alone = np.vstack([embed_client.embed(text) for text in texts])  # one vector: no order to get wrong
            assert np.array_equal(batch, alone)
    """)
    result, _ = run_against(pytester, server)
    result.assert_outcomes(passed=1)
    assert server.embedding_requests == 4
    texts = ["first text", "second text", "third text"]
    vectors = EmbeddingClient(server.url, "minilm").embed(texts)
    assert np.array_equal(vectors, np.vstack([unit_vector(text) for text in texts]))


def test_vectors_of_the_wrong_dimension_fail_the_test(pytester, standin, pytestconfig):
    server = standin("wrong-dimension")
    pytester.makepyfile(THREE_TEXTS)
    result, _ = run_against(pytester, server)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*BadEmbeddingResponse: expected vectors of {DIMENSIONS} dimensions, got 383"])


def test_the_client_refuses_the_wrong_dimension_it_was_told(standin):
    server = standin("wrong-dimension")
    with pytest.raises(EmbeddingRequestError, match=f"expected vectors of {DIMENSIONS} dimensions, got 383"):
        EmbeddingClient(server.url, "minilm", dimensions=DIMENSIONS).embed(["first", "second"])


# -- server errors and retries -------------------------------------------------------------------------

def test_server_errors_hidden_by_retries_still_fail_the_test_with_the_failed_share(pytester, standin):
    server = standin("server-errors", failures=2)
    pytester.makepyfile("""
        def test_embeds_after_two_failed_attempts(embed_client):
            assert embed_client.embed(["first text", "second text"]).shape == (2, 384)
            print("failed attempts:", embed_client.failed_attempts, "of", embed_client.attempts)
            assert embed_client.failed_attempts == 2 and embed_client.attempts == 3
    """)
    result, seconds = run_against(pytester, server, "-s")
    # The body got its vectors on the third attempt, but a server that fails 2 of 3 attempts is not healthy.
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*failed attempts: 2 of 3*",
                                 "failed_requests_percent regressed: measured 66.67 %, baseline 0 %*",
                                 "*2 of this test's 3 request attempts got a server error or no answer*"])
    assert server.embedding_requests == 3
    assert seconds < 30  # two back-offs of about 0.5 s and 1 s


def test_server_errors_beyond_the_retry_budget_fail_naming_status_and_attempts(pytester, standin):
    server = standin("server-errors", failures=3)
    pytester.makepyfile(THREE_TEXTS)
    result, seconds = run_against(pytester, server)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*EmbeddingRequestError: http://127.0.0.1:*/v1/embeddings answered HTTP 500 on every one of 3 attempts "
        "(2 retries allowed): *stand-in: injected internal error (request 3)*",
    ])
    assert server.embedding_requests == 3
    assert seconds < 30


@pytest.mark.parametrize(("failures", "after", "says"), [
    (10 ** 6, 0, "no measurement: 1 of 1 requests failed; first errors: ValueError: HTTP 500: *"),
    (5, 1, "no measurement: 5 of 10 requests failed; first errors: ValueError: HTTP 500: *"),
], ids=["at-warm-up", "while-measuring"])
def test_a_marker_measuring_failed_requests_gives_no_verdict(pytester, standin, failures, after, says):
    server = standin("server-errors", failures=failures, after=after)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.embed_latency(requests=10, warmup=1)
        def test_latency():
            pass
    """)
    result, _ = run_against(pytester, server, "--embed-report=report.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*@pytest.mark.embed_latency: {says}"])
    assert "latency_p50_ms" not in result.stdout.str()  # no figure was judged, so none is shown
    report = json.loads((pytester.path / "report.json").read_text())
    assert [(model["model"], model["verdicts"]) for model in report["models"]] == [("minilm", [])], report
    assert server.embedding_requests == 1 + (10 if after else 0)  # never retried: a retry would hide the failure


# -- a server that never answers -----------------------------------------------------------------------

def test_a_hanging_server_fails_the_call_within_a_bounded_time(standin):
    server = standin("hang")
    client = EmbeddingClient(server.url, "minilm", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(EmbeddingRequestError, match=r"no answer from http://127.0.0.1:\d+/v1/embeddings within "
                                                    r"the 1 s timeout on every one of 3 attempts"):
        client.embed(["first text"])
    # 3 attempts of 1 s and back-offs of at most 0.5 s and 1 s: about 4.5 s, where a hang never ends.
    # The bound leaves a busy machine room.
    assert time.monotonic() - started < 15
    assert client.failed_attempts == 3 and server.embedding_requests == 3


def test_a_hanging_server_fails_the_test_within_the_request_timeout(pytester, standin, pytestconfig):
    server = standin("hang")
    pytester.makepyfile(THREE_TEXTS)
    result, seconds = run_against(pytester, server, "--embed-request-timeout=1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*EmbeddingRequestError: no answer from * within the 1 s timeout on every one of 3*"])
    assert seconds < 30


# -- the API key ---------------------------------------------------------------------------------------

KEYED_SUITE = """
def test_the_key_is_sent(embed_client):
    assert embed_client.embed(["only one text"]).shape == (1, 384)

def test_fails_on_purpose(embed_client, embed_metric):
    embed_metric("latency_p50_ms", 1.0)  # so that the JSON report has this model's run in it
    embed_client.embed(["first text", "second text", "third text"])  # NaN in the second: fails
"""


@pytest.mark.parametrize("given_by", ["option", "environment"])
def test_the_api_key_reaches_the_server_and_appears_in_no_output_or_report(pytester, standin, monkeypatch, given_by):
    server = standin("nan", api_key=SECRET)
    pytester.makepyfile(KEYED_SUITE)
    args = ["-v", "-rA", "-l", "--tb=long", "--junitxml=junit.xml", "--embed-report=report.json"]
    if given_by == "option":
        args.append(f"--embed-api-key={SECRET}")
    else:
        monkeypatch.setenv("EMBEDEVAL_API_KEY", SECRET)
    result, _ = run_against(pytester, server, *args)
    result.assert_outcomes(passed=1, failed=1)
    assert server.unauthorized_requests == 0
    assert set(server.seen_authorization) == {f"Bearer {SECRET}"}
    output = result.stdout.str() + result.stderr.str()
    assert "NaN or inf in the vectors of inputs [1]" in output
    for name, text in [("output", output), ("JUnit XML", (pytester.path / "junit.xml").read_text()),
                       ("JSON report", (pytester.path / "report.json").read_text())]:
        assert SECRET not in text, f"the API key is in the {name}"


def test_the_api_key_is_not_in_the_fixture_values_a_failure_shows(pytester, standin):
    server = standin("nan", api_key=SECRET)
    pytester.makepyfile("""
        def test_fails_on_purpose(embed_server, embed_client):
            embed_client.embed(["first text", "second text", "third text"])  # NaN in the second: fails
    """)
    result, _ = run_against(pytester, server, f"--embed-api-key={SECRET}")  # pytest's default traceback
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["embed_server = RemoteServer(*"])  # the test's arguments were shown
    assert SECRET not in result.stdout.str() + result.stderr.str()
    assert SECRET not in repr(SGLangServer(Registry().resolve("minilm"), port=1, api_key=SECRET))


def test_a_wrong_api_key_stops_the_run_with_what_to_check_and_is_not_printed(pytester, standin):
    server = standin(api_key=SECRET)
    wrong = f"sk-wrong-{uuid.uuid4().hex}"
    pytester.makepyfile(THREE_TEXTS)
    result, _ = run_against(pytester, server, f"--embed-api-key={wrong}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*GET /v1/models answered 401*is --embed-api-key right*"])
    assert wrong not in result.stdout.str() + result.stderr.str()
