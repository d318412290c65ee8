"""The command line and environment the launcher gives SGLang, checked without starting it: host, port and key are
the plugin's to set, the key is masked wherever it is shown, the hub is out of reach, the dtype is read from the
argv, and an exposed server is still reached over loopback."""

import pytest

from pytest_embedeval.serve.sglang import ServerError, SGLangServer, mask_file, redact
from pytest_embedeval.facts.registry import Registry


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


def test_the_dtype_the_server_runs_with_is_known_from_its_argv():
    minilm = Registry().resolve("minilm")
    assert SGLangServer(minilm, device="cpu", port=1).dtype == "float32"
    assert SGLangServer(minilm, device="cuda", port=1).dtype == "auto"
    assert SGLangServer(minilm, device="cpu", port=1, extra_args=("--dtype", "bfloat16")).dtype == "bfloat16"


def test_an_exposed_server_is_still_reached_over_loopback():
    from pytest_embedeval.serve.sglang import SGLangServer
    from pytest_embedeval.facts.registry import Registry

    server = SGLangServer(Registry().resolve("minilm"), device="cpu", host="0.0.0.0", port=31999)
    assert server.argv[server.argv.index("--host") + 1] == "0.0.0.0"
    assert server.url == "http://127.0.0.1:31999"


def test_a_key_sglang_would_read_as_an_option_is_never_made_and_a_users_is_refused_by_name(tmp_path):
    # SGLang turns its --config file into arguments: a key that begins with "-" made "--api-key: expected one
    # argument" (a generated urlsafe key does, one boot in 64).
    from pytest_embedeval.run.settings import read
    from pytest_embedeval.serve.serving import server_for

    settings = read({"embed_model": ["minilm"], "embed_server_arg": []}.get,
                    {"embed_device": "cpu", "embed_boot_timeout": "600", "embed_request_timeout": "120",
                     "embed_baselines": "baselines"}.get, tmp_path)
    keys = {server_for(settings.specs[0], settings, tmp_path).api_key for _ in range(3)}
    assert len(keys) == 3 and all(key.startswith("embedeval-") for key in keys)
    server = SGLangServer(Registry().resolve("minilm"), port=1, api_key="-starts-with-a-dash", log_path=tmp_path / "l")
    with pytest.raises(ValueError, match="the API key begins with '-', which SGLang's argument parser reads as an "
                                         "option: choose a key that begins with a letter or digit"):
        server.write_config()
