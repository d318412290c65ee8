"""An mteb encoder whose vectors come from the server under test, through ``EmbeddingClient.embed``."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction
from mteb.types import PromptType

if TYPE_CHECKING:
    from mteb.abstasks.task_metadata import TaskMetadata
    from torch.utils.data import DataLoader

    from ..client import EmbeddingClient
    from ..registry import ModelSpec


def _parameter_count(text: str | None) -> int | None:
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMB]?)\s*", text or "")
    if not match:
        return None
    return int(float(match[1]) * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[match[2]])


def model_meta_for(spec: ModelSpec | None, served_model: str | None = None, dimensions: int | None = None) -> ModelMeta:
    """What mteb records about the served model. Every field mteb 2.26 requires is given; unknown ones are None."""
    alias = spec.alias if spec else (served_model or "served-model").rstrip("/").rsplit("/", 1)[-1]
    return ModelMeta(
        loader=None,  # mteb never loads this model: the server has it
        name=f"embedeval/{alias}",  # mteb insists on "organization/name"
        revision=None,
        release_date=None,
        languages=None,
        n_parameters=_parameter_count(spec.parameters) if spec else None,
        n_embedding_parameters=None,
        memory_usage_mb=None,
        max_tokens=spec.max_tokens if spec else None,
        embed_dim=dimensions or (spec.dimensions if spec else None),
        license=None,
        open_weights=None,
        public_training_code=None,
        public_training_data=None,
        framework=["API"],
        # The enum, not the string "cosine": mteb compares with `is` when it scores.
        similarity_fn_name=ScoringFunction.COSINE,
        use_instructions=bool(spec and spec.query_prompt),
        training_datasets=None,
        modalities=["text"],
        model_type=["dense"],
        experiment_kwargs={"dimensions": dimensions} if dimensions else None,
    )


class ServerEncoder(AbsEncoder):
    """Embeds mteb's inputs on the server: batches of ``batch_size`` texts, ``concurrency`` requests in
    flight so that the server always has the next batch queued, vectors returned in input order.

    Queries (mteb's ``prompt_type == PromptType.query``) get the model's query prompt; documents and
    both sides of an STS pair (``prompt_type`` None) are sent as they are. A "{task}" placeholder is
    filled with the instruction mteb keeps for the task (``TaskMetadata.prompt``, else the task type's
    default), and with the task's description when mteb has none.

    ``texts_encoded``, ``requests_sent`` and ``encode_seconds`` add up over every ``encode`` call.
    """

    def __init__(self, client: EmbeddingClient, spec: ModelSpec | None = None, *, dimensions: int | None = None,
                 batch_size: int = 32, concurrency: int = 4):
        if batch_size < 1 or concurrency < 1:
            raise ValueError(f"batch_size and concurrency must be at least 1, got {batch_size} and {concurrency}")
        self.client = client
        self.spec = spec
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.mteb_model_meta = model_meta_for(spec, getattr(client, "model", None), dimensions)
        self.texts_encoded = 0
        self.requests_sent = 0
        self.encode_seconds = 0.0

    # -- mteb's interface ---------------------------------------------------------------------

    def encode(self, inputs: DataLoader, *, task_metadata: TaskMetadata, hf_split: str, hf_subset: str,
               prompt_type: PromptType | None = None, **kwargs: Any) -> np.ndarray:
        # mteb batches with its own batch size; requests are batched again below, by ours.
        texts = [text for batch in inputs for text in batch["text"]]
        if prompt_type == PromptType.query:
            texts = self.apply_query_prompt(texts, task_metadata)
        return self.embed(texts)

    # -- prompts ----------------------------------------------------------------------------------

    def query_instruction(self, task_metadata: TaskMetadata) -> str:
        """The task instruction for a "{task}" prompt, as mteb's own Qwen3 wrapper chooses it."""
        return self.get_instruction(task_metadata, PromptType.query) or task_metadata.description

    def apply_query_prompt(self, texts: Sequence[str], task_metadata: TaskMetadata) -> list[str]:
        if self.spec is None or not self.spec.query_prompt:
            return list(texts)
        task = self.query_instruction(task_metadata) if "{task}" in self.spec.query_prompt else ""
        return [self.spec.format_query(text, task=task) for text in texts]

    # -- vectors ----------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), d)`` float32 vectors, in the order of ``texts``."""
        texts = list(texts)
        batches = [texts[i:i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        start = time.perf_counter()
        if len(batches) <= 1 or self.concurrency == 1:
            parts = [self.embed_batch(batch) for batch in batches]
        else:
            pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches)),
                                      thread_name_prefix="embedeval-encode")
            try:
                futures = [pool.submit(self.embed_batch, batch) for batch in batches]
                parts = [future.result() for future in futures]  # futures, not completion order: input order
            finally:
                # A failed request ends the run now rather than after every queued batch was sent.
                pool.shutdown(wait=True, cancel_futures=True)
        self.encode_seconds += time.perf_counter() - start
        self.texts_encoded += len(texts)
        self.requests_sent += len(batches)
        if not parts:
            return np.zeros((0, self.mteb_model_meta.embed_dim or 0), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """The vector source: one request to the server. A subclass may replace it (a noise encoder)."""
        return self.client.embed(texts, dimensions=self.dimensions)

    def reset_counters(self) -> None:
        self.texts_encoded, self.requests_sent, self.encode_seconds = 0, 0, 0.0

    def __repr__(self) -> str:
        return (f"ServerEncoder({self.mteb_model_meta.name}, batch_size={self.batch_size}, "
                f"concurrency={self.concurrency}, dimensions={self.dimensions})")
