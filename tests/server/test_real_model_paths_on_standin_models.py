"""The real models' paths proven on the CPU with stand-ins (tests/support/standin_models.py).

Each stand-in is filed in a Hugging Face hub cache under the real model's id, so that ``--embed-model=qwen3-4b``
and ``--embed-model=bge-large-zh`` resolve it through the registry exactly as they resolve the real files:
the same spec, the same SGLang argv (``--model-path Qwen/Qwen3-Embedding-4B`` and its Matryoshka override),
the same ReferenceModel, and mteb's own loader for the model's published name.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import huggingface_hub.constants
import numpy as np
import pytest

from pytest_embedeval.measure.accuracy.encoder import ServerEncoder
from pytest_embedeval.serve.client import EmbeddingClient
from pytest_embedeval.serve.external import environment_for
from pytest_embedeval.serve.sglang import SGLangServer
from pytest_embedeval.judge.rules import reference_min_cosine as min_cosine_for
from pytest_embedeval.measure.reference import (
    LONGEST_PROBE_TOKENS, ReferenceModel, compare_with_reference, parameter_count,
)
from pytest_embedeval.facts.registry import Registry, spec_from_directory
from pytest_embedeval.facts.vector_math import row_cosines

from support.standin_models import (
    BGE_ZH_ID, END_OF_TEXT, QWEN3_ID, build_bge_large_zh, build_qwen3_embedding, install_in_hub_cache,
)

if TYPE_CHECKING:  # torch and datasets take seconds to import: only where a test needs them
    from torch.utils.data import DataLoader


ALIASES = {"qwen3-4b": QWEN3_ID, "bge-large-zh": BGE_ZH_ID}
QUERIES = ["如何重置我的密码？", "What is the capital of China?", "显卡驱动怎么更新"]
SENTENCES = ["今天天气很好", "The cat sat on the mat.", "北京是中国的首都。"]


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    """Both stand-ins, built once, filed in a hub cache under the revisions mteb pins for the real models."""
    import mteb

    root = tmp_path_factory.mktemp("standins")
    cache = root / "hub"
    built = {"qwen3-4b": build_qwen3_embedding(root / "qwen3-embedding"),
             "bge-large-zh": build_bge_large_zh(root / "bge-large-zh")}
    for standin in built.values():
        install_in_hub_cache(standin, cache, mteb.get_model_meta(standin.model_id).revision)
    with pytest.MonkeyPatch.context() as patch:
        # This process looks files up through huggingface_hub's constant; the servers through the variable.
        patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
        patch.setenv("HF_HUB_CACHE", str(cache))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield built


def mteb_model(alias: str):
    """mteb's own implementation of the real model, loaded by its published name (so: the stand-in), in float32."""
    import mteb
    import torch

    meta = mteb.get_model_meta(ALIASES[alias])
    return meta.loader(meta.name, revision=meta.revision, device="cpu", model_kwargs={"dtype": torch.float32},
                       **(meta.loader_kwargs or {}))


def task_metadata(name: str):
    import mteb

    return mteb.get_task(name).metadata


def texts_loader(texts: list[str]) -> DataLoader:
    from datasets import Dataset
    from torch.utils.data import DataLoader

    return DataLoader(Dataset.from_dict({"text": texts}), batch_size=2)


class RecordingClient:
    """Records what the encoder sends; vectors are not looked at."""

    model = "recording"

    def __init__(self):
        self.sent = []

    def embed(self, texts, dimensions=None):
        self.sent.extend(texts)
        return np.ones((len(texts), 4), dtype=np.float32)


# (task, prompt type, inputs): what mteb's evaluators pass. Retrieval encodes queries and documents with
# their prompt types; STS both sides, and classification its inputs, with prompt_type None.
CASES = [
    ("T2Retrieval", "query", QUERIES),
    ("T2Retrieval", "document", SENTENCES),
    ("ATEC", None, SENTENCES),
    ("TNews", None, SENTENCES),
]


def prompt_type_of(name):
    from mteb.types import PromptType

    return PromptType(name) if name else None


# ---------------------------------------------------------------------------------------------
# The stand-ins carry the real models' facts


def test_the_registry_resolves_each_alias_to_its_standin_with_the_real_facts(standins):
    registry = Registry()
    for alias, standin in standins.items():
        spec = registry.resolve(alias)
        assert spec.local_dir().resolve() == standin.path.resolve()  # found in the hub cache by the real id
        derived = spec_from_directory(standin.path)  # what the files say, as for any user's model directory
        assert (derived.dimensions, derived.pooling) == (spec.dimensions, spec.pooling)


def test_the_qwen3_standin_tokenizes_like_qwen3_embedding(standins):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(standins["qwen3-4b"].path))
    end = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    batch = tokenizer(["hello world", "北京是中国的首都。"], padding=True)
    assert all(ids[-1] == end for ids in batch["input_ids"])  # the pooled (last) token is <|endoftext|>
    assert batch["attention_mask"][0][0] == 0  # padded on the left: the last position is real for every row


def test_the_bge_standin_tokenizes_like_bert_wordpiece(standins):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(standins["bge-large-zh"].path))
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("Hello 北京")["input_ids"])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"  # CLS pooling reads position 0
    assert tokens[-3:-1] == ["北", "京"] and "hello" in "".join(tokens).replace("##", "")  # chars split, lower-cased


def test_only_qwen3_on_the_cpu_gets_the_external_model_package(standins):
    registry = Registry()
    assert environment_for(registry.resolve("qwen3-4b"), "cpu")
    assert environment_for(registry.resolve("qwen3-4b"), "cuda") == {}  # SGLang's own class on a GPU
    assert environment_for(registry.resolve("bge-large-zh"), "cpu") == {}  # CLS: SGLang's native pooling


# ---------------------------------------------------------------------------------------------
# Instructions: the encoder sends what mteb's own implementation of the model sends


def strings_mteb_sends(model, task: str, prompt_type, texts: list[str]) -> list[str]:
    """The texts that reach the tokenizer of mteb's own model, prompts included."""
    seen, measuring_prompt = [], []
    transformer = model.model[0]
    call_processor, prompt_length = transformer._call_processor, transformer._get_prompt_length

    def recording(modality, processor_inputs, *args, **kwargs):
        if not measuring_prompt:
            seen.extend(processor_inputs["text"])
        return call_processor(modality, processor_inputs, *args, **kwargs)

    def measuring(*args, **kwargs):  # sentence-transformers also tokenizes the prompt alone, for its length
        measuring_prompt.append(True)
        try:
            return prompt_length(*args, **kwargs)
        finally:
            measuring_prompt.pop()

    transformer._call_processor, transformer._get_prompt_length = recording, measuring
    try:
        model.encode(texts_loader(texts), task_metadata=task_metadata(task), hf_split="test", hf_subset="default",
                     prompt_type=prompt_type_of(prompt_type))
    finally:
        del transformer._call_processor, transformer._get_prompt_length
    return seen


@pytest.mark.parametrize("alias", list(ALIASES))
def test_the_encoder_sends_the_strings_mtebs_own_model_sends(standins, alias):
    model = mteb_model(alias)
    client = RecordingClient()
    encoder = ServerEncoder(client, Registry().resolve(alias))
    sent = {}
    for task, prompt_type, texts in CASES:
        client.sent = []
        encoder.encode(texts_loader(texts), task_metadata=task_metadata(task), hf_split="test", hf_subset="default",
                       prompt_type=prompt_type_of(prompt_type))
        sent[task, prompt_type] = client.sent
        assert sorted(client.sent) == sorted(strings_mteb_sends(model, task, prompt_type, texts)), (task, prompt_type)
    print(f"\n{alias}: " + json.dumps({f"{t}/{p}": s[0] for (t, p), s in sent.items()}, ensure_ascii=False))
    # The gap this closes: Qwen3-Embedding's STS and classification inputs carry an instruction too.
    instructed = {key for key, strings in sent.items() if strings[0] not in QUERIES + SENTENCES}
    expected = ({("T2Retrieval", "query"), ("ATEC", None), ("TNews", None)} if alias == "qwen3-4b"
                else {("T2Retrieval", "query")})
    assert instructed == expected


def test_the_reference_runs_in_float32_although_qwen3_files_are_bfloat16(standins):
    import torch
    from sentence_transformers import SentenceTransformer

    path = standins["qwen3-4b"].path
    as_stored = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    assert next(as_stored.parameters()).dtype == torch.bfloat16  # what sentence-transformers does by itself
    reference = ReferenceModel(Registry().resolve("qwen3-4b"), device="cpu")
    assert {p.dtype for p in reference.encoder.parameters()} == {torch.float32}
    texts = ["hello world", "北京是中国的首都。"]
    # bf16 activations move the vectors even through 2 layers (the real model has 36): a reference that rounds
    # would spend the tolerance the fp32 server is held to.
    assert row_cosines(as_stored.encode(texts), reference.encode(texts)).min() < 0.999999


def test_parameters_are_counted_from_the_safetensors_headers(standins):
    from sentence_transformers import SentenceTransformer

    for standin in standins.values():
        model = SentenceTransformer(str(standin.path), device="cpu", local_files_only=True)
        assert parameter_count(standin.path) == sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Served by real SGLang on the CPU


def boot(alias: str, tmp_path_factory) -> SGLangServer:
    spec = Registry().resolve(alias)
    server = SGLangServer(spec, device="cpu", log_path=tmp_path_factory.mktemp("logs") / f"{alias}.log",
                          boot_timeout=300)
    print(f"\n{alias} argv: {' '.join(server.argv[1:])}")
    return server.start()


@pytest.fixture(scope="module", params=list(ALIASES))
def served(request, standins, tmp_path_factory):
    """(alias, server, client) for one stand-in served through its alias; one server per stand-in."""
    alias = request.param
    server = boot(alias, tmp_path_factory)
    try:
        yield alias, server, EmbeddingClient(server.url, server.served_model(), dimensions=server.spec.dimensions)
    finally:
        server.stop()


def test_served_vectors_equal_sentence_transformers_on_the_same_files(served):
    alias, server, client = served
    reference = ReferenceModel(server.spec)
    texts = reference.probe_texts()
    # A tiny model gets the whole probe set wherever it is placed: the long probes fill the window up to 4096.
    assert reference.placement.longest_probe_tokens == LONGEST_PROBE_TOKENS
    assert max(reference.count_tokens(t) for t in texts) > min(server.spec.max_tokens, LONGEST_PROBE_TOKENS) - 16
    expected, got = reference.encode(texts), client.embed(texts)
    cosines = row_cosines(got, expected)
    print(f"\n{alias} cosines: " + " ".join(f"{c:.9f}" for c in cosines))
    assert compare_with_reference(texts, got, expected, min_cosine_for(server.dtype)) is None


def test_matryoshka_dimensions_equal_the_reference_truncated_and_renormalised(served):
    alias, server, client = served
    if server.spec.matryoshka is None:
        with pytest.raises(Exception, match="400|dimensions"):
            client.embed(SENTENCES, dimensions=256)  # a fixed-size model refuses rather than truncating
        return
    expected = ReferenceModel(server.spec).encode(SENTENCES)
    for size in (32, 256, 1024, server.spec.dimensions):
        got = client.embed(SENTENCES, dimensions=size)
        assert got.shape == (len(SENTENCES), size)
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        cosines = row_cosines(got, expected[:, :size])
        print(f"\n{alias} dimensions={size}: cosines " + " ".join(f"{c:.9f}" for c in cosines))
        assert cosines.min() >= min_cosine_for(server.dtype)


def test_inputs_reach_the_server_as_mtebs_own_model_prefixes_them(served):
    alias, server, client = served
    model = mteb_model(alias)
    encoder = ServerEncoder(client, server.spec)
    for task, prompt_type, texts in CASES:
        arguments = dict(task_metadata=task_metadata(task), hf_split="test", hf_subset="default",
                         prompt_type=prompt_type_of(prompt_type))
        served_vectors = encoder.encode(texts_loader(texts), **arguments)
        own = np.asarray(model.encode(texts_loader(texts), **arguments))
        cosines = row_cosines(served_vectors, own)
        print(f"\n{alias} {task}/{prompt_type}: cosines vs mteb's model " + " ".join(f"{c:.9f}" for c in cosines))
        assert cosines.min() >= min_cosine_for(server.dtype), (task, prompt_type)
    # The check has teeth: the same queries sent bare are measurably other vectors.
    bare = client.embed(QUERIES)
    own_queries = np.asarray(model.encode(texts_loader(QUERIES), task_metadata=task_metadata("T2Retrieval"),
                                          hf_split="test", hf_subset="default", prompt_type=prompt_type_of("query")))
    assert row_cosines(bare, own_queries).max() < min_cosine_for(server.dtype)


DRIFT = """
import pytest

@pytest.mark.embed_drift
def test_drift():
    pass
"""


def test_drift_is_recorded_and_judged_through_the_plugin(served, pytester):
    alias, server, _ = served
    pytester.makepyfile(DRIFT)
    common = (f"--embed-url={server.url}", f"--embed-model={alias}", "-p", "no:cacheprovider")
    pytester.runpytest(*common, "--embed-update-baselines").assert_outcomes(passed=1)
    (stored,) = (pytester.path / "baselines" / "vectors" / alias).glob("*.npz")

    result = pytester.runpytest(*common)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["drift_min_cosine *1.000000 (*, measured)*pass"])

    # Each probe's stored vector swapped for another probe's: what a server serving wrong vectors would show.
    with np.load(stored) as data:
        texts, vectors = data["texts"], data["vectors"]
    np.savez_compressed(stored, texts=texts, vectors=np.roll(vectors, 1, axis=0))
    result = pytester.runpytest(*common)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*drift_min_cosine regressed*"])
