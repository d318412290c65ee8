"""Stand-ins for the two real models, built offline in seconds: same architecture, same configuration files.

Nothing can be downloaded here, so the paths that ``--embed-model=qwen3-4b`` and ``--embed-model=bge-large-zh``
take are proven with small random models that carry what the paths depend on:

- Qwen3-Embedding-4B: ``Qwen3ForCausalLM`` with the real hidden size (2560, so every Matryoshka size of the
  registry applies), head size, RoPE base and norm epsilon; base-model weight names (no ``model.`` prefix, as the
  published checkpoint has) stored in bfloat16; sentence-transformers pooling at the last token plus Normalize;
  the query prompt in config_sentence_transformers.json; a byte-level BPE tokenizer that appends
  ``<|endoftext|>`` to every input and pads on the left.
- bge-large-zh-v1.5: ``BertModel`` with the real hidden size (1024) and window (512), CLS pooling plus Normalize,
  and a lower-casing WordPiece tokenizer that splits Chinese characters and wraps inputs in [CLS] ... [SEP].

Only the depth and widths that do not show in the vectors' shape are cut (2 layers, narrow MLP, small vocabulary).
``install_in_hub_cache`` files a stand-in under the real model's Hugging Face id, so that the registry alias, its
SGLang argv and mteb's own model loader all resolve it exactly as they would resolve the real files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest_embedeval
from pytest_embedeval.measure import probes, reference

QWEN3_ID = "Qwen/Qwen3-Embedding-4B"
BGE_ZH_ID = "BAAI/bge-large-zh-v1.5"

# What the published Qwen3-Embedding ships as its sentence-transformers query prompt.
QWEN3_QUERY_PROMPT = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
END_OF_TEXT = "<|endoftext|>"


@dataclass(frozen=True)
class StandIn:
    model_id: str  # the Hugging Face id it stands in for
    path: Path
    hidden_size: int
    pooling: str


def training_texts() -> list[str]:
    """The text the package ships (STS pairs, retrieval corpora, probe texts): English and Chinese."""
    data = Path(pytest_embedeval.__file__).parent / "data"
    assert data.is_dir(), data  # an empty corpus would train another tokenizer, silently
    texts = [*probes.PROBES, *reference.SHORT_TEXTS, reference._ENGLISH, reference._CHINESE]
    for path in sorted(data.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts += [value for value in row.values() if isinstance(value, str) and not value.startswith(("en-", "zh-"))]
    return texts


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2), encoding="utf-8")


def _sentence_transformers_files(path: Path, *, hidden_size: int, max_seq_length: int, pooling: str,
                                 do_lower_case: bool, prompts: dict[str, str] | None) -> None:
    _write_json(path / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    modes = {f"pooling_mode_{mode}": False for mode in
             ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken")}
    modes[{"cls": "pooling_mode_cls_token", "last": "pooling_mode_lasttoken"}[pooling]] = True
    _write_json(path / "1_Pooling" / "config.json", {"word_embedding_dimension": hidden_size, **modes,
                                                      "include_prompt": True})
    (path / "2_Normalize").mkdir(exist_ok=True)
    _write_json(path / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": do_lower_case})
    st_config = {"similarity_fn_name": "cosine", "default_prompt_name": None, "prompts": prompts or {}}
    _write_json(path / "config_sentence_transformers.json", st_config)


def build_qwen3_embedding(path: Path, *, layers: int = 2, seed: int = 0) -> StandIn:
    """A Qwen3-Embedding-4B-shaped model directory at ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import Qwen3Config, Qwen3Model

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = [END_OF_TEXT, "<|im_start|>", "<|im_end|>"]
    tokenizer.train_from_iterator(training_texts(), trainers.BpeTrainer(
        vocab_size=4000, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    end_of_text = tokenizer.token_to_id(END_OF_TEXT)
    # The real tokenizer's post-processor: every input ends with <|endoftext|>, whose hidden state is the
    # embedding (last-token pooling). Without it the last token would be the text's own last word.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {END_OF_TEXT}", pair=f"$A {END_OF_TEXT} $B:1 {END_OF_TEXT}:1",
        special_tokens=[(END_OF_TEXT, end_of_text)])
    tokenizer.save(str(path / "tokenizer.json"))
    _write_json(path / "tokenizer_config.json", {
        "tokenizer_class": "Qwen2Tokenizer",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": END_OF_TEXT,
        "unk_token": None,
        "padding_side": "left",  # as published: the last position is the pooled one for every row of a batch
        "model_max_length": 131072,
        "clean_up_tokenization_spaces": False,
    })

    config = Qwen3Config(
        architectures=["Qwen3ForCausalLM"],
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=2560,
        intermediate_size=512,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=128,
        max_position_embeddings=40960,
        rope_theta=1000000,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=end_of_text,
        eos_token_id=end_of_text,
        pad_token_id=end_of_text,
        initializer_range=0.02,
    )
    torch.manual_seed(seed)
    model = Qwen3Model(config).to(torch.bfloat16)
    # Qwen3Model's own weight names (no "model." prefix), in the published checkpoint's dtype.
    model.save_pretrained(path, safe_serialization=True)
    # config.json as the published model has it (transformers 4.51 keys), which newer transformers still read.
    config_data = json.loads((path / "config.json").read_text())
    for key in ("rope_parameters", "layer_types", "dtype", "transformers_version"):
        config_data.pop(key, None)
    config_data.update(architectures=["Qwen3ForCausalLM"], rope_theta=1000000, rope_scaling=None,
                       torch_dtype="bfloat16", max_window_layers=layers)
    _write_json(path / "config.json", config_data)
    _sentence_transformers_files(path, hidden_size=config.hidden_size, max_seq_length=32768, pooling="last",
                                 do_lower_case=False, prompts={"query": QWEN3_QUERY_PROMPT, "document": ""})
    return StandIn(QWEN3_ID, path, config.hidden_size, "last")


def build_bge_large_zh(path: Path, *, layers: int = 2, seed: int = 0) -> StandIn:
    """A bge-large-zh-v1.5-shaped model directory at ``path``."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                       lowercase=True)
    tokenizer.train_from_iterator(training_texts(), vocab_size=4000, min_frequency=1, show_progress=False,
                                  special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tokenizer.save(str(path / "tokenizer.json"))
    tokenizer.save_model(str(path))  # vocab.txt, which BertTokenizer also accepts
    _write_json(path / "tokenizer_config.json", {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "tokenize_chinese_chars": True,
        "model_max_length": 512,
        "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
        "mask_token": "[MASK]",
        "clean_up_tokenization_spaces": True,
    })
    config = BertConfig(
        architectures=["BertModel"],
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=1024,
        num_hidden_layers=layers,
        num_attention_heads=16,
        intermediate_size=1024,
        max_position_embeddings=512,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        initializer_range=0.02,
    )
    torch.manual_seed(seed)
    model = BertModel(config)
    model.save_pretrained(path, safe_serialization=True)
    # config.json as the published model has it (transformers 4.x keys): SGLang's BertModel reads
    # position_embedding_type, which newer transformers no longer write.
    config_data = json.loads((path / "config.json").read_text())
    for key in ("dtype", "transformers_version"):
        config_data.pop(key, None)
    config_data.update(architectures=["BertModel"], position_embedding_type="absolute", torch_dtype="float32",
                       pooler_fc_size=768, pooler_num_attention_heads=12, pooler_num_fc_layers=3,
                       pooler_size_per_head=128, pooler_type="first_token_transform", use_cache=True,
                       directionality="bidi")
    _write_json(path / "config.json", config_data)
    _sentence_transformers_files(path, hidden_size=config.hidden_size, max_seq_length=512, pooling="cls",
                                 do_lower_case=True, prompts=None)
    return StandIn(BGE_ZH_ID, path, config.hidden_size, "cls")


def install_in_hub_cache(standin: StandIn, cache: Path, revision: str) -> Path:
    """File the stand-in in a Hugging Face hub cache under its real id, as ``hf download`` would have.

    ``revision`` names the snapshot (use mteb's pinned revision so that mteb's loader finds it too); the
    ``main`` ref points at it, which is what a lookup without a revision reads.
    """
    repo = cache / ("models--" + standin.model_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    if not snapshot.exists():
        snapshot.symlink_to(standin.path.resolve(), target_is_directory=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot
