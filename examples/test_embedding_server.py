"""An example regression suite, the kind a team keeps next to its embedding deployment.

    pytest --embed-model=minilm examples/                          # any machine: SGLang on the CPU
    pytest --embed-model=qwen3-4b examples/                        # a GPU runner
    pytest --embed-model=minilm examples/ --embed-update-baselines # record this machine's baselines
"""


def test_served_vectors_match_the_models_reference(embed_check_reference, embed_metric):
    # Same texts through the server and through sentence-transformers on the same files.
    cosines = embed_check_reference()
    embed_metric("reference_min_cosine", float(cosines.min()))


def test_vectors_have_the_models_dimensions(embed_client, embed_model, embed_metric):
    vectors = embed_client.embed(["a short English sentence", "一个简短的中文句子"])
    assert vectors.shape == (2, embed_model.dimensions)
    embed_metric("dimensions", vectors.shape[1])


def test_server_memory(embed_server_memory, embed_metric):
    embed_metric("host_memory_bytes", embed_server_memory())
