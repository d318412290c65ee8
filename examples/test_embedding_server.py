"""An example regression suite, the kind a team keeps next to its embedding deployment.

    pytest --embed-model=minilm examples/          # any machine: SGLang on the CPU
    pytest --embed-model=qwen3-4b examples/        # a GPU runner
"""


def test_served_vectors_match_the_models_reference(embed_check_reference):
    # Same texts through the server and through sentence-transformers on the same files.
    embed_check_reference()


def test_vectors_have_the_models_dimensions(embed_client, embed_model):
    vectors = embed_client.embed(["a short English sentence", "一个简短的中文句子"])
    assert vectors.shape == (2, embed_model.dimensions)


def test_server_memory_is_measured(embed_server_memory, record_property):
    used = embed_server_memory()
    record_property("server_memory_bytes", used)
    assert used > 0
