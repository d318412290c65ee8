import json
import shutil
from pathlib import Path

import pytest

from pytest_embedeval.registry import (
    ModelConfigError,
    Registry,
    UnknownModelError,
    embedded_minilm_dir,
    load_user_specs,
    spec_from_directory,
)


def test_builtin_aliases_carry_the_official_facts():
    registry = Registry()
    qwen, bge, minilm = (registry.resolve(a) for a in ("qwen3-4b", "bge-large-zh", "minilm"))
    assert (qwen.model, qwen.dimensions, qwen.max_tokens, qwen.pooling) == ("Qwen/Qwen3-Embedding-4B", 2560, 32768, "last")
    assert qwen.matryoshka == (32, 2560) and qwen.needs_is_embedding
    assert (bge.model, bge.dimensions, bge.max_tokens, bge.pooling) == ("BAAI/bge-large-zh-v1.5", 1024, 512, "cls")
    assert bge.matryoshka is None and not bge.trust_remote_code
    assert qwen.official["cmteb_avg"] == 72.27 and bge.official["cmteb_avg"] == 64.53
    assert Path(minilm.model) == embedded_minilm_dir() and (minilm.dimensions, minilm.pooling) == (384, "mean")


def test_unknown_alias_lists_the_known_models():
    with pytest.raises(UnknownModelError) as info:
        Registry().resolve("qwen3-8b")
    message = str(info.value)
    assert "'qwen3-8b'" in message
    for alias in ("bge-large-zh", "minilm", "qwen3-4b"):
        assert alias in message


def test_query_prompts_follow_each_models_format():
    registry = Registry()
    assert registry.resolve("qwen3-4b").format_query("what is a GPU", task="Retrieve passages") == (
        "Instruct: Retrieve passages\nQuery:what is a GPU"
    )
    assert registry.resolve("bge-large-zh").format_query("显卡") == "为这个句子生成表示以用于检索相关文章：显卡"
    assert registry.resolve("minilm").format_query("gpu") == "gpu"


def test_a_model_directory_is_understood_from_its_own_files():
    spec = spec_from_directory(embedded_minilm_dir(), alias="mini")
    # max_seq_length from sentence_bert_config.json wins over the 512 positions of config.json
    assert (spec.alias, spec.dimensions, spec.max_tokens, spec.pooling) == ("mini", 384, 256, "mean")
    assert Registry().resolve(str(embedded_minilm_dir())).dimensions == 384


def _write_pyproject(tmp_path, body: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(body)
    return path


def test_user_models_from_pyproject(tmp_path):
    pyproject = _write_pyproject(tmp_path, f"""
[tool.embedeval.models.our-bge]
model = "BAAI/bge-m3"
dimensions = 1024
max_tokens = 8192
pooling = "cls"
server_args = ["--mem-fraction-static", "0.5"]

[tool.embedeval.models.local-mini]
model = "{embedded_minilm_dir()}"
query_prompt = "query: "
""")
    specs = load_user_specs(pyproject)
    assert specs["our-bge"].server_args == ("--mem-fraction-static", "0.5")
    assert specs["our-bge"].max_tokens == 8192
    # facts not given are read from the local directory
    assert (specs["local-mini"].dimensions, specs["local-mini"].pooling) == (384, "mean")
    assert specs["local-mini"].format_query("x") == "query: x"
    registry = Registry(specs)
    assert registry.resolve("our-bge").model == "BAAI/bge-m3"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('model = "a/b"\ndimension = 3\nmax_tokens = 5', "unknown field 'dimension'"),
        ('model = "a/b"\ndimensions = "1024"\nmax_tokens = 5', "field 'dimensions' must be int"),
        ("dimensions = 8\nmax_tokens = 5", "field 'model' is required"),
        ('model = "a/b"\nmax_tokens = 5', "field 'dimensions' is required"),
        ('model = "a/b"\ndimensions = 8\nmax_tokens = 5\npooling = "max"', "field 'pooling' must be one of"),
        ('model = "a/b"\ndimensions = 8\nmax_tokens = 5\nmatryoshka = [32]', "field 'matryoshka' must be"),
    ],
)
def test_malformed_user_models_name_the_file_and_field(tmp_path, body, expected):
    pyproject = _write_pyproject(tmp_path, f"[tool.embedeval.models.mine]\n{body}\n")
    with pytest.raises(ModelConfigError) as info:
        load_user_specs(pyproject)
    assert str(pyproject) in str(info.value)
    assert "[tool.embedeval.models.mine]" in str(info.value)
    assert expected in str(info.value)


def test_pooling_is_read_from_the_sentence_transformers_config(tmp_path):
    model = tmp_path / "cls-mini"
    shutil.copytree(embedded_minilm_dir(), model, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx"))
    (model / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert spec_from_directory(model).pooling == "cls"
