"""Vector arithmetic that the client, the drift marker and the in-process reference check share: one rule each."""

from __future__ import annotations

import numpy as np

FULL_PRECISION = ("float32", "float", "fp32")


def is_half_precision(dtype: str) -> bool:
    """fp16, bf16 and "auto" (which a GPU server resolves to half) round every layer; fp32 does not."""
    return dtype not in FULL_PRECISION


class ShapeMismatch(ValueError):
    """Two sets of vectors that should be comparable are not: the sentence names both shapes."""


def row_cosines(a: np.ndarray, b: np.ndarray, what_a: str = "measured", what_b: str = "expected") -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b``.

    A zero row gives NaN, which every caller reads as a failure (``not x >= threshold``).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ShapeMismatch(
            f"{what_a} vectors are {_shape(a)}, {what_b} vectors are {_shape(b)}: "
            + ("the vector length changed" if a.shape[:1] == b.shape[:1] else "the number of vectors differs"))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _shape(vectors: np.ndarray) -> str:
    return " x ".join(str(n) for n in vectors.shape) if vectors.ndim == 2 else str(vectors.shape)


def degenerate_rows(vectors: np.ndarray) -> list[int]:
    """Rows no model would return for real text: all zeros, or one value repeated (no direction to compare)."""
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[1] < 2:
        return []
    constant = np.all(vectors == vectors[:, :1], axis=1)
    return np.flatnonzero(constant).tolist()
