"""An example regression suite, the kind a team keeps next to its embedding deployment.

    pytest --embed-model=minilm examples/                          # any machine: SGLang on the CPU
    pytest --embed-model=qwen3-4b examples/                        # a GPU runner
    pytest --embed-model=minilm examples/ --embed-update-baselines # record this machine's baselines
"""

import pytest


def test_served_vectors_match_the_models_reference(embed_check_reference, embed_metric):
    # Same texts through the server and through sentence-transformers on the same files.
    cosines = embed_check_reference()
    embed_metric("reference_min_cosine", float(cosines.min()))


def test_vectors_have_the_models_dimensions(embed_client, embed_model, embed_metric):
    vectors = embed_client.embed(["a short English sentence", "一个简短的中文句子"])
    assert vectors.shape == (2, embed_model.dimensions)
    embed_metric("dimensions", vectors.shape[1])


@pytest.mark.embed_drift
def test_no_drift_from_the_recorded_vectors():
    """Probe texts against vectors stored with the baselines; alone and inside a batch."""


@pytest.mark.embed_accuracy(task="embedeval")
def test_accuracy_on_the_shipped_tasks():
    """STS (en, zh) and retrieval (en, zh) through mteb; on a GPU runner add task="cmteb-sts"."""


@pytest.mark.embed_latency(batch_size=1, tokens=128)
def test_latency_at_batch_1_and_128_tokens():
    """The comparison article's latency figure."""


@pytest.mark.embed_throughput(batch_size=8, tokens=128, sweep=True)
def test_max_throughput():
    """The article's "max throughput": concurrency rises until tokens/s stops growing."""


@pytest.mark.embed_memory
def test_server_memory():
    """GPU memory per process through NVML (host PSS on a CPU); skipped under --embed-url."""
