"""Which models SGLang serves through the plugin's override package: a mean-pooled BERT does; a CLS-pooled one and a
model whose files are absent are left to SGLang's own classes."""

from dataclasses import replace

from pytest_embedeval.serve.external import PACKAGE, environment_for, needs_override
from pytest_embedeval.facts.registry import Registry


def test_mean_pooled_bert_gets_the_override_package():
    minilm = Registry().resolve("minilm")
    assert needs_override(minilm)
    assert environment_for(minilm) == {"SGLANG_EXTERNAL_MODEL_PACKAGE": PACKAGE}


def test_a_cls_pooled_bert_runs_on_sglangs_own_class():
    cls_minilm = replace(Registry().resolve("minilm"), pooling="cls")
    assert environment_for(cls_minilm) == {}


def test_models_whose_files_are_absent_are_left_alone():
    qwen = Registry().resolve("qwen3-4b")  # not in this machine's HF cache
    assert environment_for(qwen) == {}
