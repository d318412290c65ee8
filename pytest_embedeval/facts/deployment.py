"""The deployment part of a figure's identity: the server flags that change what is measured.

``--quantization fp8``, ``--tp-size 2``, an attention backend or a memory fraction change vectors, times or memory;
a log level does not. A flag counts unless it is known not to change results, so that a flag this list has not
heard of keeps two deployments apart rather than letting one judge the other.
"""

from __future__ import annotations

# How SGLang's model gateway (smg) may spread a fleet's requests over its workers: by load alone first, then by
# the text (cache_aware and the hashing ones give a split that depends on the workload).
GATEWAY_POLICIES = ("round_robin", "random", "power_of_two", "least_load", "cache_aware", "consistent_hashing",
                    "prefix_hash")

# Flags that change neither vectors, nor times, nor memory (or that the plugin owns and sets the same every run).
NEUTRAL = frozenset({
    "--log-level", "--log-level-http", "--log-requests", "--log-requests-level", "--enable-metrics",
    "--served-model-name", "--show-time-cost", "--decode-log-interval", "--enable-cache-report", "--api-key",
    "--config", "--host", "--port", "--watchdog-timeout", "--crash-dump-folder", "--enable-request-time-stats-logging",
})
# Spellings SGLang accepts for the same setting.
ALIASES = {"--tensor-parallel-size": "--tp-size", "--tp": "--tp-size", "--data-parallel-size": "--dp-size",
           "--dp": "--dp-size", "--pipeline-parallel-size": "--pp-size", "--pp": "--pp-size"}
# What a running SGLang reports about itself (/get_server_info) that a deployment flag sets, with SGLang's default.
REPORTED = {"quantization": None, "tp_size": 1, "dp_size": 1, "pp_size": 1, "kv_cache_dtype": "auto",
            "attention_backend": None, "enable_torch_compile": False, "disable_cuda_graph": False,
            "context_length": None, "json_model_override_args": "{}"}


def from_args(args: list[str] | tuple[str, ...]) -> str:
    """``["--tp", "2", "--quantization=fp8", "--log-level", "info"]`` -> ``"--quantization fp8 --tp-size 2"``."""
    return " ".join(sorted(_flags(args)))


def _flags(args) -> set[str]:
    """Each flag that counts, with its value: {"--quantization fp8", "--tp-size 2"}."""
    flags: dict[str, str] = {}
    index = 0
    while index < len(args):
        flag, _, value = args[index].partition("=")
        if flag.startswith("--"):
            if not value and index + 1 < len(args) and not args[index + 1].startswith("--"):
                value, index = args[index + 1], index + 1
            flag = ALIASES.get(flag, flag)
            if flag not in NEUTRAL:
                flags[flag] = value
        index += 1
    return {f"{flag} {value}".strip() for flag, value in flags.items()}


def from_server_info(info: dict, plugin_args: list[str] | tuple[str, ...] = ()) -> str:
    """The same text, from what a server this run did not start reports about itself. A setting the plugin
    gives every server it boots on this device (``plugin_args``) is no deployment of the user's, as for a
    server the plugin booted."""
    flags = set()
    for key, default in REPORTED.items():
        value = info.get(key, default)
        if value not in (default, None, "", "{}"):
            flags.add(f"--{key.replace('_', '-')}" + ("" if value is True else f" {value}"))
    return " ".join(sorted(flags - _flags(plugin_args)))


def gpu_count(deployment: str) -> int:
    """How many GPUs a server of this deployment uses: tensor x data x pipeline parallel sizes."""
    words = deployment.split()
    count = 1
    for flag in ("--tp-size", "--dp-size", "--pp-size"):
        if flag in words and words.index(flag) + 1 < len(words) and words[words.index(flag) + 1].isdigit():
            count *= int(words[words.index(flag) + 1])
    return count
