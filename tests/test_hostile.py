"""Hostile and unlucky inputs (issue 14): a key on a command line, a server that is not ours, a name that
leaves the store, a trickled answer, a malformed body, and pytest killed with -9.

Real SGLang servers wherever a real one shows the behaviour; ``hostile_standin.HostileServer`` (a named
stand-in) only for answers no real server gives on purpose.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import httpx
import psutil
import pytest

from hostile_standin import HostileServer
from pytest_embedeval.serve.client import EmbeddingClient, EmbeddingRequestError
from pytest_embedeval.serve.remote import InsecureKeyWarning, RemoteServer, UnsafeServerReport, warn_if_key_in_clear
from pytest_embedeval.serve.sglang import ServerError, SGLangServer
from pytest_embedeval.serve.watchdog import session_members
from pytest_embedeval.measure.load import run_load
from pytest_embedeval.facts.names import safe_name
from pytest_embedeval.facts.registry import Registry

SECRET = "sk-hostile-7f3a9c"


# -- names that become file names --------------------------------------------------------------------

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


def test_a_dtype_a_remote_server_reports_cannot_become_a_path():
    with HostileServer("bad-dtype") as standin:
        with pytest.raises(UnsafeServerReport) as info:
            RemoteServer(standin.url, Registry().resolve("minilm")).start()
    message = str(info.value)
    assert "'/../../x'" in message and "dtype reported by --embed-url" in message and "/get_server_info" in message
    with HostileServer("json-list") as standin:  # its GET routes answer correctly: a plain dtype passes
        assert RemoteServer(standin.url, Registry().resolve("minilm")).start().dtype == "float32"


# -- a key over plain http ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("url", "key", "warns"),
    [
        ("http://10.0.0.7:30000", SECRET, True),
        ("http://gpu-box.internal:30000/v1", SECRET, True),
        ("https://10.0.0.7:30000", SECRET, False),
        ("http://127.0.0.1:30000", SECRET, False),
        ("http://localhost:30000", SECRET, False),
        ("http://[::1]:30000", SECRET, False),
        ("http://10.0.0.7:30000", None, False),
    ],
)
def test_a_key_sent_over_plain_http_to_another_machine_warns(url, key, warns):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        RemoteServer(url, Registry().resolve("minilm"), api_key=key)
    shown = [w for w in caught if issubclass(w.category, InsecureKeyWarning)]
    assert bool(shown) == warns
    if warns:
        message = str(shown[0].message)
        assert "unencrypted" in message and "https://" in message and SECRET not in message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert warn_if_key_in_clear(url, key) is warns


# -- a total deadline per request --------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["trickle", "trickle-headers"])
def test_a_trickled_answer_fails_the_request_at_its_deadline(mode):
    with HostileServer(mode, delay=0.2) as standin:
        client = EmbeddingClient(standin.url, "m", timeout=1.0, max_retries=0)
        started = time.monotonic()
        with pytest.raises(EmbeddingRequestError) as info:
            client.embed(["a"])
        seconds = time.monotonic() - started
    # Every byte arrives within the 1 s timeout, so a per-read timeout never fires: the whole answer
    # (over 150 bytes at 0.2 s each) takes 33 s. The margin is for a machine busy with SGLang.
    assert seconds < 15, seconds
    assert "within the 1 s timeout on 1 attempt" in str(info.value)


def test_the_load_generator_ends_a_trickled_request_at_its_deadline():
    with HostileServer("trickle", delay=0.2) as standin:
        started = time.monotonic()
        result = run_load(standin.url, "m", [["a"]] * 2, concurrency=2, timeout=1.0)
    assert time.monotonic() - started < 15  # two requests side by side, 1 s each; the answer takes 33 s
    assert (result.requests, result.failures) == (0, 2)
    assert "no complete answer within the 1 s deadline" in result.errors[0]


# -- malformed bodies --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("json-list", "body is a JSON list, not an object with 'data'"),
        ("usage-null", "usage.prompt_tokens is None"),
        ("tokens-text", "usage.prompt_tokens is 'many'"),
        ("null-vectors", "item 0 has no vector of numbers"),
        ("null-in-vector", "item 0 has no vector of numbers"),
    ],
)
def test_a_malformed_body_is_a_failed_request_with_the_reason(mode, reason):
    with HostileServer(mode) as standin:
        result = run_load(standin.url, "m", [["a", "b"]] * 3, concurrency=2, timeout=5.0)
    assert (result.requests, result.failures, result.prompt_tokens) == (0, 3, 0)
    assert reason in result.errors[0], result.errors
    assert reason in result.failure_text()


# -- stop() never waits without a timeout --------------------------------------------------------------

class _StuckPopen(subprocess.Popen):
    """A process whose wait() never returns unless given a timeout (one stuck in the kernel, D state)."""

    def wait(self, timeout=None):
        if timeout is None:
            raise AssertionError("stop() waited for the server without a timeout")
        return super().wait(timeout)


def test_stop_bounds_every_wait(tmp_path):
    server = SGLangServer(Registry().resolve("minilm"), log_path=tmp_path / "s.log")
    server.process = _StuckPopen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    started = time.monotonic()
    server.stop(grace=1)
    assert time.monotonic() - started < 10
    assert server.process.poll() is not None


# -- real servers: the key, a squatter on the port ---------------------------------------------------------

def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


@pytest.mark.server
def test_the_key_is_in_no_argv_environment_or_log_of_a_real_server_and_still_guards_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDEVAL_API_KEY", SECRET)  # as the README recommends
    mine = tmp_path / "mine.yaml"
    mine.write_text("chunked-prefill-size: 1024\n")  # a user's own --config, merged with the key's
    server = SGLangServer(Registry().resolve("minilm"), device="cpu", log_path=tmp_path / "sglang-minilm.log",
                          api_key=SECRET, extra_args=("--config", str(mine)), boot_timeout=400)
    with server:
        tree = _tree(server.process.pid)
        assert len(tree) >= 3  # the server, its scheduler and detokenizer
        for proc in tree:
            assert SECRET not in " ".join(proc.cmdline()), proc
            assert SECRET not in Path(f"/proc/{proc.pid}/environ").read_bytes().decode(errors="replace"), proc
        assert not server.config_path.exists()  # read at start, removed once ready
        log = server.log_path.read_text()
        assert "server_args=" in log and "'api_key': '*****" in log  # SGLang logged it; masked in place
        assert SECRET not in log
        assert os.stat(server.log_path).st_mode & 0o077 == 0
        assert httpx.post(f"{server.url}/v1/embeddings", json={"model": "minilm", "input": "x"}).status_code == 401
        info = httpx.get(f"{server.url}/get_server_info", headers={"Authorization": f"Bearer {SECRET}"}).json()
        assert info["chunked_prefill_size"] == 1024  # the user's config was honoured
        client = EmbeddingClient(server.url, "minilm", api_key=SECRET, timeout=60)
        assert client.embed(["hello"]).shape == (1, 384)
    assert SECRET not in server.log_path.read_text()


SQUATTER = textwrap.dedent("""
    import http.server, sys
    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Healthy).serve_forever()
""")


class RacedServer(SGLangServer):
    """A real SGLang server whose port another process takes right after the free-port check: the
    race the issue saw. The squatter (a stand-in: any HTTP server that answers /health) binds while
    SGLang still imports, long before SGLang would."""

    def _start_watchdog(self):
        super()._start_watchdog()
        self.squatter = subprocess.Popen([sys.executable, "-c", SQUATTER, str(self.port)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)


@pytest.mark.server
def test_a_server_that_is_not_ours_on_our_port_fails_the_boot_naming_it(tmp_path):
    server = RacedServer(Registry().resolve("minilm"), device="cpu", log_path=tmp_path / "raced.log",
                         boot_timeout=120)
    started = time.monotonic()
    try:
        with pytest.raises(ServerError) as info:
            server.start()
        seconds = time.monotonic() - started
        first = str(info.value).splitlines()[0]
        assert f"port {server.port} on 127.0.0.1 taken by PID {server.squatter.pid} (python" in first, first
        assert "answered in place of the SGLang server for 'minilm'" in first
        print(f"squatter detected after {seconds:.1f} s: {first}")
        assert seconds < 60
        assert session_members(server.process.pid) == []  # our own server was stopped, whole session
        assert server.watchdog.poll() is not None
    finally:
        server.squatter.kill()
        server.squatter.wait(5)


# -- pytest killed with -9: a server whose worker leaves the tree and ignores SIGTERM ----------------------

PYTEST_STANDIN = textwrap.dedent('''
    # Plays pytest: starts a server through SGLangServer.start() and is then killed with -9.
    import sys
    from pathlib import Path
    from pytest_embedeval.serve.sglang import SGLangServer
    from pytest_embedeval.facts.registry import Registry

    # A STAND-IN server (not SGLang): its worker double-forks out of the tree and ignores SIGTERM, as
    # SGLang's detokenizer and multiprocessing's resource tracker, re-parented to init, outlived pytest.
    SERVER = """
    import os, signal, time
    if os.fork() == 0:
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(600)
        os._exit(0)
    print("stand-in: loading weights forever", flush=True)
    time.sleep(600)
    """

    class Orphaning(SGLangServer):
        @property
        def argv(self):
            return [sys.executable, "-c", SERVER]

        def _start_watchdog(self):
            if sys.argv[2] == "watchdog":
                super()._start_watchdog()
            Path(sys.argv[1]).write_text(str(self.process.pid))

    Orphaning(Registry().resolve("minilm"), log_path=Path(sys.argv[1]).with_suffix(".log"), boot_timeout=600,
              api_key="k-123").start()
''')


@pytest.mark.server  # starts a stand-in server's process tree and kills it (seconds)
@pytest.mark.parametrize("watchdog", ["watchdog", "no watchdog (control)"])
def test_kill_9_of_pytest_ends_workers_that_left_the_tree_and_ignore_sigterm(tmp_path, watchdog):
    pid_file = tmp_path / "server.pid"
    pytest_standin = subprocess.Popen([sys.executable, "-c", PYTEST_STANDIN, str(pid_file), watchdog])
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()
               and len(session_members(int(pid_file.read_text()))) >= 2):
        assert time.monotonic() < deadline and pytest_standin.poll() is None, "the stand-in server did not start"
        time.sleep(0.1)
    session = int(pid_file.read_text())
    pytest_standin.kill()
    pytest_standin.wait(5)
    time.sleep(10)
    left = session_members(session)
    try:
        if watchdog == "watchdog":
            assert left == []
            assert not (tmp_path / "server.sglang-config.yaml").exists()  # the key file went too
        else:  # what the watchdog is for: PR_SET_PDEATHSIG ended the root, the worker lives on
            assert len(left) == 1
    finally:
        for pid in left:
            os.kill(pid, signal.SIGKILL)


# -- real servers: pytest killed with -9 -------------------------------------------------------------

KILL_SUITE = """
import pathlib

def test_running(embed_client):
    embed_client.embed("x")
    pathlib.Path("in-test").write_text("running")
    import time
    time.sleep(600)
"""


def _names(run) -> set[str]:
    names = set()
    for proc in run.alive():
        try:
            names.add(proc.name())
        except psutil.Error:
            pass
    return names


def _kill_and_check(run, base: Path) -> None:
    """kill -9 pytest alone, as the OOM killer would, then look for anything of its server 10 s later."""
    watched = [p for p in run.alive() if p.pid != run.process.pid]
    run.process.kill()
    run.process.wait(10)
    killed_at = time.monotonic()
    left = run.leftovers(settle=10.0)
    print(f"pytest killed: {len(watched)} processes of its server and watchdog; "
          f"gone after {time.monotonic() - killed_at:.1f} s; left {left}")
    assert left == [], left
    assert [p for p in watched if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert not list(base.rglob("*.sglang-config.yaml"))  # the key file went with them
    for log in base.rglob("sglang-*.log"):
        assert SECRET not in log.read_text(errors="replace"), log


@pytest.mark.server
def test_kill_9_of_pytest_while_the_server_boots_leaves_no_process(pytester, inner_run):
    pytester.makepyfile(KILL_SUITE)
    base = pytester.path / "base"
    run = inner_run("--embed-model=minilm", f"--embed-api-key={SECRET}", "--embed-boot-timeout=400",
                    f"--basetemp={base}", "-v")
    # The orphans the issue saw were SGLang's detokenizer and multiprocessing's resource tracker: wait
    # until both exist, i.e. well into the boot.
    run.wait_for(lambda: {"sglang::detokenizer"} <= _names(run) and any(
        "resource_tracker" in " ".join(p.cmdline()) for p in run.alive() if p.is_running()),
        timeout=300, what="SGLang's detokenizer and resource tracker")
    assert not (pytester.path / "in-test").exists()
    assert list(base.rglob("*.sglang-config.yaml"))  # still booting: the key file is there
    _kill_and_check(run, base)


@pytest.mark.server
def test_kill_9_of_pytest_during_a_test_leaves_no_process(pytester, inner_run):
    pytester.makepyfile(KILL_SUITE)
    base = pytester.path / "base"
    run = inner_run("--embed-model=minilm", f"--embed-api-key={SECRET}", "--embed-boot-timeout=400",
                    f"--basetemp={base}", "-v")
    run.wait_for((pytester.path / "in-test").exists, timeout=500, what="the test to start")
    assert {"sglang::scheduler", "sglang::detokenizer"} <= _names(run)
    _kill_and_check(run, base)


@pytest.mark.server
def test_ctrl_c_while_the_server_boots_still_leaves_no_process(pytester, inner_run, monkeypatch):
    pytester.makepyfile(KILL_SUITE)
    base = pytester.path / "base"
    # Ctrl-C must reach the inner pytest as a KeyboardInterrupt: SIGINT at its default in it, even when
    # this run was started from a script that ignores SIGINT (signals set to SIG_IGN are inherited).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run = inner_run("--embed-model=minilm", f"--embed-api-key={SECRET}", "--embed-boot-timeout=400",
                        f"--basetemp={base}", "-v")
    finally:
        signal.signal(signal.SIGINT, previous)
    run.wait_for(lambda: "sglang::detokenizer" in _names(run), timeout=300, what="SGLang's detokenizer")
    run.interrupt(signal.SIGINT)
    run.finish(timeout=120)
    assert "KeyboardInterrupt" in run.output, run.output
    assert run.leftovers(settle=10.0) == []
    assert not list(base.rglob("*.sglang-config.yaml"))
