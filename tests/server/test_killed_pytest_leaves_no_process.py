"""pytest killed with -9 or interrupted with Ctrl-C, while its server boots or during a test, leaves no process of
the server's, not even a worker that left the tree and ignores SIGTERM."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from pytest_embedeval.serve.watchdog import session_members


SECRET = "sk-hostile-7f3a9c"


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


# Starts a stand-in server's process tree and kills it (seconds).
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


def test_kill_9_of_pytest_during_a_test_leaves_no_process(pytester, inner_run):
    pytester.makepyfile(KILL_SUITE)
    base = pytester.path / "base"
    run = inner_run("--embed-model=minilm", f"--embed-api-key={SECRET}", "--embed-boot-timeout=400",
                    f"--basetemp={base}", "-v")
    run.wait_for((pytester.path / "in-test").exists, timeout=500, what="the test to start")
    assert {"sglang::scheduler", "sglang::detokenizer"} <= _names(run)
    _kill_and_check(run, base)


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
