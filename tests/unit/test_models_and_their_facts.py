"""Models and their facts: a built-in alias carries the official facts, a model directory and a project's own models
are read from their files, and a malformed one is named with its file and field."""

import json
import shutil
from pathlib import Path

import pytest

from pytest_embedeval.facts.registry import (
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
    assert qwen.matryoshka == (32, 2560)
    assert (bge.model, bge.dimensions, bge.max_tokens, bge.pooling) == ("BAAI/bge-large-zh-v1.5", 1024, 512, "cls")
    assert bge.matryoshka is None and not bge.trust_remote_code
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


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('model = "a/b"\ndimensions = -1\nmax_tokens = 5', "field 'dimensions' must be a positive integer, got -1"),
        ('model = "a/b"\ndimensions = 8\nmax_tokens = 0', "field 'max_tokens' must be a positive integer, got 0"),
        ('model = "a/b"\ndimensions = 64\nmax_tokens = 5\nmatryoshka = [-32, 64]', "two positive integers"),
        ('model = "a/b"\ndimensions = 64\nmax_tokens = 5\nmatryoshka = [64, 32]', "smallest <= largest"),
        ('model = "a/b"\ndimensions = 64\nmax_tokens = 5\nmatryoshka = [32, 128]', "<= dimensions, got [32, 128]"),
        ('model = ""\ndimensions = 8\nmax_tokens = 5', "field 'model' is required and may not be empty"),
        ('model = "a/b"\ndimensions = 8\nmax_tokens = 5\nquery_prompt = "{x} {query}"', "placeholder {x}"),
        ('model = "a/b"\ndimensions = 8\nmax_tokens = 5\nquery_prompt = "Q: {query"', "not a valid template"),
        ('model = "a/b"\ndimensions = 8\nmax_tokens = 5\nquery_prompt = "{task}: "', "{task} but no {query}"),
        ('model = "a/b"\ndimensions = 8\nmax_tokens = 5\nserver_args = ["--port", "9"]',
         "field 'server_args': the SGLang option '--port' is refused"),
        ('model = "a/b"\ndimensions = 8\nmax_tokens = 5\nserver_args = ["--host=0.0.0.0"]', "use --embed-host instead"),
    ],
)
def test_values_out_of_range_name_the_file_and_field(tmp_path, body, expected):
    pyproject = _write_pyproject(tmp_path, f"[tool.embedeval.models.mine]\n{body}\n")
    with pytest.raises(ModelConfigError) as info:
        load_user_specs(pyproject)
    assert str(pyproject) in str(info.value) and "[tool.embedeval.models.mine]" in str(info.value)
    assert expected in str(info.value)


def test_query_prompts_with_both_placeholders_or_literal_braces_are_accepted(tmp_path):
    pyproject = _write_pyproject(tmp_path, '[tool.embedeval.models.mine]\nmodel = "a/b"\ndimensions = 8\n'
                                           'max_tokens = 5\nquery_prompt = "{{json}} {task}: {query}"\n')
    assert load_user_specs(pyproject)["mine"].format_query("q", task="t") == "{json} t: q"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[tool]\nembedeval = 3", "'tool.embedeval' must be a table"),
        ("tool = 3", "'tool' must be a table"),
        ("[tool.embedeval]\nmodels = 3", "'tool.embedeval.models' must be a table"),
        ("[tool.embedeval.models]\nmine = 3", "[tool.embedeval.models.mine] must be a table of fields"),
        ('[tool.embedeval.models."../x"]\nmodel = "a/b"\ndimensions = 8\nmax_tokens = 5', "model alias"),
        ('[tool.embedeval.models."a/b"]\nmodel = "a/b"\ndimensions = 8\nmax_tokens = 5', "'a/b' cannot be used"),
    ],
)
def test_a_pyproject_of_the_wrong_shape_is_a_sentence_not_an_internal_error(tmp_path, body, expected):
    pyproject = _write_pyproject(tmp_path, body + "\n")
    with pytest.raises(ModelConfigError) as info:
        load_user_specs(pyproject)
    assert str(pyproject) in str(info.value) and expected in str(info.value)


def test_a_pyproject_that_is_not_utf8_names_the_file(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_bytes(b'[tool.embedeval.models.mine]\nmodel = "caf\xe9"\n')
    with pytest.raises(ModelConfigError, match="not UTF-8"):
        load_user_specs(pyproject)


@pytest.mark.parametrize(
    ("file", "content", "expected"),
    [
        ("sentence_bert_config.json", "{not json", "not valid JSON"),
        ("sentence_bert_config.json", "[256]", "must hold a JSON object, got list"),
        ("sentence_bert_config.json", '{"max_seq_length": 0}', "field 'max_seq_length' must be a positive integer"),
        ("sentence_bert_config.json", '{"max_seq_length": "256"}', "must be a positive integer, got '256'"),
        ("1_Pooling/config.json", "{", "not valid JSON"),
        ("1_Pooling/config.json", "null", "must hold a JSON object, got NoneType"),
        ("config.json", '{"hidden_size": -384}', "field 'hidden_size' must be a positive integer"),
    ],
)
def test_a_malformed_model_file_names_the_file(tmp_path, file, content, expected):
    model = tmp_path / "mini"
    shutil.copytree(embedded_minilm_dir(), model, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx",
                                                                                "openvino"))
    (model / file).write_text(content)
    with pytest.raises(ModelConfigError) as info:
        spec_from_directory(model)
    assert str(model / file) in str(info.value) and expected in str(info.value)


def test_a_model_directory_whose_name_cannot_be_a_file_name_needs_an_alias(tmp_path):
    model = tmp_path / "my model"
    shutil.copytree(embedded_minilm_dir(), model, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx",
                                                                                "openvino"))
    with pytest.raises(ModelConfigError) as info:
        Registry().resolve(str(model))
    assert "'my model'" in str(info.value) and "[tool.embedeval.models.<alias>]" in str(info.value)
    assert spec_from_directory(model, alias="mine").alias == "mine"
