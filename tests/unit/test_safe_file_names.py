"""A name that becomes a file name (a hardware key, a dtype, an alias) passes only if it cannot leave the store."""

import pytest

from pytest_embedeval.facts.names import safe_name


@pytest.mark.parametrize("name", ["minilm", "cpu-2c", "a100-80gb-x1", "float32", "Qwen3_4B.v2"])
def test_plain_names_pass(name):
    assert safe_name(name, "hardware key") == name


@pytest.mark.parametrize("name", ["../../x", "/../../x", "a/b", "..", ".", "", "a b", "x\x00", "é"])
def test_a_name_that_could_leave_the_store_is_refused_with_what_and_which_characters(name):
    with pytest.raises(ValueError) as info:
        safe_name(name, "--embed-hardware value")
    message = str(info.value)
    assert "--embed-hardware value" in message and repr(name) in message
    assert "letters, digits, '.', '_' and '-'" in message
