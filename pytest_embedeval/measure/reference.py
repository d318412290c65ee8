"""Served vectors against the model's own reference: sentence-transformers, in-process, same files.

The first regression test the plugin offers: if these differ, the server is not serving the model
(wrong pooling, a prefix cache reusing hidden states, a broken kernel, truncation, padding).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..facts.registry import ModelSpec
from ..facts.vector_math import ShapeMismatch, row_cosines


# Long enough to exercise the model's whole window on GPU runners, short enough that the
# in-process reference of a 4B model on a GPU does not take minutes (on a CPU see place_reference).
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


# The reference is the ground truth the served vectors are held to, so it runs in float32 wherever it runs:
# the published Qwen3-Embedding files are bfloat16, and sentence-transformers would otherwise keep that.
REFERENCE_BYTES_PER_PARAMETER = 4
# Activations and the allocator's slack on top of the weights (a 4096-token probe of a 4B model needs ~2 GB).
HEADROOM = 1.25
# On a CPU a forward costs ~2 FLOP per parameter per token. Parameters x probe tokens is capped so that the
# long probes of a 4B model stay at 512 tokens (seconds on a runner's CPU, not minutes); a model up to ~500M
# parameters (bge-large-zh, MiniLM) keeps its whole window up to LONGEST_PROBE_TOKENS.
CPU_PARAMETER_TOKENS = 2 * 10**12
SHORTEST_LONG_PROBE_TOKENS = 512
# Texts longer than this are encoded on their own (see ReferenceModel.encode).
LONG_TEXT_TOKENS = 256


@dataclass(frozen=True)
class Placement:
    """Where the reference runs, how long its longest probes are, and why."""

    device: str
    longest_probe_tokens: int
    reason: str


def place_reference(parameters: int, gpu_free_bytes: dict[int, int], host_available_bytes: int) -> Placement:
    """The GPU with the most free memory if the float32 model fits there beside the server, else the CPU.

    ``gpu_free_bytes`` is measured after the server booted, so it is what the server's static reservation
    left (SGLang takes most of a GPU up front whatever the model needs). A 4B model (16 GB in float32) rarely
    fits beside its own server; bge-large-zh (1.3 GB) does. On the CPU the longest probes are shortened for
    large models (``CPU_PARAMETER_TOKENS``); the short probes stay, so every check still covers tokenisation,
    pooling and normalisation.
    """
    needed = int(parameters * REFERENCE_BYTES_PER_PARAMETER * HEADROOM)
    gib = 2**30
    if gpu_free_bytes:
        index, free = max(gpu_free_bytes.items(), key=lambda item: item[1])
        if free >= needed:
            return Placement(f"cuda:{index}", LONGEST_PROBE_TOKENS,
                             f"GPU {index} has {free / gib:.1f} GiB free beside the server; the float32 "
                             f"reference needs {needed / gib:.1f} GiB")
        why = f"the float32 reference needs {needed / gib:.1f} GiB, the GPUs have at most {free / gib:.1f} GiB free"
    else:
        why = "no GPU is visible to this process"
    if host_available_bytes < needed:
        raise ReferenceUnavailable(
            f"{why}, and the host has {host_available_bytes / gib:.1f} GiB available: no room for the reference "
            f"model ({parameters / 1e9:.2f}B parameters); run the reference check on a larger runner"
        )
    tokens = max(SHORTEST_LONG_PROBE_TOKENS, min(LONGEST_PROBE_TOKENS, CPU_PARAMETER_TOKENS // max(parameters, 1)))
    return Placement("cpu", tokens, f"on the CPU: {why}" + (
        f"; longest probes cut to {tokens} tokens for {parameters / 1e9:.2f}B parameters"
        if tokens < LONGEST_PROBE_TOKENS else ""))


def parameter_count(model_dir: Path) -> int | None:
    """Parameters stored in the directory's safetensors files, read from their headers (no weights loaded)."""
    total = 0
    files = sorted(model_dir.glob("*.safetensors"))
    for path in files:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        for name, entry in header.items():
            if name != "__metadata__":
                total += math.prod(entry["shape"])
    return total if files else None


def gpu_free_bytes() -> dict[int, int]:
    """Free memory of each GPU this process sees (NVML: no CUDA context is created); {} without GPUs."""
    try:
        import torch

        if not torch.cuda.is_available():
            return {}
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return {}
    try:
        # NVML counts every GPU of the machine; torch only the visible ones, in CUDA_VISIBLE_DEVICES order.
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        count = pynvml.nvmlDeviceGetCount()
        physical = [int(i) for i in visible.split(",") if i.strip().isdigit()] if visible else list(range(count))
        return {torch_index: int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(nvml_index)).free)
                for torch_index, nvml_index in enumerate(physical) if nvml_index < count}
    except Exception:
        return {}
    finally:
        pynvml.nvmlShutdown()


@dataclass
class ReferenceModel:
    """sentence-transformers running the model's own files in this process, in float32.

    ``device="auto"`` (the default) decides when the model is first needed, by then beside a running server:
    see ``place_reference``. A device name ("cpu", "cuda:1") places it there with the full probe set.
    """

    spec: ModelSpec
    device: str = "auto"

    def local_dir(self) -> Path:
        local = self.spec.local_dir()
        if local is None:
            raise ReferenceUnavailable(
                f"the files of {self.spec.model!r} are not on this machine; download them into the Hugging "
                f"Face cache first (`hf download {self.spec.model}` on a machine with internet)"
            )
        return local

    @cached_property
    def placement(self) -> Placement:
        if self.device != "auto":
            return Placement(self.device, LONGEST_PROBE_TOKENS, f"{self.device}, as asked")
        local = self.local_dir()
        parameters = parameter_count(local) or _parameters_of_other_weight_files(local)
        import psutil

        return place_reference(parameters, gpu_free_bytes(), psutil.virtual_memory().available)

    @cached_property
    def encoder(self):
        local = self.local_dir()
        import torch
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(local), device=self.placement.device, local_files_only=True,
                                   model_kwargs={"dtype": torch.float32})

    def count_tokens(self, text: str) -> int:
        return len(self.encoder.tokenizer(text, add_special_tokens=True)["input_ids"])

    def probe_texts(self) -> list[str]:
        """Short English and Chinese texts, plus one of each just inside the model's window (or the placement's cap)."""
        limit = min(self.spec.max_tokens, self.encoder.max_seq_length or self.spec.max_tokens,
                    self.placement.longest_probe_tokens)
        near_limit = max(limit - 8, 16)
        return [*SHORT_TEXTS, *(_fit_to_tokens(text, self.count_tokens, near_limit) for text in (_ENGLISH, _CHINESE))]

    def encode(self, texts: list[str], prompt: str | None = None) -> np.ndarray:
        """float32 unit vectors; ``prompt`` is prepended to every text, as sentence-transformers does it.

        Long texts go one at a time: sentence-transformers pads a batch to its longest text, and eight probes
        padded to 4096 tokens cost a CPU eight long forwards (80 s instead of 20 for a 2-layer Qwen3 stand-in).
        """
        texts = list(texts)
        long = {i for i, text in enumerate(texts) if self.count_tokens((prompt or "") + text) > LONG_TEXT_TOKENS}
        rows: dict[int, np.ndarray] = {}
        for indexes, batch_size in (sorted(long), 1), ([i for i in range(len(texts)) if i not in long], 8):
            if indexes:
                encoded = self.encoder.encode([texts[i] for i in indexes], prompt=prompt, batch_size=batch_size,
                                              normalize_embeddings=True, convert_to_numpy=True)
                rows.update(zip(indexes, encoded))
        return np.stack([rows[i] for i in range(len(texts))]).astype(np.float32, copy=False)


def _parameters_of_other_weight_files(model_dir: Path) -> int:
    """For checkpoints without safetensors: file size over the stored dtype's width (pickles have no header)."""
    try:
        stored = json.loads((model_dir / "config.json").read_text()).get("torch_dtype") or "float32"
    except (OSError, ValueError):
        stored = "float32"
    width = 2 if stored in ("bfloat16", "float16") else 4
    return sum(path.stat().st_size for pattern in ("*.bin", "*.pt", "*.pth") for path in model_dir.glob(pattern)) // width


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


def compare_with_reference(
    texts: list[str], served: np.ndarray, reference: np.ndarray, min_cosine: float
) -> ReferenceDrift | None:
    """None when every served vector is within ``min_cosine`` of its reference.

    Raises ``ShapeMismatch`` naming both shapes when the server's vectors are not the reference's size.
    """
    values = row_cosines(served, reference, "served", "reference")
    drifted = [i for i, value in enumerate(values) if not value >= min_cosine]  # NaN counts as drift
    if not drifted:
        return None
    return ReferenceDrift(
        tuple(texts[i] for i in drifted), tuple(float(values[i]) for i in drifted), min_cosine, len(texts)
    )


class ReferenceMismatch(AssertionError):
    """Served vectors that are not the reference's: a sentence naming the texts, or both shapes."""


def check_served(client, reference: ReferenceModel, texts: list[str] | None, min_cosine: float) -> np.ndarray:
    """The per-text cosines of served vs reference vectors; raises ``ReferenceMismatch`` when any is below
    ``min_cosine`` (the judge's ``reference_min_cosine`` for the server's dtype, unless the test gives one).

    Raises ``ReferenceUnavailable`` when the model's files are not here to compare with.
    """
    texts = texts or reference.probe_texts()
    expected = reference.encode(texts)
    served = client.embed(texts)
    try:
        drift = compare_with_reference(texts, served, expected, min_cosine)
    except ShapeMismatch as exc:
        raise ReferenceMismatch(f"reference check: {exc}") from None
    if drift is not None:
        raise ReferenceMismatch(str(drift))
    return row_cosines(served, expected)
