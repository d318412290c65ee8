"""SGLang's command line for a model: a list, never a shell string, never a secret; the user's ``--config``
file and arguments checked against what the plugin owns (host, port, key)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..facts.registry import ModelSpec
from ..facts.server_access import OWNED_OPTIONS, check_server_args, owned_option
from .ports import LOCALHOST


# SGLang's defaults are tuned for GPUs and hurt on a CPU: a 14.6 GB KV pool (the pool is sized
# from free memory) and a scheduler that spins one core at 100% between requests. bf16 has no
# fast CPU kernels here, and triton / flex attention fail at warm-up, so say torch_native.
CPU_ARGS = (
    "--device", "cpu",
    "--dtype", "float32",
    "--attention-backend", "torch_native",
    "--max-total-tokens", "16384",
    "--sleep-on-idle",
)


def split_config(args: Sequence[str]) -> tuple[list[str], str | None]:
    """The arguments without ``--config FILE`` (or ``--config=FILE``), and that FILE.

    SGLang reads one ``--config`` per launch, and only when spelled as two words: ``--config=FILE``
    would be parsed and then silently ignored.
    """
    rest, config = [], None
    args = list(args)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--config" and i + 1 < len(args):
            config, i = args[i + 1], i + 2
            continue
        if arg.startswith("--config="):
            config = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return rest, config


def build_argv(
    spec: ModelSpec,
    *,
    device: str,
    port: int,
    host: str = LOCALHOST,
    extra_args: tuple[str, ...] | list[str] = (),
    config_path: str | Path | None = None,
    python: str = sys.executable,
) -> list[str]:
    """SGLang's command line for this model. A list, never a shell string, and never a secret.

    ``config_path``: the YAML file SGLang reads its ``api_key`` from (see SGLangServer.write_config); it
    replaces a ``--config`` given in the arguments, whose settings it carries.
    Raises ValueError when the arguments would override the host, port or key (see check_server_args).
    """
    check_server_args(spec.server_args, f"server_args of model {spec.alias!r}")
    check_server_args(extra_args, "--embed-server-arg")
    user_args, user_config = split_config([*spec.server_args, *extra_args])
    argv = [
        python, "-m", "sglang.launch_server",
        "--model-path", spec.model,
        "--served-model-name", spec.alias,
        "--is-embedding",
        "--host", host,
        "--port", str(port),
        # The prefix (radix) cache reuses the hidden states of a shared prefix across requests.
        # Encoder models attend bidirectionally, so a cached [CLS] and prefix are wrong for the
        # next text: cosine 0.44 against the in-process reference for BERT models. Embeddings gain nothing
        # from it anyway: every request is a single forward pass.
        "--disable-radix-cache",
        # sentence-transformers truncates over-long inputs to the model's window; so must the server,
        # or one long document in a benchmark corpus (C-MTEB retrieval has many) stops the whole run.
        "--allow-auto-truncate",
    ]
    if device == "cpu":
        argv += CPU_ARGS
    if spec.trust_remote_code:
        argv.append("--trust-remote-code")
    argv += user_args
    config = config_path or user_config
    if config:
        argv += ["--config", str(config)]
    return argv


def read_user_config(path: str | Path) -> dict:
    """A user's SGLang ``--config`` YAML, refused if it sets what the plugin owns (host, port, key)."""
    import yaml  # SGLang's own dependency, the parser it reads the file with

    where = f"the SGLang --config file {path}"
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{where} cannot be read as YAML ({type(exc).__name__}: {exc}); fix or drop it.") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"{where} must hold a mapping of SGLang options at its top level, got "
                         f"{type(data).__name__}.")
    for key in data:
        option = owned_option("--" + str(key).replace("_", "-"))
        if option:
            raise ValueError(f"{where}: the key {key!r} is refused because the plugin sets {option} itself; "
                             f"{OWNED_OPTIONS[option]}.")
    return data


def redact(argv: list[str], secret: str | None) -> list[str]:
    """The argv as it may be shown to people: the key masked wherever it appears, ``--api-key=KEY`` too."""
    if not secret:
        return list(argv)
    return [arg.replace(secret, "***") for arg in argv]
