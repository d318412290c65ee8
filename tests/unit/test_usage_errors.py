"""A run whose model or options are wrong stops at once with a usage error that says what is wrong, before any
server boots."""

import time

import pytest

from support.model_files import copy_of_minilm
from support.suites import THREE_TEXTS, USER_SUITE, MARKED_SUITE


def test_unknown_model_fails_at_once_and_lists_the_known_ones(pytester):
    pytester.makepyfile(USER_SUITE)
    result = pytester.runpytest("--embed-model=qwen3-8b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown embedding model 'qwen3-8b'. Known models: bge-large-zh, minilm, qwen3-4b.*"])


def test_a_missing_model_directory_is_refused_at_once_listing_the_known_models(pytester):
    pytester.makepyfile(THREE_TEXTS)
    started = time.monotonic()
    result = pytester.runpytest(f"--embed-model={pytester.path / 'no-such-model'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown embedding model '*no-such-model'. "
                                 "Known models: bge-large-zh, minilm, qwen3-4b. Pass one of those, a local model*"])
    assert time.monotonic() - started < 15  # before anything boots


def test_an_unreadable_config_json_is_refused_at_once_naming_the_file(pytester, tmp_path):
    model = copy_of_minilm(tmp_path / "truncated", '{"hidden_size": 384,')
    pytester.makepyfile(THREE_TEXTS)
    result = pytester.runpytest(f"--embed-model={model}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{model / 'config.json'}: not valid JSON*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_broken_user_model_names_its_file_and_field(pytester):
    pytester.makepyprojecttoml("[tool.embedeval.models.ours]\nmodel = 'org/model'\ndimensions = 'big'\n")
    pytester.makepyfile(USER_SUITE)
    result = pytester.runpytest("--embed-model=ours")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pyproject.toml: [[]tool.embedeval.models.ours[]]: field 'dimensions' must be int*"])


def test_embed_url_takes_exactly_one_model(pytester):
    pytester.makepyfile(USER_SUITE)
    result = pytester.runpytest("--embed-url=http://127.0.0.1:9", "--embed-model=minilm", "--embed-model=qwen3-4b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--embed-url tests one server: pass exactly one --embed-model*"])


def test_gpus_on_a_machine_without_them_is_a_clear_error(pytester):
    from pytest_embedeval.serve.sglang import detect_device

    if detect_device() == "cuda":
        pytest.skip("this machine has GPUs")
    pytester.makepyfile(MARKED_SUITE)
    result = pytester.runpytest("--embed-model=minilm", "--embed-gpus=0,1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--embed-gpus 0,1: NVML sees no GPU on this machine*"])
