"""The user's own SGLang: a version outside the tested range is refused with a way to insist (a server whose python
has one does not boot), and a flag the version does not know is left out if it is the plugin's and named if it is
the user's."""

import pytest

from pytest_embedeval.serve import compat
from pytest_embedeval.serve.sglang import ServerError, SGLangServer
from pytest_embedeval.facts.registry import Registry


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
