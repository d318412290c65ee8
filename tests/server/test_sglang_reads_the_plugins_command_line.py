"""The command line the plugin builds, read by SGLang's own parsers: valid and safe by default, with the flags a CPU
needs, the API key in a private file merged with a user's own config, no other option mistaken for host, port or
key; and read alike by the oldest and the newest SGLang of the tested range."""

import argparse
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pytest_embedeval.serve.sglang import LOCALHOST, SGLangServer, build_argv
from pytest_embedeval.facts.registry import Registry
from pytest_embedeval.serve import compat


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


def test_no_other_sglang_option_is_mistaken_for_host_port_or_key(sglang_parser):
    from pytest_embedeval.facts.server_access import owned_option

    for action in sglang_parser._actions:
        for option in action.option_strings:
            if option.startswith("--"):
                expected = option if option in ("--host", "--port", "--api-key") else None
                assert owned_option(option) == expected, option
                assert owned_option(f"{option}=1") == expected, option


OLDEST = "0.5.20"


# Parses an argv (JSON on stdin) with the SGLang on sys.path, as launch_server does, and prints what it read.
PARSE = """
import json, sys
from sglang.srt.server_args import prepare_server_args
import sglang
args = prepare_server_args(json.load(sys.stdin))
print(json.dumps({"version": sglang.__version__, "model_path": args.model_path, "is_embedding": args.is_embedding,
                  "device": args.device, "dtype": args.dtype, "disable_radix_cache": args.disable_radix_cache,
                  "tp_size": args.tp_size, "host": args.host}))
"""


@pytest.fixture(scope="module")
def oldest_sglang(tmp_path_factory) -> Path:
    """The oldest SGLang of the range, unpacked beside the installed one's dependencies (from the package index)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pytest-embedeval" / "wheels"
    wheels = list(cache.glob(f"sglang-{OLDEST}-*.whl"))
    if not wheels:
        # Offline, pip gives up after one short try: the test is skipped with pip's reason, not hung.
        done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--timeout", "15",
                               "--retries", "1", f"sglang=={OLDEST}", "-d", str(cache)],
                              capture_output=True, text=True, timeout=300)
        wheels = list(cache.glob(f"sglang-{OLDEST}-*.whl"))
        if not wheels:
            pytest.skip(f"sglang {OLDEST} could not be fetched from the package index: {done.stderr[-300:]}")
    unpacked = tmp_path_factory.mktemp(f"sglang-{OLDEST}")
    zipfile.ZipFile(wheels[0]).extractall(unpacked)
    return unpacked


def parsed_by(argv: list[str], sglang_path: Path | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(sglang_path)} if sglang_path else None
    done = subprocess.run([sys.executable, "-c", PARSE], input=json.dumps(argv[3:]), capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# Each parse imports SGLang (about 10 s on a 2-core CPU).
@pytest.mark.parametrize("which", [pytest.param("oldest", marks=pytest.mark.network), "newest"])
def test_the_plugins_command_lines_are_read_by_the_oldest_and_newest_sglang_of_the_range(which, request):
    path = request.getfixturevalue("oldest_sglang") if which == "oldest" else None
    registry = Registry()
    gpu = parsed_by(build_argv(registry.resolve("qwen3-4b"), device="cuda", port=31234,
                               extra_args=["--tp-size", "2"]), path)
    cpu = parsed_by(build_argv(registry.resolve("minilm"), device="cpu", port=31235), path)
    assert gpu["version"] == (OLDEST if which == "oldest" else compat.installed().version)
    assert gpu["is_embedding"] and gpu["disable_radix_cache"] and gpu["tp_size"] == 2 and gpu["host"] == "127.0.0.1"
    assert cpu["device"] == "cpu" and cpu["dtype"] == "float32" and cpu["model_path"].endswith("model")


# Reads SGLang's own argument parser.
def test_the_installed_sglang_is_in_the_tested_range_and_knows_every_flag_the_plugin_passes():
    installed = compat.installed()
    installed.check()
    argv = build_argv(Registry().resolve("minilm"), device="cpu", port=1)
    assert installed.supported(argv, set()) == argv
