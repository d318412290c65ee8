"""Embedding drift: the served vectors of a fixed probe set against vectors stored with the baselines.

A numerical regression (a kernel, a dtype, the pooling, a prefix cache, padding) shows here in
seconds, long before a benchmark score moves. Vectors are stored as float16 (.npz): 2 bytes a
dimension, and float16 rounding (~1e-3 relative) costs far less than the 0.999 cosine tolerance.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .baselines import write_bytes_atomically

# Shared prefixes on purpose: a server that reuses cached prefix states across requests (SGLang's
# radix cache on an encoder) gets the second text of each pair wrong.
PROBES = (
    "The cat sat on the mat.",
    "The cat sat on the mat and purred.",
    "How do I reset my password?",
    "How do I reset my password if I lost my phone?",
    "Embedding models map text to vectors for semantic search.",
    "Quarterly revenue rose 12% on strong cloud demand.",
    "def add(a, b):\n    return a + b",
    "今天天气很好，我们去公园散步吧。",
    "今天天气很好，我们去公园散步吧，顺便买点水果。",
    "向量检索依赖嵌入模型的稳定性。",
    "北京是中国的首都。",
    "a",
)


@dataclass
class VectorStore:
    """``<baselines>/vectors/<model>/<profile>.npz``: the probe texts and their vectors."""

    directory: Path

    def path(self, model: str, profile: str) -> Path:
        return Path(self.directory) / "vectors" / model / f"{profile}.npz"

    def load(self, model: str, profile: str) -> tuple[list[str], np.ndarray] | None:
        path = self.path(model, profile)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            return [str(t) for t in data["texts"]], data["vectors"].astype(np.float32)

    def save(self, model: str, profile: str, texts: list[str], vectors: np.ndarray) -> Path:
        path = self.path(model, profile)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, texts=np.array(texts), vectors=vectors.astype(np.float16))
        write_bytes_atomically(path, buffer.getvalue())
        return path


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def worst(texts: list[str], cosines: np.ndarray, count: int = 3) -> str:
    """The texts that moved most, for the verdict's note."""
    order = np.argsort(cosines)[:count]
    shown = [f"{cosines[i]:.6f} {texts[i][:40]!r}" for i in order]
    return "worst: " + "; ".join(shown)
