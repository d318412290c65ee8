"""A boot that cannot succeed fails in bounded time, saying what went wrong: a server that never gets ready (its whole
tree killed), one that dies during boot (with SGLang's own error), a long boot (its progress told on the way), and
a server that is not ours on our port (named)."""

import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from pytest_embedeval.serve.sglang import ServerError, SGLangServer
from pytest_embedeval.facts.registry import Registry
from pytest_embedeval.serve.watchdog import session_members


# A stand-in, because no real server can be made to hang on purpose: it answers 503 on /health
# forever and keeps a child process, as SGLang keeps its scheduler.
HANGING_SERVER = textwrap.dedent("""
    import http.server, subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print("stand-in: loading weights forever, child", child.pid, flush=True)
    class Starting(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503); self.end_headers()
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Starting).serve_forever()
""")


class HangingServer(SGLangServer):
    @property
    def argv(self):
        return [sys.executable, "-c", HANGING_SERVER, str(self.port)]


# Starts a stand-in server process that never gets ready.
def test_a_server_that_never_gets_ready_is_killed_with_its_whole_tree(tmp_path):
    server = HangingServer(Registry().resolve("minilm"), log_path=tmp_path / "hang.log", boot_timeout=3)
    started = time.monotonic()
    with pytest.raises(ServerError) as info:
        server.start()
    assert time.monotonic() - started < 3 + 20  # timeout plus the stop grace at most
    assert "was not ready after 3 s" in str(info.value)
    assert "stand-in: loading weights forever" in str(info.value)  # the log tail
    child_pid = int(server.log_tail().split("child")[1].split()[0])
    assert not psutil.pid_exists(server.process.pid)
    assert not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE


def test_a_server_that_dies_during_boot_fails_at_once_with_sglangs_own_error(tmp_path):
    server = SGLangServer(
        Registry().resolve("minilm"), device="cpu", log_path=tmp_path / "bad.log",
        # A value SGLang's own parser refuses once it runs (a flag it does not know is refused before launch).
        extra_args=("--dtype", "not-a-dtype"), boot_timeout=300,
    )
    started = time.monotonic()
    with pytest.raises(ServerError) as info:
        server.start()
    assert time.monotonic() - started < 120  # fails on exit, not on the boot timeout
    message = str(info.value)
    assert "exited with code" in message and "during boot" in message
    assert "invalid choice: 'not-a-dtype'" in message


# Starts a stand-in server process that never gets ready.
def test_a_long_boot_reports_its_progress_with_the_servers_last_log_line(tmp_path, monkeypatch):
    # A STAND-IN interpreter: an in-range SGLang to the version question, and a server that logs and never
    # becomes ready (the port stays closed), as SGLang does while it loads weights.
    from pytest_embedeval.serve import compat, sglang

    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\ncase "$*" in\n'
                    "  *\"version('sglang')\"*) echo 0.5.23;;\n"
                    "  *ServerArgs*) echo '[]';;\n"
                    '  *) i=0; while true; do i=$((i+1)); echo "Load weight begin. step $i"; sleep 0.2; done;;\n'
                    "esac\n")
    fake.chmod(0o755)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(sglang, "BOOT_REPORT_EVERY", 0.5)
    monkeypatch.setattr(compat.SGLangInstall, "supported", lambda self, argv, plugin_flags: argv)
    compat.installed.cache_clear()
    lines = []
    server = SGLangServer(Registry().resolve("minilm"), device="cpu", python=str(fake), boot_timeout=2.5,
                          log_path=tmp_path / "server.log", progress=lines.append)
    with pytest.raises(ServerError, match="was not ready after 2 s"):
        server.start()
    compat.installed.cache_clear()
    assert len(lines) >= 3, lines
    assert all(line.startswith("booting SGLang for minilm: ") for line in lines)
    assert "Load weight begin. step" in lines[-1]
    assert not server.is_alive()


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
