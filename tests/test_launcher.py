"""The launcher as a library: argv checked by SGLang's own parser, boot failures, teardown."""

import argparse
import stat
import sys
import textwrap
import time

import psutil
import pytest

from pytest_embedeval.serve.sglang import LOCALHOST, ServerError, SGLangServer, build_argv, mask_file, redact
from pytest_embedeval.facts.registry import Registry


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


def test_api_key_reaches_sglang_through_a_private_file_never_the_argv_or_environment(tmp_path, monkeypatch):
    from sglang.srt.server_args import prepare_server_args

    monkeypatch.setenv("EMBEDEVAL_API_KEY", "sk-secret-123")
    server = SGLangServer(Registry().resolve("bge-large-zh"), device="cuda", port=1, api_key="sk-secret-123",
                          log_path=tmp_path / "sglang-bge.log")
    server.write_config()
    argv = server.argv
    assert "sk-secret-123" not in " ".join(argv)
    assert "sk-secret-123" not in " ".join(f"{k}={v}" for k, v in server.environment().items())
    assert stat.S_IMODE(server.config_path.stat().st_mode) == 0o600
    assert server.config_path.parent == tmp_path  # next to the log: pytest's private temporary directory
    # SGLang's own parser, as launch_server calls it, finds the key in the file.
    assert prepare_server_args(argv[3:]).api_key == "sk-secret-123"
    server.remove_config()
    assert not server.config_path.exists()


def test_a_users_own_sglang_config_is_merged_with_the_key_file(tmp_path):
    from sglang.srt.server_args import prepare_server_args

    mine = tmp_path / "mine.yaml"
    mine.write_text("mem-fraction-static: 0.5\nchunked-prefill-size: 512\n")
    for given in (["--config", str(mine)], [f"--config={mine}"]):
        server = SGLangServer(Registry().resolve("minilm"), device="cpu", port=1, api_key="k-1",
                              extra_args=tuple(given), log_path=tmp_path / "s.log")
        server.write_config()
        argv = server.argv
        assert argv.count("--config") == 1 and not any(arg.startswith("--config=") for arg in argv)
        args = prepare_server_args(argv[3:])
        assert (args.api_key, args.mem_fraction_static, args.chunked_prefill_size) == ("k-1", 0.5, 512)
        server.remove_config()


@pytest.mark.parametrize("secret", ["sk-secret-123", "a'b\\c"])
def test_the_key_is_masked_in_shown_argv_and_in_the_log_sglang_writes(tmp_path, secret):
    argv = ["python", "--api-key", secret, f"--api-key={secret}", "--other"]
    assert secret not in " ".join(redact(argv, secret))
    assert redact(argv, secret)[-1] == "--other"
    log = tmp_path / "sglang.log"
    # What SGLang 0.5.23 logs at start: its arguments, the key among them, as a Python dict repr.
    log.write_text(f"[t] server_args={{'api_key': {secret!r}, 'port': 1}}\nready {secret}\n")
    size = log.stat().st_size
    mask_file(log, secret)
    assert secret not in log.read_text() and repr(secret)[1:-1] not in log.read_text()
    assert log.stat().st_size == size  # in place: SGLang keeps appending at its own offset
    server = SGLangServer(Registry().resolve("minilm"), port=1, api_key=secret, log_path=log)
    log.write_text(f"late line {secret}\n")
    assert secret not in server.log_tail()


@pytest.mark.parametrize(
    ("where", "args", "says"),
    [
        ("extra", ["--host", "0.0.0.0"], "use --embed-host instead"),
        ("extra", ["--host=0.0.0.0"], "use --embed-host instead"),
        ("extra", ["--port", "8000"], "the plugin picks a free port itself"),
        ("extra", ["--po", "8000"], "the plugin picks a free port itself"),  # argparse takes unique prefixes
        ("extra", ["--api-key=k"], "EMBEDEVAL_API_KEY environment variable"),
        ("model", ["--api-key", "k"], "EMBEDEVAL_API_KEY environment variable"),
        ("config", ["port: 8000"], "the plugin picks a free port itself"),
        ("config", ["api_key: k"], "EMBEDEVAL_API_KEY environment variable"),
    ],
)
def test_server_args_that_override_host_port_or_key_are_refused_naming_the_option_to_use(tmp_path, where, args, says):
    from dataclasses import replace

    spec = Registry().resolve("minilm")
    extra = tuple(args) if where == "extra" else ()
    if where == "model":
        spec = replace(spec, server_args=tuple(args))
    if where == "config":
        (tmp_path / "mine.yaml").write_text("\n".join(args) + "\n")
        extra = ("--config", str(tmp_path / "mine.yaml"))
    server = SGLangServer(spec, device="cpu", extra_args=extra, log_path=tmp_path / "s.log", boot_timeout=5)
    with pytest.raises(ServerError) as info:
        server.start()
    assert server.process is None  # refused before anything was started
    message = str(info.value)
    assert says in message and "refused" in message, message
    assert {"extra": "--embed-server-arg", "model": "server_args of model 'minilm'",
            "config": str(tmp_path / "mine.yaml")}[where] in message
    assert not list(tmp_path.glob("*.yaml")) or where == "config"


def test_the_server_environment_never_reaches_the_hub():
    server = SGLangServer(Registry().resolve("minilm"), device="cpu", port=1)
    env = server.environment()
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["SGLANG_EXTERNAL_MODEL_PACKAGE"] == "pytest_embedeval.serve.sglang_models"


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


@pytest.mark.server  # starts a stand-in server process that never gets ready
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


def test_the_dtype_the_server_runs_with_is_known_from_its_argv():
    minilm = Registry().resolve("minilm")
    assert SGLangServer(minilm, device="cpu", port=1).dtype == "float32"
    assert SGLangServer(minilm, device="cuda", port=1).dtype == "auto"
    assert SGLangServer(minilm, device="cpu", port=1, extra_args=("--dtype", "bfloat16")).dtype == "bfloat16"


def test_no_other_sglang_option_is_mistaken_for_host_port_or_key(sglang_parser):
    from pytest_embedeval.facts.server_access import owned_option

    for action in sglang_parser._actions:
        for option in action.option_strings:
            if option.startswith("--"):
                expected = option if option in ("--host", "--port", "--api-key") else None
                assert owned_option(option) == expected, option
                assert owned_option(f"{option}=1") == expected, option


@pytest.mark.server  # starts a stand-in server process that never gets ready
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
