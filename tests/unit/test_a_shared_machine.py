"""A shared GPU box, without a server: keys, proxies, strangers' processes, PIDs, secrets in what is printed."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import psutil
import pytest

from pytest_embedeval.facts.registry import Registry
from pytest_embedeval.facts.server_access import answer_limit, redact_url
from pytest_embedeval.run import settings as settings_module
from pytest_embedeval.serve import ports
from pytest_embedeval.serve.serving import server_for
from pytest_embedeval.serve.sglang import ServerError, SGLangServer
from pytest_embedeval.serve.watchdog import mask_file
from pytest_embedeval.store.files import LOCK_FILE, locked


def read_settings(tmp_path, **options):
    values = {"embed_model": ["minilm"], "embed_server_arg": [], **options}
    ini = {"embed_device": "cpu", "embed_boot_timeout": "600", "embed_request_timeout": "120",
           "embed_baselines": "baselines", "embed_model": None}
    return settings_module.read(lambda name: values.get(name), ini.get, tmp_path)


# -- keys -----------------------------------------------------------------------------------------------------

def test_every_booted_server_has_a_key_of_its_own_and_the_incumbent_never_gets_the_candidates(tmp_path, monkeypatch):
    monkeypatch.delenv("EMBEDEVAL_API_KEY", raising=False)
    settings = read_settings(tmp_path, embed_incumbent_server_arg=[""])
    spec = settings.specs[0]
    candidate, incumbent = (server_for(spec, settings, tmp_path, incumbent=side) for side in (False, True))
    assert candidate.api_key and incumbent.api_key and candidate.api_key != incumbent.api_key
    assert len(candidate.api_key) >= 32
    given = read_settings(tmp_path, embed_api_key="mine", embed_incumbent_url="http://127.0.0.1:1",
                          embed_incumbent_api_key="theirs")
    assert server_for(spec, given, tmp_path).api_key == "mine"
    assert server_for(spec, given, tmp_path, incumbent=True).api_key == "theirs"
    unkeyed = read_settings(tmp_path, embed_api_key="mine", embed_incumbent_url="http://127.0.0.1:1")
    assert server_for(spec, unkeyed, tmp_path, incumbent=True).api_key is None  # not the candidate's "mine"


def test_a_server_listening_beyond_this_machine_needs_the_users_key(tmp_path, monkeypatch):
    monkeypatch.delenv("EMBEDEVAL_API_KEY", raising=False)
    with pytest.raises(settings_module.SettingsError, match="--embed-host 0.0.0.0 lets other machines reach the "
                                                            "server: give it a key they must send"):
        read_settings(tmp_path, embed_host="0.0.0.0")
    assert read_settings(tmp_path, embed_host="0.0.0.0", embed_api_key="k").exposure()
    assert read_settings(tmp_path, embed_host="::1").exposure() is None  # loopback: the random key is enough


# -- the port's owner -----------------------------------------------------------------------------------------

@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this machine")
def test_a_listener_on_ipv6_loopback_counts_as_taking_the_port():
    with socket.socket(socket.AF_INET6) as squatter:
        try:
            squatter.bind(("::1", 0))
        except OSError as exc:
            pytest.skip(f"no IPv6 loopback here: {exc}")
        squatter.listen()
        port = squatter.getsockname()[1]
        assert ports.port_taken("::1", port)
        assert [pid for pid, _ in ports.listeners(port, "::1")] == [os.getpid()]
    assert not ports.port_taken("::1", port)


def test_another_users_process_is_named_without_its_command_line(monkeypatch):
    mine = ports.describe_pid(os.getpid())
    assert "python" in mine and ":" in mine  # this user's own: the command line helps
    me = os.getuid()
    monkeypatch.setattr(ports.os, "getuid", lambda: me + 12345)  # every process is now a stranger's
    theirs = ports.describe_pid(os.getpid())
    assert theirs == f"PID {os.getpid()} ({psutil.Process().name()}, a process of another user)"


# -- teardown ---------------------------------------------------------------------------------------------------

def test_a_reaped_servers_pid_taken_by_another_process_is_left_alone(tmp_path):
    # The kernel may give a reaped server's PID to any new process. A stand-in for that process: one in a session
    # of its own (so its session id is its PID, as the server's was), whose start time is not the server's.
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        server = SGLangServer(Registry().resolve("minilm"), log_path=tmp_path / "s.log")
        # The server's Popen, exited and reaped; its PID is now the stranger's.
        server.process = SimpleNamespace(pid=stranger.pid, poll=lambda: 0, wait=lambda timeout=None: 0)
        server._started_at = psutil.Process(stranger.pid).create_time() - 30  # when the server started
        server.stop(grace=1)
        assert stranger.poll() is None, "teardown signalled the process that now holds the server's PID"
    finally:
        stranger.kill()
        stranger.wait(5)


def test_teardown_ends_the_process_it_started_by_its_start_time(tmp_path):
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    server = SGLangServer(Registry().resolve("minilm"), log_path=tmp_path / "s.log")
    server.process, server._started_at = process, psutil.Process(process.pid).create_time()
    server.stop(grace=1)
    assert process.poll() is not None and not psutil.pid_exists(process.pid)


# -- what a failed start leaves, and what its errors print ------------------------------------------------------

def test_the_key_file_is_removed_when_a_start_fails_after_writing_it(tmp_path, monkeypatch):
    server = SGLangServer(Registry().resolve("minilm"), log_path=tmp_path / "s.log", api_key="k" * 32)
    monkeypatch.setattr(server, "_supported_argv", lambda: ["true"])

    def no_exec(*args, **kwargs):
        assert server.config_path.exists()  # written, and the start fails right after
        raise OSError("exec failed")

    monkeypatch.setattr(subprocess, "Popen", no_exec)
    with pytest.raises(OSError, match="exec failed"):
        server.start()
    assert not server.config_path.exists()


def test_a_server_killed_during_boot_says_it_was_killed_and_the_log_tail_cuts_long_lines(tmp_path):
    server = SGLangServer(Registry().resolve("minilm"), log_path=tmp_path / "s.log", boot_timeout=30)
    server.log_path.write_text("starting\n" + "server_args=" + "x" * 20000 + "\nKilled\n")
    server.process = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), 9)"])
    server.process.wait(10)
    with pytest.raises(ServerError) as info:
        server.wait_until_ready()
    message = str(info.value)
    assert "SGLang server for 'minilm' was killed by signal 9 during boot" in message
    assert "... (19712 more characters in the log)" in message and len(message) < 2000


def test_credentials_in_a_url_are_masked_wherever_it_is_shown(tmp_path):
    assert redact_url("http://user:hunter2@10.0.0.5:30000/v1") == "http://***@10.0.0.5:30000/v1"
    assert redact_url("https://ghp_token@host") == "https://***@host"
    assert redact_url("http://10.0.0.5:30000") == "http://10.0.0.5:30000"
    settings = read_settings(tmp_path, embed_url="http://user:hunter2@10.0.0.5:30000",
                             embed_incumbent_url="http://u:p2@10.0.0.6:1", embed_api_key="k")
    shown = settings.header() + settings.incumbent.describe()
    assert "hunter2" not in shown and "p2" not in shown and "***@10.0.0.5:30000" in shown


# -- big logs and shared file systems ------------------------------------------------------------------------

def test_a_log_is_masked_chunk_by_chunk_and_no_copy_straddling_two_chunks_survives(tmp_path, monkeypatch):
    from pytest_embedeval.serve import watchdog

    monkeypatch.setattr(watchdog, "CHUNK", 7)  # every copy straddles a chunk boundary somewhere
    secret = "s3cret-key-0123"
    log = tmp_path / "log"
    text = "".join(f"line {i} api_key={secret!r} {secret}\n" for i in range(50))
    log.write_text(text)
    mask_file(log, secret)
    masked = log.read_text()
    assert secret not in masked and len(masked) == len(text)
    assert masked.count("*" * len(secret)) == 100


def test_the_writers_lock_is_a_file_opened_for_writing(tmp_path):
    # NFS grants flock only on files opened read-write; a directory cannot be locked there.
    lock = tmp_path / "baselines" / LOCK_FILE
    with locked(tmp_path / "baselines"):
        (fd,) = [int(fd) for fd in os.listdir("/proc/self/fd")
                 if os.path.realpath(f"/proc/self/fd/{fd}") == str(lock.resolve())]
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDWR
        with pytest.raises(BlockingIOError):  # and it is held: a second writer waits
            with open(lock, "r+") as other:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_an_answer_is_allowed_what_its_batch_can_take_and_no_more():
    assert answer_limit(1, 384) < answer_limit(32, 384) < 16 * 1024 * 1024
    assert answer_limit(1, 16384) > answer_limit(1, 384)  # a model with more dimensions is allowed more
    assert answer_limit(1) > 8192 * 16  # any model up to 8192 dimensions, as JSON text


def test_an_answer_on_the_port_with_no_listener_to_be_seen_is_not_taken_as_the_servers(tmp_path, monkeypatch):
    # Linux shows every socket's listener: an answer nobody on this machine listens for came from elsewhere (another
    # network namespace, a forwarded port), and its figures would not be this server's.
    from pytest_embedeval.serve import sglang

    server = SGLangServer(Registry().resolve("minilm"), log_path=tmp_path / "s.log")
    server.process = subprocess.Popen(["sleep", "60"])
    try:
        monkeypatch.setattr(sglang, "listeners", lambda port, host=None: [])
        with pytest.raises(ServerError, match=f"something answered on {server.url} in place of the SGLang server "
                                              "for 'minilm', but no socket listening on port"):
            server.check_port_owner()
    finally:
        server.process.kill()
        server.process.wait(5)
