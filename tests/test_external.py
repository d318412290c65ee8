from dataclasses import replace

import pytest

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


@pytest.mark.server  # imports SGLang's model classes
def test_the_override_package_exports_a_class_under_sglangs_architecture_name():
    import importlib

    module = importlib.import_module(PACKAGE + ".mean_pooled_bert")
    assert [cls.__name__ for cls in module.EntryClass] == ["BertModel"]


@pytest.mark.server  # imports SGLang's model classes
def test_the_cpu_build_of_qwen3_keeps_sglangs_class_and_name():
    import importlib

    from sglang.srt.models import qwen3

    module = importlib.import_module(PACKAGE + ".cpu_qwen3")
    (cls,) = module.EntryClass
    assert cls.__name__ == "Qwen3ForCausalLM" and issubclass(cls, qwen3.Qwen3ForCausalLM)
