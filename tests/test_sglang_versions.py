"""The user's own SGLang: a version outside the tested range is refused with a way to insist, and the command
line the plugin builds is read by the oldest and the newest SGLang of the range through their own parsers."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pytest_embedeval.serve import compat
from pytest_embedeval.serve.sglang import ServerError, SGLangServer, build_argv
from pytest_embedeval.facts.registry import Registry

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


@pytest.mark.server  # each parse imports SGLang (about 10 s on a 2-core CPU)
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


@pytest.mark.server  # reads SGLang's own argument parser
def test_the_installed_sglang_is_in_the_tested_range_and_knows_every_flag_the_plugin_passes():
    installed = compat.installed()
    installed.check()
    argv = build_argv(Registry().resolve("minilm"), device="cpu", port=1)
    assert installed.supported(argv, set()) == argv


def test_a_version_outside_the_range_is_refused_unless_insisted_on():
    old = compat.SGLangInstall("/venv/bin/python", "0.4.10", frozenset())
    with pytest.raises(compat.IncompatibleSGLang, match=r"SGLang 0.4.10 \(/venv/bin/python\) is outside the range "
                                                        r"pytest-embedeval is tested with \(>=0.5.20,<0.6\): run with "
                                                        r"--embed-any-sglang to try it anyway"):
        old.check()
    old.check(insist=True)


def test_flags_a_version_does_not_know_are_left_out_if_the_plugins_and_named_if_the_users():
    older = compat.SGLangInstall("python", "0.5.20", frozenset({"--model-path", "--port", "--dtype"}))
    argv = ["python", "-m", "sglang.launch_server", "--model-path", "m", "--sleep-on-idle", "--max-total-tokens",
            "16384", "--dtype", "float32", "--port", "1"]
    kept = older.supported(argv, {"--model-path", "--sleep-on-idle", "--max-total-tokens", "--dtype", "--port"})
    assert kept == ["python", "-m", "sglang.launch_server", "--model-path", "m", "--dtype", "float32", "--port", "1"]
    with pytest.raises(compat.IncompatibleSGLang, match="SGLang 0.5.20 does not know --enable-foo: drop them from "
                                                        "--embed-server-arg"):
        older.supported([*argv, "--enable-foo"], {"--sleep-on-idle", "--max-total-tokens"})


def test_a_server_whose_python_has_an_sglang_outside_the_range_does_not_boot(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the stand-in's flags stay out of the user's
    # A STAND-IN interpreter: it answers the two questions the plugin asks of a python, as an old SGLang would.
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\ncase "$2" in *"version(\'sglang\')"*) echo 0.4.10;; *) echo \'["--port"]\';; esac\n')
    fake.chmod(0o755)
    compat.installed.cache_clear()
    server = SGLangServer(Registry().resolve("minilm"), device="cpu", python=str(fake), log_path=tmp_path / "s.log")
    with pytest.raises(ServerError, match="cannot start SGLang for 'minilm': SGLang 0.4.10 .* is outside the range"):
        server.start()
    assert server.process is None
