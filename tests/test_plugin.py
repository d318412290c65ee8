"""The plugin as users meet it: a test file, a pytest command line, the outcome and the output.

Runs that only need a server point the inner pytest at this session's server (--embed-url), so
SGLang boots once; the runs about booting and teardown boot their own, in a subprocess.
"""

import signal

import pytest

USER_SUITE = """
def test_reference(embed_check_reference):
    embed_check_reference()

def test_dimensions(embed_client, embed_model):
    assert embed_client.embed(["hello", "你好"]).shape == (2, embed_model.dimensions)

def test_memory(embed_server_memory):
    assert embed_server_memory() > 0
"""


def test_unknown_model_fails_at_once_and_lists_the_known_ones(pytester):
    pytester.makepyfile(USER_SUITE)
    result = pytester.runpytest("--embed-model=qwen3-8b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown embedding model 'qwen3-8b'. Known models: bge-large-zh, minilm, qwen3-4b.*"])


def test_a_broken_user_model_names_its_file_and_field(pytester):
    pytester.makepyprojecttoml("[tool.embedeval.models.ours]\nmodel = 'org/model'\ndimensions = 'big'\n")
    pytester.makepyfile(USER_SUITE)
    result = pytester.runpytest("--embed-model=ours")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pyproject.toml: [[]tool.embedeval.models.ours[]]: field 'dimensions' must be int*"])


def test_each_model_gets_its_own_run_of_the_suite(pytester, cls_pooled_minilm):
    pytester.makepyfile(USER_SUITE)
    result = pytester.runpytest("--collect-only", "-q", f"--embed-model=minilm,{cls_pooled_minilm}")
    result.stdout.fnmatch_lines(["*test_reference[[]minilm[]]", "*test_reference[[]minilm-cls[]]"])
    assert result.ret == pytest.ExitCode.OK


def test_embed_url_takes_exactly_one_model(pytester):
    pytester.makepyfile(USER_SUITE)
    result = pytester.runpytest("--embed-url=http://127.0.0.1:9", "--embed-model=minilm", "--embed-model=qwen3-4b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--embed-url tests one server: pass exactly one --embed-model*"])


def test_unreachable_embed_url_fails_with_what_to_do(pytester):
    pytester.makepyfile(USER_SUITE)
    result = pytester.runpytest("--embed-url=http://127.0.0.1:9", "--embed-model=minilm")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(["*--embed-url http://127.0.0.1:9 is unreachable*Start the server first*"])


@pytest.mark.server
def test_embed_url_tests_a_running_server_and_skips_what_it_cannot_measure(pytester, embed_server):
    pytester.makepyfile(USER_SUITE)
    result = pytester.runpytest(f"--embed-url={embed_server.url}/v1", "--embed-model=minilm", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*server memory cannot be measured: --embed-url points at a server this run did not start*"])


@pytest.mark.server
def test_reference_drift_names_the_texts_and_cosines(pytester, embed_server, cls_pooled_minilm):
    # The server mean-pools; these facts say CLS: a real pooling mismatch, as after a bad upgrade.
    pytester.makepyfile(USER_SUITE)
    result = pytester.runpytest(f"--embed-url={embed_server.url}", f"--embed-model={cls_pooled_minilm}")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines([
        "*8 of 8 texts drifted from the reference (cosine < 0.9999); worst 0.*",
        "*cosine  text",
        "*0.*'hello world'",
    ])


@pytest.mark.server
def test_a_bad_server_argument_fails_with_sglangs_error_and_leaves_nothing(pytester, inner_run):
    pytester.makepyfile(USER_SUITE)
    run = inner_run("--embed-model=minilm", "--embed-server-arg=--dtype not-a-dtype", "--embed-boot-timeout=300")
    assert run.finish(timeout=300) == pytest.ExitCode.TESTS_FAILED
    assert "exited with code" in run.output and "invalid choice: 'not-a-dtype'" in run.output
    assert "3 errors" in run.output  # the one boot failure is reported, not retried per test
    assert run.leftovers() == []


@pytest.mark.server
def test_ctrl_c_during_boot_leaves_no_process(pytester, inner_run):
    pytester.makepyfile(USER_SUITE)
    run = inner_run("--embed-model=minilm")
    run.wait_for(run.server_started, timeout=120, what="the server to start")
    run.interrupt(signal.SIGINT)
    run.finish(timeout=60)
    assert "KeyboardInterrupt" in run.output
    assert run.leftovers() == []


@pytest.mark.server
def test_booted_server_serves_reports_its_log_on_failure_and_ctrl_c_cleans_up(pytester, inner_run):
    flag = pytester.path / "in-test"
    pytester.makepyfile(USER_SUITE + f"""
def test_fails_while_server_runs(embed_client):
    assert embed_client.embed("x").shape == (1, 1)

def test_interrupted(embed_client):
    import pathlib, time
    pathlib.Path({str(flag)!r}).write_text("running")
    time.sleep(600)
""")
    run = inner_run("--embed-model=minilm", "-v", "--embed-boot-timeout=400")
    run.wait_for(flag.exists, timeout=500, what="the last test to start")
    run.interrupt(signal.SIGINT)
    run.finish(timeout=120)
    output = run.output
    for line in ("test_reference[minilm] PASSED", "test_dimensions[minilm] PASSED", "test_memory[minilm] PASSED",
                 "test_fails_while_server_runs[minilm] FAILED", "KeyboardInterrupt"):
        assert line in output, output
    assert "embed server log, last lines (server running)" in output
    assert "The server is fired up and ready to roll!" in output
    assert run.leftovers() == []


def test_exposing_the_server_needs_an_option_and_warns(pytester):
    pytester.makepyfile(USER_SUITE)
    quiet = pytester.runpytest("--embed-model=minilm", "--collect-only", "-q")
    assert "accept connections from other machines" not in quiet.stdout.str()
    exposed = pytester.runpytest("--embed-model=minilm", "--embed-host=0.0.0.0", "--collect-only", "-q")
    exposed.stdout.fnmatch_lines(["*--embed-host 0.0.0.0: the SGLang server will accept connections from other "
                                  "machines; protect it with EMBEDEVAL_API_KEY*"])


def test_an_exposed_server_is_still_reached_over_loopback():
    from pytest_embedeval.serve.sglang import SGLangServer
    from pytest_embedeval.facts.registry import Registry

    server = SGLangServer(Registry().resolve("minilm"), device="cpu", host="0.0.0.0", port=31999)
    assert server.argv[server.argv.index("--host") + 1] == "0.0.0.0"
    assert server.url == "http://127.0.0.1:31999"
