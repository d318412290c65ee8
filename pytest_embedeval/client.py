"""The client tests get: the real ``openai`` client, plus an ``embed`` that checks what came back."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import openai


class BadEmbeddingResponse(RuntimeError):
    """The server answered, but not with one finite vector per input, in order."""


class EmbeddingClient(openai.OpenAI):
    """An ``openai.OpenAI`` bound to one server and model.

    ``client.embeddings.create(...)`` works as usual; ``client.embed(texts)`` returns a checked
    ``(len(texts), dimensions)`` float32 array.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 120.0,
                 max_retries: int = 2):
        super().__init__(base_url=f"{base_url.rstrip('/')}/v1", api_key=api_key or "no-key",
                         timeout=timeout, max_retries=max_retries)
        self.model = model

    def embed(self, texts: Sequence[str] | str, *, dimensions: int | None = None) -> np.ndarray:
        batch = [texts] if isinstance(texts, str) else list(texts)
        extra = {"dimensions": dimensions} if dimensions else {}
        response = self.embeddings.create(model=self.model, input=batch, **extra)
        return vectors_from(response.data, len(batch), dimensions)


def vectors_from(data: Sequence, expected_count: int, expected_dim: int | None = None) -> np.ndarray:
    """Order the response's vectors by index, refusing anything a correct server would not send."""
    indexes = sorted(item.index for item in data)
    if indexes != list(range(expected_count)):
        raise BadEmbeddingResponse(
            f"expected one vector per input with indexes 0..{expected_count - 1}, got indexes {indexes[:10]}"
            + ("..." if len(indexes) > 10 else "")
        )
    ordered = sorted(data, key=lambda item: item.index)
    lengths = {len(item.embedding) for item in ordered}
    if len(lengths) != 1:
        raise BadEmbeddingResponse(f"vectors of different lengths in one response: {sorted(lengths)}")
    vectors = np.asarray([item.embedding for item in ordered], dtype=np.float32)
    if expected_dim and vectors.shape[1] != expected_dim:
        raise BadEmbeddingResponse(f"expected vectors of {expected_dim} dimensions, got {vectors.shape[1]}")
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        raise BadEmbeddingResponse(f"NaN or inf in the vectors of inputs {bad[:10].tolist()}")
    return vectors
