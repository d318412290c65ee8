"""The drift marker's probe texts, whose served vectors are compared with those stored with the baselines.

A numerical regression (a kernel, a dtype, the pooling, a prefix cache, padding) shows here in
seconds, long before a benchmark score moves.
"""

from __future__ import annotations

import numpy as np


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


def worst(texts: list[str], cosines: np.ndarray, count: int = 3) -> str:
    """The texts that moved most, for the verdict's note."""
    order = np.argsort(cosines)[:count]
    shown = [f"{cosines[i]:.6f} {texts[i][:40]!r}" for i in order]
    return "worst: " + "; ".join(shown)
