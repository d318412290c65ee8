"""The override package's model classes, imported beside SGLang's own: a class under SGLang's architecture name, and
the CPU build of Qwen3 a subclass of SGLang's that keeps its name."""


from pytest_embedeval.serve.external import PACKAGE


# Imports SGLang's model classes.
def test_the_override_package_exports_a_class_under_sglangs_architecture_name():
    import importlib

    module = importlib.import_module(PACKAGE + ".mean_pooled_bert")
    assert [cls.__name__ for cls in module.EntryClass] == ["BertModel"]


# Imports SGLang's model classes.
def test_the_cpu_build_of_qwen3_keeps_sglangs_class_and_name():
    import importlib

    from sglang.srt.models import qwen3

    module = importlib.import_module(PACKAGE + ".cpu_qwen3")
    (cls,) = module.EntryClass
    assert cls.__name__ == "Qwen3ForCausalLM" and issubclass(cls, qwen3.Qwen3ForCausalLM)
