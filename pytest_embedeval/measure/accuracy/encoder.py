"""An mteb encoder whose vectors come from the server under test, through ``EmbeddingClient.embed``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from unittest import mock

import numpy as np
from mteb.models.abs_encoder import AbsEncoder, get_prompt_name
from mteb.models.model_meta import ModelMeta, ScoringFunction
from mteb.types import PromptType

if TYPE_CHECKING:
    from mteb.abstasks.task_metadata import TaskMetadata
    from torch.utils.data import DataLoader

    from ...serve.client import EmbeddingClient
    from ...facts.registry import ModelSpec


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



class _Built(Exception):
    """Raised in place of a wrapper's constructor: carries the wrapper class and the arguments it got."""

    def __init__(self, wrapper: type, arguments: dict[str, Any]):
        super().__init__(wrapper.__name__)
        self.wrapper, self.arguments = wrapper, arguments


@dataclass(frozen=True)
class MtebPromptRules:
    """How mteb's own implementation of a model prefixes its inputs, read from mteb itself.

    mteb builds a published model through its ``ModelMeta.loader``: either a wrapper class with
    ``loader_kwargs`` (bge-zh: ``SentenceTransformerEncoderWrapper`` with ``model_prompts``, looked up by
    task name, task type and prompt type), or a function that constructs an instruction wrapper with
    arguments written in its body (Qwen3-Embedding: ``InstructSentenceTransformerModel`` with an
    ``instruction_template`` that wraps every input but documents in "Instruct: ...\nQuery:", STS pairs
    included, where mteb passes ``prompt_type=None``). Both are read as mteb would pass them, so a new mteb
    release that changes a model's prompts changes ours with it.
    """

    model: str
    wrapper: type
    arguments: dict[str, Any]

    @classmethod
    def for_model(cls, name: str) -> MtebPromptRules | None:
        """The rules for a model mteb knows by ``name`` (a Hugging Face id); None for any other model."""
        import mteb
        from mteb.models.instruct_wrapper import InstructSentenceTransformerModel
        from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper

        try:
            meta = mteb.get_model_meta(name)
        except (KeyError, ValueError):
            return None
        wrappers = (InstructSentenceTransformerModel, SentenceTransformerEncoderWrapper)
        arguments = dict(meta.loader_kwargs or {})
        if isinstance(meta.loader, type):
            return cls(name, meta.loader, arguments) if issubclass(meta.loader, wrappers) else None

        def refuse(self, *args, **kwargs):
            raise _Built(type(self), kwargs)

        # A loader function: run mteb's own code with the wrappers' constructors replaced, so that it gets
        # as far as naming its arguments and loads no weights. Construction happens once, before any
        # encoding thread exists.
        with ExitStack() as stack:
            for wrapper in wrappers:
                stack.enter_context(mock.patch.object(wrapper, "__init__", refuse))
            try:
                meta.loader(meta.name, revision=meta.revision, **arguments)
            except _Built as built:
                return cls(name, built.wrapper, built.arguments)
            except Exception:
                return None
        return None

    @property
    def instructs(self) -> bool:
        from mteb.models.instruct_wrapper import InstructSentenceTransformerModel

        return issubclass(self.wrapper, InstructSentenceTransformerModel)


class ServerEncoder(AbsEncoder):
    """Embeds mteb's inputs on the server: batches of ``batch_size`` texts, ``concurrency`` requests in
    flight so that the server always has the next batch queued, vectors returned in input order.

    Inputs are prefixed as mteb's own implementation of the model prefixes them (``MtebPromptRules``), for
    every prompt type: Qwen3-Embedding wraps queries and both sides of an STS pair in its task instruction,
    bge-zh prefixes queries only. The official scores were computed that way; sending STS pairs bare would
    move a healthy deployment's score away from its profile. A model mteb does not know gets its spec's
    query prompt on queries only, a "{task}" placeholder filled with the instruction mteb keeps for the task
    (``TaskMetadata.prompt``, else the task type's default), or the task's description when mteb has none.

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
        self.prompt_rules = MtebPromptRules.for_model(spec.model) if spec else None
        self._adopt(self.prompt_rules)
        self.texts_encoded = 0
        self.requests_sent = 0
        self.encode_seconds = 0.0

    # -- mteb's interface ---------------------------------------------------------------------

    def encode(self, inputs: DataLoader, *, task_metadata: TaskMetadata, hf_split: str, hf_subset: str,
               prompt_type: PromptType | None = None, **kwargs: Any) -> np.ndarray:
        # mteb batches with its own batch size; requests are batched again below, by ours.
        texts = [text for batch in inputs for text in batch["text"]]
        return self.embed(self.prompted(texts, task_metadata, prompt_type))

    # -- prompts ----------------------------------------------------------------------------------

    def _adopt(self, rules: MtebPromptRules | None) -> None:
        """Take the prompt settings mteb's wrapper would hold, so that mteb's own lookups run on them."""
        if rules is None:
            return
        arguments = rules.arguments
        if rules.instructs:
            from mteb.models.abs_encoder import PromptSource

            self.instruction_template = arguments.get("instruction_template")
            self.prompts_dict = arguments.get("prompts_dict")
            if arguments.get("prompt_priority") is not None:
                self.prompt_priority = [PromptSource.from_str(source) for source in arguments["prompt_priority"]]
            return
        prompts = arguments.get("model_prompts") or self._prompts_in_model_files()
        self.model_prompts = AbsEncoder.validate_task_to_prompt_name(prompts, raise_for_invalid_keys=False)[0]

    def _prompts_in_model_files(self) -> dict[str, str] | None:
        # mteb falls back on the prompts sentence-transformers keeps with the model, when its files are here.
        local = self.spec.local_dir() if self.spec else None
        config = local / "config_sentence_transformers.json" if local else None
        if config is None or not config.is_file():
            return None
        prompts = json.loads(config.read_text()).get("prompts") or {}
        return {name: prompt for name, prompt in prompts.items() if prompt} or None

    def prefix_for(self, task_metadata: TaskMetadata, prompt_type: PromptType | None) -> str:
        """What mteb's own wrapper of the model prepends to the inputs of this task and prompt type."""
        rules = self.prompt_rules
        if rules is None:
            return ""
        if rules.instructs:
            if prompt_type == PromptType.document and not rules.arguments.get("apply_instruction_to_passages", True):
                return ""
            return self.get_task_instruction(task_metadata, prompt_type) or ""
        name = get_prompt_name(self.model_prompts, task_metadata, prompt_type)
        return (self.model_prompts or {}).get(name) or "" if name else ""

    def prompted(self, texts: Sequence[str], task_metadata: TaskMetadata,
                 prompt_type: PromptType | None) -> list[str]:
        """The texts as they go to the server for this task and prompt type."""
        if self.prompt_rules is None:
            return self.apply_query_prompt(texts, task_metadata) if prompt_type == PromptType.query else list(texts)
        prefix = self.prefix_for(task_metadata, prompt_type)
        # sentence-transformers joins a prompt and its text with nothing between them; so does mteb's model.
        return [prefix + text for text in texts] if prefix else list(texts)

    def query_instruction(self, task_metadata: TaskMetadata) -> str:
        """The task instruction for a "{task}" prompt of a model mteb does not know."""
        return self.get_instruction(task_metadata, PromptType.query) or task_metadata.description

    def apply_query_prompt(self, texts: Sequence[str], task_metadata: TaskMetadata) -> list[str]:
        if self.spec is None or not self.spec.query_prompt:
            return list(texts)
        task = self.query_instruction(task_metadata) if "{task}" in self.spec.query_prompt else ""
        return [self.spec.format_query(text, task=task) for text in texts]

    # -- vectors ----------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), d)`` float32 vectors, in the order of ``texts``.

        Each distinct text is sent once and its vector copied to every place the text holds. A
        server's vector for a text moves in the 7th decimal with its place in a batch, and a score
        that ranks similarities (Spearman) would rank that noise between the copies of a repeated
        sentence: a user's STS file often repeats one, and the score then moved half a point between
        two runs on one server. Repeats also cost no request.

        Counters: ``texts_encoded`` adds the distinct texts sent (what the server encoded, the figure
        a texts-per-second rate divides), ``requests_sent`` the requests, ``encode_seconds`` the wall time.
        """
        texts = list(texts)
        distinct = list(dict.fromkeys(texts))  # first-seen order: requests stay in input order
        batches = [distinct[i:i + self.batch_size] for i in range(0, len(distinct), self.batch_size)]
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
        self.texts_encoded += len(distinct)
        self.requests_sent += len(batches)
        if not parts:
            return np.zeros((0, self.mteb_model_meta.embed_dim or 0), dtype=np.float32)
        vectors = np.concatenate(parts).astype(np.float32, copy=False)
        if len(distinct) == len(texts):
            return vectors
        row = {text: index for index, text in enumerate(distinct)}
        return vectors[[row[text] for text in texts]]  # the same row for every copy: bit-identical

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """The vector source: one request to the server. A subclass may replace it (a noise encoder)."""
        return self.client.embed(texts, dimensions=self.dimensions)

    def reset_counters(self) -> None:
        self.texts_encoded, self.requests_sent, self.encode_seconds = 0, 0, 0.0

    def __repr__(self) -> str:
        return (f"ServerEncoder({self.mteb_model_meta.name}, batch_size={self.batch_size}, "
                f"concurrency={self.concurrency}, dimensions={self.dimensions})")
