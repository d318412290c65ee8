"""The API key of a real SGLang server is in no argv, environment or log of its processes, and still guards it."""

import os
from pathlib import Path

import httpx
import psutil

from pytest_embedeval.serve.client import EmbeddingClient
from pytest_embedeval.serve.sglang import SGLangServer
from pytest_embedeval.facts.registry import Registry


SECRET = "sk-hostile-7f3a9c"


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


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
