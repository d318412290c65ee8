"""A load whose tokens the server miscounted, or whose requests failed, gives no figure, and says why."""

import pytest

from pytest_embedeval.measure import markers
from pytest_embedeval.measure.markers.target import check_tokens
from pytest_embedeval.measure.load import LoadResult


def test_a_server_that_miscounts_tokens_gives_no_figure():
    result = LoadResult(concurrency=1, batch_size=2, latencies=[0.01] * 3, prompt_tokens=3 * 2 * 127)
    with pytest.raises(markers.MeasurementError, match="server counted 762 prompt tokens where the model's tokenizer counts 768"):
        check_tokens(result, 128)


def test_failed_requests_give_no_figure():
    result = LoadResult(concurrency=1, batch_size=1, latencies=[0.01], failures=2, errors=["HTTP 500: boom"])
    assert result.failure_text() == "2 of 3 requests failed; first errors: HTTP 500: boom"
