"""The plugin as users meet it with a server: --embed-url tests a running one and reference drift names the texts;
the runs that boot their own report SGLang's error, serve, show the server's log on failure and leave nothing
after Ctrl-C.

Runs that only need a server point the inner pytest at this session's server (--embed-url), so
SGLang boots once; the runs about booting and teardown boot their own, in a subprocess.
"""

import signal

import pytest

from support.suites import USER_SUITE


def test_embed_url_tests_a_running_server_and_skips_what_it_cannot_measure(pytester, embed_server):
    pytester.makepyfile(USER_SUITE)
    result = pytester.runpytest(f"--embed-url={embed_server.url}/v1", "--embed-model=minilm", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*server memory cannot be measured: --embed-url points at a server this run did not start*"])


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


def test_a_bad_server_argument_fails_with_sglangs_error_and_leaves_nothing(pytester, inner_run):
    pytester.makepyfile(USER_SUITE)
    run = inner_run("--embed-model=minilm", "--embed-server-arg=--dtype not-a-dtype", "--embed-boot-timeout=300")
    assert run.finish(timeout=300) == pytest.ExitCode.TESTS_FAILED
    assert "exited with code" in run.output and "invalid choice: 'not-a-dtype'" in run.output
    assert "3 errors" in run.output  # the one boot failure is reported, not retried per test
    assert run.leftovers() == []


def test_ctrl_c_during_boot_leaves_no_process(pytester, inner_run):
    pytester.makepyfile(USER_SUITE)
    run = inner_run("--embed-model=minilm")
    run.wait_for(run.server_started, timeout=120, what="the server to start")
    run.interrupt(signal.SIGINT)
    run.finish(timeout=60)
    assert "KeyboardInterrupt" in run.output
    assert run.leftovers() == []


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
