"""A server's response is checked before its vectors are used: put back in input order, or refused with what was
wrong."""

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
