"""The plugin before any server: each model gets its own run of the suite, an unreachable --embed-url says what to
do, exposing the server needs an option and warns, and a project that does not use the plugin is left alone."""

import pytest

from support.suites import USER_SUITE


def test_each_model_gets_its_own_run_of_the_suite(pytester, cls_pooled_minilm):
    pytester.makepyfile(USER_SUITE)
    result = pytester.runpytest("--collect-only", "-q", f"--embed-model=minilm,{cls_pooled_minilm}")
    result.stdout.fnmatch_lines(["*test_reference[[]minilm[]]", "*test_reference[[]minilm-cls[]]"])
    assert result.ret == pytest.ExitCode.OK


def test_unreachable_embed_url_fails_with_what_to_do(pytester):
    pytester.makepyfile(USER_SUITE)
    result = pytester.runpytest("--embed-url=http://127.0.0.1:9", "--embed-model=minilm")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(["*--embed-url http://127.0.0.1:9 is unreachable*Start the server first*"])


def test_exposing_the_server_needs_an_option_and_a_key_and_warns(pytester, monkeypatch):
    pytester.makepyfile(USER_SUITE)
    monkeypatch.delenv("EMBEDEVAL_API_KEY", raising=False)
    quiet = pytester.runpytest("--embed-model=minilm", "--collect-only", "-q")
    assert "accept connections from other machines" not in quiet.stdout.str()
    keyless = pytester.runpytest("--embed-model=minilm", "--embed-host=0.0.0.0", "--collect-only", "-q")
    assert keyless.ret == pytest.ExitCode.USAGE_ERROR
    keyless.stderr.fnmatch_lines(["*--embed-host 0.0.0.0 lets other machines reach the server: give it a key they "
                                  "must send (EMBEDEVAL_API_KEY)*"])
    monkeypatch.setenv("EMBEDEVAL_API_KEY", "a-key-of-ours")
    exposed = pytester.runpytest("--embed-model=minilm", "--embed-host=0.0.0.0", "--collect-only", "-q")
    exposed.stdout.fnmatch_lines(["*--embed-host 0.0.0.0: the SGLang server will accept connections from other "
                                  "machines, with the key in EMBEDEVAL_API_KEY*"])


def test_an_unrelated_project_is_left_alone(pytester):
    # Another project's own baselines/ folder, which is no business of this plugin's.
    (pytester.path / "baselines").mkdir()
    (pytester.path / "baselines" / "resnet.toml").write_text('top1 = 0.76\n')
    pytester.makepyfile("def test_unrelated():\n    assert 1 + 1 == 2\n")
    # Nor a deprecation of pytest's (config.inicfg printed one per run with pytest 9.2).
    result = pytester.runpytest("-W", "error::pytest.PytestDeprecationWarning")
    result.assert_outcomes(passed=1)
    # pytest's own "plugins:" line names every installed plugin; ours adds no line of its own.
    assert [line for line in result.outlines if "embedeval" in line and not line.startswith("plugins:")] == []
