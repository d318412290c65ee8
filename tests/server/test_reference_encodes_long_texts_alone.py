"""The reference model, loaded in process: texts longer than its window are encoded alone, and all come back in
input order, in float32."""

import numpy as np

from pytest_embedeval.measure.reference import ReferenceModel
from pytest_embedeval.facts.registry import Registry
from pytest_embedeval.facts.vector_math import row_cosines as cosines


def test_long_texts_are_encoded_alone_and_come_back_in_input_order():
    reference = ReferenceModel(Registry().resolve("minilm"), device="cpu")
    long = "Embedding servers turn text into vectors. " * 40  # over 256 tokens: its own batch
    texts = ["hello world", long, "今天天气很好", long[:-10]]
    one_by_one = np.stack([reference.encoder.encode([t], normalize_embeddings=True)[0] for t in texts])
    assert cosines(reference.encode(texts), one_by_one).min() > 0.99999
    assert reference.placement.device == "cpu" and reference.encode(texts).dtype == np.float32
