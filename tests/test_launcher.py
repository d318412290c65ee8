"""The launcher as a library: argv checked by SGLang's own parser, boot failures, teardown."""

import argparse
import sys
import textwrap
import time

import psutil
import pytest

from pytest_embedeval.engines.sglang import LOCALHOST, ServerError, SGLangServer, build_argv, redact
from pytest_embedeval.registry import Registry


@pytest.fixture(scope="module")
def sglang_parser():
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    return parser


def parse(parser, argv):
    assert argv[1:3] == ["-m", "sglang.launch_server"]
    return parser.parse_args(argv[3:])


def test_gpu_argv_is_valid_sglang_and_safe_by_default(sglang_parser):
    qwen = Registry().resolve("qwen3-4b")
    args = parse(sglang_parser, build_argv(qwen, device="cuda", port=31234, extra_args=["--tp-size", "2"]))
    assert args.model_path == "Qwen/Qwen3-Embedding-4B"
    assert args.is_embedding and args.disable_radix_cache
    assert (args.host, args.port) == (LOCALHOST, 31234)
    assert args.tp_size == 2
    assert '"matryoshka_dimensions"' in args.json_model_override_args
    assert not args.trust_remote_code
    assert args.device is None  # SGLang picks the GPU itself


def test_cpu_argv_carries_the_flags_that_make_sglang_usable_on_a_cpu(sglang_parser):
    minilm = Registry().resolve("minilm")
    args = parse(sglang_parser, build_argv(minilm, device="cpu", port=1))
    assert (args.device, args.dtype, args.attention_backend) == ("cpu", "float32", "torch_native")
    assert args.sleep_on_idle and args.max_total_tokens == 16384
    assert args.context_length == 256 and args.disable_radix_cache and args.allow_auto_truncate


def test_trust_remote_code_only_where_the_model_needs_it(sglang_parser):
    from dataclasses import replace

    bge = Registry().resolve("bge-large-zh")
    assert "--trust-remote-code" not in build_argv(bge, device="cuda", port=1)
    args = parse(sglang_parser, build_argv(replace(bge, trust_remote_code=True), device="cuda", port=1))
    assert args.trust_remote_code


def test_api_key_reaches_sglang_but_never_the_shown_argv(sglang_parser):
    argv = build_argv(Registry().resolve("bge-large-zh"), device="cuda", port=1, api_key="sk-secret-123")
    assert parse(sglang_parser, argv).api_key == "sk-secret-123"
    assert "sk-secret-123" not in " ".join(redact(argv, "sk-secret-123"))


def test_the_server_environment_never_reaches_the_hub():
    server = SGLangServer(Registry().resolve("minilm"), device="cpu", port=1)
    env = server.environment()
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["SGLANG_EXTERNAL_MODEL_PACKAGE"] == "pytest_embedeval.engines.sglang_models"


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


@pytest.mark.server
def test_a_server_that_dies_during_boot_fails_at_once_with_sglangs_own_error(tmp_path):
    server = SGLangServer(
        Registry().resolve("minilm"), device="cpu", log_path=tmp_path / "bad.log",
        extra_args=("--no-such-sglang-flag",), boot_timeout=300,
    )
    started = time.monotonic()
    with pytest.raises(ServerError) as info:
        server.start()
    assert time.monotonic() - started < 120  # fails on exit, not on the boot timeout
    message = str(info.value)
    assert "exited with code" in message and "during boot" in message
    assert "unrecognized arguments: --no-such-sglang-flag" in message


def test_the_dtype_the_server_runs_with_is_known_from_its_argv():
    minilm = Registry().resolve("minilm")
    assert SGLangServer(minilm, device="cpu", port=1).dtype == "float32"
    assert SGLangServer(minilm, device="cuda", port=1).dtype == "auto"
    assert SGLangServer(minilm, device="cpu", port=1, extra_args=("--dtype", "bfloat16")).dtype == "bfloat16"
