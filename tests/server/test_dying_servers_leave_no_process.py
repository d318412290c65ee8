"""Faults of the server's life, with real SGLang: a model SGLang cannot load, a server killed mid-test, SIGTERM to
pytest and a taken port each end in a clear error, and no process of theirs outlives the run.

One inner run holds a model SGLang cannot load, the API key and a server killed mid-test; SIGTERM gets a run of its
own; the taken port is one boot through the library, which fails.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import time
import uuid

import pytest

from pytest_embedeval.serve.sglang import ServerError, SGLangServer
from pytest_embedeval.facts.registry import Registry, embedded_minilm_dir

from support.inner_run import InnerRun
from support.sessions import SessionWatch, of_run
from support.model_files import copy_of_minilm


SECRET = f"sk-embedeval-test-{uuid.uuid4().hex}"


# -- real servers: a taken port ------------------------------------------------------------------------

PORT_BOOT_TIMEOUT = 45


def test_a_taken_port_fails_the_boot_in_bounded_time_and_leaves_no_process(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()  # accepts connections and never answers, like a stuck process on the port
        port = holder.getsockname()[1]
        server = SGLangServer(Registry().resolve("minilm"), device="cpu", port=port, log_path=tmp_path / "port.log",
                              boot_timeout=PORT_BOOT_TIMEOUT)
        started = time.monotonic()
        with SessionWatch(lambda: [server.process.pid] if server.process else []) as watch:
            with pytest.raises(ServerError) as info:
                server.start()
        seconds = time.monotonic() - started
    message = str(info.value)
    print(f"taken port detected after {seconds:.1f} s: {message.splitlines()[0]}")
    if "already in use" in message.splitlines()[0]:  # the launcher checks the port (engine patch)
        assert str(port) in message.splitlines()[0]
        assert seconds < 30
    else:  # SGLang 0.5.23 logs the bind error and then hangs: only the boot timeout ends it
        assert f"was not ready after {PORT_BOOT_TIMEOUT} s (--embed-boot-timeout); it was stopped" in message
        assert "Log: " in message and len(message.splitlines()) > 3  # with the log's tail
        assert seconds < PORT_BOOT_TIMEOUT + 25  # the timeout plus the stop grace
    if server.process is not None:
        watch.sessions.add(server.process.pid)  # its session: the root was its leader
    assert watch.leftovers() == []


# -- real servers: a broken model, a key, a server killed mid-test -------------------------------------

BROKEN_MODEL = "broken-config"


KILLED_SUITE = """
import time
from pathlib import Path

import psutil


def test_serves_with_the_key(embed_client, embed_run):
    assert embed_client.embed(["hello"]).shape == (1, 384)


def test_fails_on_purpose(embed_client):
    assert embed_client.embed(["hello"]).shape == (1, 1)


def test_server_killed_mid_test(request, embed_client):
    # The server is not an argument: pytest would print its repr, API key and all (an engine bug,
    # tested on its own in test_a_faulty_server_fails_the_test_clearly.py), and this run checks that nothing else shows the key.
    root = psutil.Process(request.getfixturevalue("embed_server").process.pid)
    tree = [root, *root.children(recursive=True)]
    Path("tree-size").write_text(str(len(tree)))
    for proc in tree:
        proc.kill()
    psutil.wait_procs(tree, timeout=10)
    started = time.monotonic()
    try:
        embed_client.embed(["hello"])
    finally:
        Path("detect-seconds").write_text(str(time.monotonic() - started))
"""


@pytest.fixture(scope="module")
def killed_server_run(tmp_path_factory):
    """One inner run: a model SGLang cannot load, then MiniLM with an API key, killed mid-test."""
    path = tmp_path_factory.mktemp("killed")
    # A config.json the registry can read (dimensions and all) but transformers cannot load.
    config = json.loads((embedded_minilm_dir() / "config.json").read_text())
    copy_of_minilm(path / BROKEN_MODEL, json.dumps({**config, "model_type": "no-such-model-type"}))
    (path / "test_user_suite.py").write_text(KILLED_SUITE)
    run = InnerRun(path, [f"--embed-model={path / BROKEN_MODEL},minilm", f"--embed-api-key={SECRET}",
                          "--embed-boot-timeout=400", "-v", "--durations=0", "--durations-min=0",
                          "--junitxml=junit.xml", "--embed-report=report.json"])
    try:
        with SessionWatch(of_run(run)) as watch:
            code = run.finish(timeout=580)
        yield code, run, path, watch
    finally:
        run.kill()


def setup_seconds(output: str, test: str) -> float:
    return float(re.search(rf"([\d.]+)s setup +\S*{re.escape(test)}", output).group(1))


def test_a_model_sglang_cannot_load_fails_its_tests_at_once_with_sglangs_error(killed_server_run):
    code, run, _, watch = killed_server_run
    output = run.output
    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert f"SGLang server for '{BROKEN_MODEL}' exited with code" in output and "during boot" in output
    assert "model type `no-such-model-type` but Transformers does not recognize this architecture" in output
    assert output.count(f"ERROR test_user_suite.py::test_serves_with_the_key[{BROKEN_MODEL}]") == 1
    assert "3 errors" in output  # one boot failure, reported for each test, not retried per test
    seconds = setup_seconds(output, f"test_serves_with_the_key[{BROKEN_MODEL}]")
    print(f"broken model: boot failure detected after {seconds:.1f} s")
    assert seconds < 200  # on the server's exit, long before the 400 s boot timeout


def test_a_server_killed_mid_test_fails_that_test_saying_it_died(killed_server_run):
    code, run, path, watch = killed_server_run
    output = run.output
    assert "test_serves_with_the_key[minilm] PASSED" in output, output
    assert "test_fails_on_purpose[minilm] FAILED" in output
    assert "test_server_killed_mid_test[minilm] FAILED" in output
    assert int((path / "tree-size").read_text()) >= 3  # the server, its scheduler and detokenizer were up
    killed = output[output.index("_ test_server_killed_mid_test[minilm] _"):]
    assert re.search(r"EmbeddingRequestError: could not reach http://127.0.0.1:\d+/v1/embeddings on every one of "
                     r"3 attempts \(2 retries allowed\): ConnectError", killed), killed
    assert "embed server log, last lines (server NOT RUNNING (it died))" in killed
    assert "The server is fired up and ready to roll!" in killed  # the log's tail, from before it died
    running = output[output.index("_ test_fails_on_purpose[minilm] _"):output.index("_ test_server_killed_mid_test")]
    assert "embed server log, last lines (server running)" in running
    seconds = float((path / "detect-seconds").read_text())
    print(f"killed server: the test failed {seconds:.1f} s after the call")
    assert seconds < 10  # three refused connections and two back-offs, not a timeout


def test_the_run_with_a_broken_model_and_a_killed_server_leaves_no_process(killed_server_run):
    _, run, _, watch = killed_server_run
    assert len(watch.sessions) == 2, watch.seen  # both servers were watched: the broken one and MiniLM
    assert watch.saw("sglang::scheduler") and watch.saw("sglang::detokenizer"), watch.seen
    assert watch.leftovers() == []
    assert run.leftovers() == []


def test_the_api_key_is_nowhere_in_output_junit_or_report_and_reaches_sglang_by_file(killed_server_run):
    code, run, path, _ = killed_server_run
    junit, report = (path / "junit.xml").read_text(), (path / "report.json").read_text()
    for name, text in [("output", run.output), ("JUnit XML", junit), ("JSON report", report)]:
        assert SECRET not in text, f"the API key is in the {name}"
    [minilm] = [model for model in json.loads(report)["models"] if model["model"] == "minilm"]
    argv = minilm["server"]["argv"]
    assert "--api-key" not in argv and "--config" in argv  # the key travels in a 0600 file, never the argv
    # Nothing lost: every test of both models is in the JUnit XML with its outcome.
    assert junit.count("<testcase ") == 6
    assert junit.count("<error ") == 3 and junit.count("<failure ") == 2


# -- real servers: SIGTERM to pytest ---------------------------------------------------------------

def test_sigterm_to_pytest_during_a_test_ends_the_server_tree(pytester, inner_run):
    flag = pytester.path / "in-test"
    pytester.makepyfile(f"""
        import pathlib, time

        def test_running(embed_client):
            embed_client.embed("x")
            pathlib.Path({str(flag)!r}).write_text("running")
            time.sleep(600)
    """)
    run = inner_run("--embed-model=minilm", "--embed-boot-timeout=400", "-v")
    run.wait_for(flag.exists, timeout=500, what="the test to start")
    watch = SessionWatch(of_run(run))
    watch.sample()
    assert watch.saw("sglang.launch_server") and watch.saw("sglang::scheduler"), watch.seen
    started = time.monotonic()
    run.interrupt(signal.SIGTERM)
    run.finish(timeout=120)
    seconds = time.monotonic() - started
    print(f"SIGTERM: pytest and the server's {len(watch.seen)} processes ended {seconds:.1f} s after the signal")
    assert "KeyboardInterrupt" in run.output and "signal 15" in run.output, run.output
    assert watch.leftovers() == []
    assert run.leftovers() == []
    assert seconds < 60
