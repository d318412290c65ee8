"""A shared GPU box, with real SGLang servers: a stranger without the key, squatters on the port at every
address the client reaches, a proxy in the environment; and STAND-IN servers for answers too big or too slow."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from pytest_embedeval.facts.registry import Registry
from pytest_embedeval.serve.client import BadEmbeddingResponse, EmbeddingClient
from pytest_embedeval.serve.remote import RemoteServer, UnreachableServer
from pytest_embedeval.serve.sglang import ServerError, SGLangServer


def test_a_booted_server_refuses_a_request_without_its_key(embed_server, embed_client):
    # Any local user (or a container on the host network) can reach 127.0.0.1; the port is in /proc/PID/cmdline.
    stranger = httpx.post(f"{embed_server.url}/v1/embeddings", json={"model": "minilm", "input": "x"}, trust_env=False)
    assert stranger.status_code == 401
    assert embed_client.embed(["x"]).shape == (1, 384)  # the run's own client holds the key


# A STAND-IN squatter: any HTTP server that answers /health 200 and notes the headers it was sent.
SQUATTER = textwrap.dedent("""
    import http.server, socket, sys
    family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    class Server(http.server.HTTPServer):
        address_family = family
    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            with open(sys.argv[3], "a") as seen:
                seen.write(repr(dict(self.headers)) + "\\n")
            self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
        def log_message(self, *args):
            pass
    Server((sys.argv[1], int(sys.argv[2])), Healthy).serve_forever()
""")


class SquattedServer(SGLangServer):
    """A real SGLang server whose port a squatter takes, at ``squat_at``, right after the free-port check."""

    squat_at = "127.0.0.1"

    def _start_watchdog(self):
        super()._start_watchdog()
        self.seen = self.log_path.with_name("squatter-headers.txt")
        self.squatter = subprocess.Popen([sys.executable, "-c", SQUATTER, self.squat_at, str(self.port), str(self.seen)])
        family = socket.AF_INET6 if ":" in self.squat_at else socket.AF_INET
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket(family) as probe:
                if probe.connect_ex((self.squat_at, self.port)) == 0:
                    return
            time.sleep(0.05)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("host, squat_at", [("0.0.0.0", "127.0.0.1"), ("::1", "::1")], ids=["wildcard", "ipv6"])
def test_a_squatter_where_the_client_connects_is_named_and_never_hears_the_key(tmp_path, host, squat_at):
    if ":" in squat_at and not ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    server = SquattedServer(Registry().resolve("minilm"), device="cpu", host=host, api_key="k" * 40,
                            log_path=tmp_path / "squatted.log", boot_timeout=120)
    server.squat_at = squat_at
    try:
        with pytest.raises(ServerError) as info:
            server.start()
        first = str(info.value).splitlines()[0]
        assert f"taken by PID {server.squatter.pid} (python" in first, first
        assert "answered in place of the SGLang server for 'minilm'" in first
        assert "authorization" not in server.seen.read_text().lower()  # polled, but never sent the key
    finally:
        server.squatter.kill()
        server.squatter.wait(5)


def test_a_proxy_in_the_environment_does_not_stop_the_boot(tmp_path, monkeypatch):
    # A corporate runner's proxy settings, pointing at a port where nothing answers.
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    started = time.monotonic()
    with SGLangServer(Registry().resolve("minilm"), device="cpu", api_key="k" * 40, log_path=tmp_path / "s.log",
                      boot_timeout=300) as server:
        client = EmbeddingClient(server.url, "minilm", api_key=server.api_key, timeout=60)
        assert client.embed(["behind a proxy"]).shape == (1, 384)
        assert server.memory_settings() != "server settings unavailable"
    print(f"booted with a dead proxy in the environment in {time.monotonic() - started:.0f} s")


def peak_growth_mb(action) -> float:
    """How far this process's peak memory rose while ``action`` ran (0 if it stayed below an earlier peak)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    action()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def test_a_gigabyte_answer_fails_with_a_sentence_in_bounded_memory(standin):
    from pytest_embedeval.measure.load import run_load

    server = standin("huge")
    client = EmbeddingClient(server.url, "minilm", timeout=60, max_retries=0)

    def embed():
        with pytest.raises(BadEmbeddingResponse, match=r"the answer passed [\d,]+ bytes, more than any embeddings "
                                                        "answer of its request can take; reading stopped there"):
            client.embed(["one text"])

    assert peak_growth_mb(embed) < 100
    assert server.huge_bytes_sent < 64 * 1024 * 1024  # it stopped reading long before the gigabyte
    load = run_load(server.url, "minilm", [["one text"]], timeout=60)
    assert load.failures == 1 and "the answer passed" in load.errors[0]


def test_a_server_trickling_its_model_list_fails_at_the_deadline(standin, monkeypatch):
    from pytest_embedeval.serve import remote

    monkeypatch.setattr(remote, "INFO_SECONDS", 2.0)
    server = standin("trickle-models", delay=0.5)
    started = time.monotonic()
    with pytest.raises(UnreachableServer, match=f"--embed-url {server.url} is unreachable .*ReadTimeout"):
        RemoteServer(server.url, Registry().resolve("minilm")).start()
    assert time.monotonic() - started < 10
