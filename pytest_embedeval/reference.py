"""Served vectors against the model's own reference: sentence-transformers, in-process, same files.

The first regression test the plugin offers: if these differ, the server is not serving the model
(wrong pooling, a prefix cache reusing hidden states, a broken kernel, truncation, padding).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .registry import ModelSpec



def min_cosine_for(dtype: str) -> float:
    """fp32 servers must match the fp32 reference to rounding noise; half precision rounds every layer."""
    return 0.9999 if dtype in ("float32", "float", "fp32") else 0.999

# Long enough to exercise the model's whole window on GPU runners, short enough that the
# in-process reference of a 4B model does not take minutes.
LONGEST_PROBE_TOKENS = 4096

_ENGLISH = (
    "Embedding servers turn text into vectors that search, clustering and recommendation systems "
    "compare by cosine similarity. A silent change in tokenisation, pooling, precision or batching "
    "shifts every vector a little, and rankings built on them drift without any error being raised. "
)
_CHINESE = (
    "向量检索系统依赖嵌入模型把文本转换成向量，再用余弦相似度比较它们。分词、池化、精度或批处理的细微变化"
    "都会让每个向量发生偏移，排序结果随之改变，却不会抛出任何错误。"
)
SHORT_TEXTS = (
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password?",
    "今天天气很好",
    "北京是中国的首都。",
    "如何重置我的密码？",
)


class ReferenceUnavailable(RuntimeError):
    """The model's files are not on this machine, so there is nothing to compare with."""


def _fit_to_tokens(text: str, count_tokens, target: int) -> str:
    """The longest prefix of ``text`` (repeated as needed) whose token count stays within ``target``."""
    while count_tokens(text) < target:
        text += text
    low, high = 0, len(text)
    while low < high:  # binary search on characters; tokens grow monotonically with the prefix
        middle = (low + high + 1) // 2
        if count_tokens(text[:middle]) <= target:
            low = middle
        else:
            high = middle - 1
    return text[:low].strip()


@dataclass
class ReferenceModel:
    """sentence-transformers running the model's own files in this process."""

    spec: ModelSpec
    device: str = "cpu"

    @cached_property
    def encoder(self):
        local = self.spec.local_dir()
        if local is None:
            raise ReferenceUnavailable(
                f"the files of {self.spec.model!r} are not on this machine; download them into the Hugging "
                f"Face cache first (`huggingface-cli download {self.spec.model}` on a machine with internet)"
            )
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(local), device=self.device, local_files_only=True)

    def count_tokens(self, text: str) -> int:
        return len(self.encoder.tokenizer(text, add_special_tokens=True)["input_ids"])

    def probe_texts(self) -> list[str]:
        """Short English and Chinese texts, plus one of each just inside the model's window."""
        limit = min(self.spec.max_tokens, self.encoder.max_seq_length or self.spec.max_tokens, LONGEST_PROBE_TOKENS)
        near_limit = max(limit - 8, 16)
        return [*SHORT_TEXTS, *(_fit_to_tokens(text, self.count_tokens, near_limit) for text in (_ENGLISH, _CHINESE))]

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=8)


@dataclass(frozen=True)
class ReferenceDrift:
    """Texts whose served vector is further from the reference than allowed."""

    texts: tuple[str, ...]
    cosines: tuple[float, ...]
    min_cosine: float
    checked: int

    def reason(self) -> str:
        return (
            f"{len(self.texts)} of {self.checked} texts drifted from the reference "
            f"(cosine < {self.min_cosine}); worst {min(self.cosines):.6f}"
        )

    def section(self) -> str:
        lines = [f"{'cosine':>10}  text"]
        for cosine, text in sorted(zip(self.cosines, self.texts)):
            shown = text if len(text) <= 70 else text[:67] + "..."
            lines.append(f"{cosine:>10.6f}  {shown!r}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"{self.reason()}\n{self.section()}"


def cosines(served: np.ndarray, reference: np.ndarray) -> np.ndarray:
    served = served / np.linalg.norm(served, axis=1, keepdims=True)
    reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    return (served * reference).sum(axis=1)


def compare_with_reference(
    texts: list[str], served: np.ndarray, reference: np.ndarray, min_cosine: float
) -> ReferenceDrift | None:
    """None when every served vector is within ``min_cosine`` of its reference."""
    if served.shape != reference.shape:
        return ReferenceDrift(tuple(texts), tuple([float("nan")] * len(texts)), min_cosine, len(texts))
    values = cosines(served, reference)
    drifted = [i for i, value in enumerate(values) if not value >= min_cosine]  # NaN counts as drift
    if not drifted:
        return None
    return ReferenceDrift(
        tuple(texts[i] for i in drifted), tuple(float(values[i]) for i in drifted), min_cosine, len(texts)
    )
