"""Users' suites that the tests of both lanes run with an inner pytest: the same files, whatever the server."""

USER_SUITE = """
def test_reference(embed_check_reference):
    embed_check_reference()

def test_dimensions(embed_client, embed_model):
    assert embed_client.embed(["hello", "你好"]).shape == (2, embed_model.dimensions)

def test_memory(embed_server_memory):
    assert embed_server_memory() > 0
"""

THREE_TEXTS = """
def test_embeds_three_texts(embed_client):
    embed_client.embed(["first text", "second text", "third text"])
"""

# Two figures of the server's vectors, each recorded with embed_metric: what a baseline file holds.
FIGURES_SUITE = """
def test_dimensions(embed_client, embed_metric):
    embed_metric("dimensions", embed_client.embed(["a text"]).shape[1])

def test_reference(embed_check_reference, embed_metric):
    embed_metric("reference_min_cosine", float(embed_check_reference().min()))
"""

# A marker of each timed kind beside a plain figure: what the reports show.
MARKED_SUITE = """
import pytest

@pytest.mark.embed_latency(requests=12, warmup=2)
def test_latency():
    pass

@pytest.mark.embed_throughput(batch_size=4, concurrency=2, requests=4)
def test_throughput():
    pass

def test_dimensions(embed_client, embed_metric):
    embed_metric("dimensions", embed_client.embed(["x"]).shape[1])
"""


def paired_suite(requests: int) -> str:
    """A suite that pairs: latency in alternation and the two servers' vectors. Its 25% band asks whether the pair is
    measured and reported, not whether two servers are equal to 5% on a noisy 2-core machine."""
    return f"""
import pytest

@pytest.mark.embed_latency(requests={requests}, warmup=5, paired_tolerance="25%")
def test_latency():
    pass

@pytest.mark.embed_drift
def test_drift():
    pass
"""
