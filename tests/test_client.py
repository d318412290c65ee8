from types import SimpleNamespace

import numpy as np
import pytest

from pytest_embedeval.serve.client import BadEmbeddingResponse, vectors_from


def item(index, vector):
    return SimpleNamespace(index=index, embedding=vector)


def test_vectors_come_back_in_input_order_whatever_the_response_order():
    vectors = vectors_from([item(1, [0.0, 1.0]), item(0, [1.0, 0.0])], expected_count=2, expected_dim=2)
    assert vectors.dtype == np.float32
    assert vectors.tolist() == [[1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize(
    ("data", "count", "dim", "message"),
    [
        ([item(0, [1.0])], 2, None, "one vector per input"),
        ([item(0, [1.0]), item(0, [1.0])], 2, None, "indexes [0, 0]"),
        ([item(0, [1.0]), item(2, [1.0])], 2, None, "indexes [0, 2]"),
        ([item(0, [1.0, 2.0]), item(1, [1.0])], 2, None, "different lengths"),
        ([item(0, [1.0, 2.0])], 1, 3, "expected vectors of 3 dimensions, got 2"),
        ([item(0, [1.0]), item(1, [float("nan")])], 2, None, "NaN or inf in the vectors of inputs [1]"),
        ([item(0, [float("inf")])], 1, None, "NaN or inf"),
    ],
)
def test_a_wrong_response_is_refused_with_what_was_wrong(data, count, dim, message):
    with pytest.raises(BadEmbeddingResponse, match=message.replace("[", r"\[").replace("]", r"\]")):
        vectors_from(data, count, dim)


def test_the_deadline_covers_the_whole_request_not_each_read():
    import sys
    import time
    from pathlib import Path

    import httpx

    sys.path.insert(0, str(Path(__file__).parent))
    from hostile_standin import HostileServer

    from pytest_embedeval.serve.client import DeadlineTransport

    with HostileServer("trickle", delay=0.1) as standin:  # a stand-in: each byte 0.1 s after the last
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
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from hostile_standin import HostileServer

    from pytest_embedeval.serve.client import EmbeddingClient, EmbeddingRequestError

    with HostileServer("trickle", delay=0.1) as standin:  # a stand-in: each byte 0.1 s after the last
        client = EmbeddingClient(standin.url, "m", timeout=0.5, max_retries=1)
        with pytest.raises(EmbeddingRequestError):
            client.embed(["a"])
        assert (client.attempts, client.failed_attempts) == (2, 2)
        client.close()
