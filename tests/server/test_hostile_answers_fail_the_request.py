"""Hostile answers no real SGLang gives on purpose, from the STAND-IN server (tests/support/standin.py): a dtype that
would leave the store, an answer trickled past its deadline, a malformed body. Each fails its request, with the
reason, within the request's deadline."""

import time

import pytest

from pytest_embedeval.serve.client import EmbeddingClient, EmbeddingRequestError
from pytest_embedeval.serve.remote import RemoteServer, UnsafeServerReport
from pytest_embedeval.measure.load import run_load
from pytest_embedeval.facts.registry import Registry

from support.standin import StandinServer


def test_a_dtype_a_remote_server_reports_cannot_become_a_path():
    with StandinServer("bad-dtype") as standin:
        with pytest.raises(UnsafeServerReport) as info:
            RemoteServer(standin.url, Registry().resolve("minilm")).start()
    message = str(info.value)
    assert "'/../../x'" in message and "dtype reported by --embed-url" in message and "/get_server_info" in message
    # Its GET routes answer correctly: a plain dtype passes.
    with StandinServer("json-list", server_info={"version": "stand-in", "dtype": "float32"}) as standin:
        assert RemoteServer(standin.url, Registry().resolve("minilm")).start().dtype == "float32"


# -- a total deadline per request --------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["trickle", "trickle-headers"])
def test_a_trickled_answer_fails_the_request_at_its_deadline(mode):
    with StandinServer(mode, delay=0.2, dimensions=4) as standin:
        client = EmbeddingClient(standin.url, "m", timeout=1.0, max_retries=0)
        started = time.monotonic()
        with pytest.raises(EmbeddingRequestError) as info:
            client.embed(["a"])
        seconds = time.monotonic() - started
    # Every byte arrives within the 1 s timeout, so a per-read timeout never fires: the whole answer
    # (over 150 bytes at 0.2 s each) takes 33 s. The margin is for a machine busy with SGLang.
    assert seconds < 15, seconds
    assert "within the 1 s timeout on 1 attempt" in str(info.value)


def test_the_deadline_covers_the_whole_request_not_each_read():
    import time

    import httpx

    from pytest_embedeval.serve.client import DeadlineTransport

    with StandinServer("trickle", delay=0.1, dimensions=4) as standin:  # a stand-in: each byte 0.1 s after the last
        with httpx.Client(transport=DeadlineTransport(0.8), timeout=0.8) as http:
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                http.post(f"{standin.url}/v1/embeddings", json={"input": ["a"]})
            # About 0.8 s; the bound is half the 16 s the whole body takes, so a busy machine cannot fail it.
            assert time.monotonic() - started < 8
        with httpx.Client(transport=DeadlineTransport(60), timeout=60) as http:
            started = time.monotonic()
            http.get(f"{standin.url}/v1/models").raise_for_status()  # a prompt answer is untouched
            http.get(f"{standin.url}/v1/models").raise_for_status()  # and so is the next, on the same connection


def test_an_answer_whose_body_trickles_past_the_deadline_is_a_failed_attempt():
    # Its status line said 200, but no answer arrived: each retry is a failed attempt, as a timeout is.
    from pytest_embedeval.serve.client import EmbeddingClient, EmbeddingRequestError

    with StandinServer("trickle", delay=0.1, dimensions=4) as standin:  # a stand-in: each byte 0.1 s after the last
        client = EmbeddingClient(standin.url, "m", timeout=0.5, max_retries=1)
        with pytest.raises(EmbeddingRequestError):
            client.embed(["a"])
        assert (client.attempts, client.failed_attempts) == (2, 2)
        client.close()


def test_the_load_generator_ends_a_trickled_request_at_its_deadline():
    with StandinServer("trickle", delay=0.2, dimensions=4) as standin:
        started = time.monotonic()
        result = run_load(standin.url, "m", [["a"]] * 2, concurrency=2, timeout=1.0)
    assert time.monotonic() - started < 15  # two requests side by side, 1 s each; the answer takes 33 s
    assert (result.requests, result.failures) == (0, 2)
    assert "no complete answer within the 1 s deadline" in result.errors[0]


# -- malformed bodies --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("json-list", "body is a JSON list, not an object with 'data'"),
        ("usage-null", "usage.prompt_tokens is None"),
        ("tokens-text", "usage.prompt_tokens is 'many'"),
        ("null-vectors", "item 0 has no vector of numbers"),
        ("null-in-vector", "item 0 has no vector of numbers"),
    ],
)
def test_a_malformed_body_is_a_failed_request_with_the_reason(mode, reason):
    with StandinServer(mode, dimensions=4) as standin:
        result = run_load(standin.url, "m", [["a", "b"]] * 3, concurrency=2, timeout=5.0)
    assert (result.requests, result.failures, result.prompt_tokens) == (0, 3, 0)
    assert reason in result.errors[0], result.errors
    assert reason in result.failure_text()
