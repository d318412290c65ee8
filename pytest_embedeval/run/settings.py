"""A run's settings, read from pytest's options and ini values by name, and checked with a sentence each.

Kept free of pytest: the plugin hands in two look-up functions and turns ``SettingsError`` into a
usage error. Nothing here boots, imports torch or reads a baseline.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..facts.deployment import GATEWAY_POLICIES
from ..facts.server_access import API_KEY_ENV, INCUMBENT_API_KEY_ENV, check_server_args, redact_url
from ..facts.names import safe_name
from ..serve.placement import gpu_count
from ..serve.ports import LOCALHOST
from ..serve.remote import is_loopback

# The command-line options, as pytest's addoption takes them; the plugin registers them, nothing more.
FLAG = dict(action="store_true")
OPTIONS = [
    ("--embed-model", dict(action="append", default=[], metavar="MODEL",
                           help="model alias or local model directory; repeat (or comma-separate) for several "
                           "(default: minilm)")),
    ("--embed-url", dict(metavar="URL",
                         help="test an already-running OpenAI-compatible server instead of booting one")),
    ("--embed-device", dict(choices=("auto", "cpu", "cuda"), default=None,
                            help="where SGLang runs (default: auto, cuda when NVML sees a GPU)")),
    ("--embed-server-arg", dict(action="append", default=[], metavar="ARG",
                                help="extra SGLang launch argument(s), e.g. "
                                "--embed-server-arg='--mem-fraction-static 0.6'")),
    ("--embed-boot-timeout", dict(type=float, default=None, metavar="SECONDS",
                                  help="give up booting the server after this long (default 600)")),
    ("--embed-request-timeout", dict(type=float, default=None, metavar="SECONDS", help="give up on one request to "
                                     "the server after this long; the client tries 3 times (default 120)")),
    ("--embed-api-key", dict(default=None, metavar="KEY", help="API key the server requires (SGLang --api-key); "
                             "better: set EMBEDEVAL_API_KEY")),
    ("--embed-baselines", dict(default=None, metavar="DIR", help="baseline directory (default: baselines/)")),
    ("--embed-hardware", dict(default=None, metavar="KEY", help="hardware key for baselines instead of the detected "
                              "one (e.g. a100-80gb-x1, cpu-2c)")),
    ("--embed-strict", dict(**FLAG, help="a metric with no baseline for this hardware fails its test")),
    ("--embed-update-baselines", dict(**FLAG, help="write this run's measurements as the baselines of this "
                                      "hardware, and print the diff")),
    ("--embed-accept-regressions", dict(**FLAG, help="with --embed-update-baselines: also write values that "
                                        "regressed")),
    ("--embed-report", dict(default=None, metavar="PATH", help="write every measurement and verdict as JSON")),
    ("--embed-benchmark-dir", dict(default=None, metavar="DIR", help="write smaller-is-better.json and "
                                   "bigger-is-better.json for github-action-benchmark")),
    ("--embed-benchmark-json", dict(default=None, metavar="PATH", help="write every request's latency in "
                                    "pytest-benchmark's JSON format (pytest-benchmark compare reads it)")),
    ("--embed-chart", dict(default=None, metavar="PNG", help="write a chart of latency and throughput per model")),
    ("--embed-mteb-results", dict(default=None, metavar="DIR", help="write mteb's own result files of every "
                                  "accuracy task there (mteb.load_results reads them)")),
    ("--embed-gpus", dict(default=None, metavar="LIST", help="GPUs to use, e.g. 0,1,2,3; with pytest-xdist each "
                          "worker gets one GPU and its own server")),
    ("--embed-host", dict(default=None, metavar="ADDRESS", help="address the booted server listens on (default "
                          "127.0.0.1; anything else exposes it, with a warning)")),
    ("--embed-allow-downloads", dict(**FLAG, help="let this run fetch models and datasets from the Hugging Face "
                                     "hub (default: offline)")),
    ("--embed-any-sglang", dict(**FLAG, help="boot an SGLang outside the version range this plugin is tested "
                                "with, all the same")),
    # A fleet: several SGLang workers behind SGLang's model gateway (the [fleet] extra), tested as one server.
    ("--embed-workers", dict(type=int, default=None, metavar="N", help="boot N SGLang workers behind SGLang's "
                             "model gateway (smg) and test the fleet: per-worker figures, balance, the gateway's "
                             "overhead (default: the model's 'workers', else 1: one server, no gateway)")),
    ("--embed-gateway-policy", dict(default=None, choices=GATEWAY_POLICIES, help="how the gateway spreads "
                                    "requests over the workers (default: the model's 'gateway_policy', else "
                                    "round_robin)")),
    # The incumbent: the server you run now, measured beside the candidate in the same minutes (paired verdicts).
    ("--embed-incumbent-url", dict(default=None, metavar="URL", help="pair the server under test with an incumbent "
                                   "server already running at URL")),
    ("--embed-incumbent-python", dict(default=None, metavar="PYTHON", help="pair with an incumbent booted by "
                                      "another virtualenv's python (the SGLang you run now)")),
    ("--embed-incumbent-server-arg", dict(action="append", default=None, metavar="ARG", help="pair with an "
                                          "incumbent booted with these SGLang arguments instead of the candidate's "
                                          "(e.g. '' against '--quantization fp8')")),
    ("--embed-incumbent-api-key", dict(default=None, metavar="KEY", help="the key an --embed-incumbent-url server "
                                       "requires (better: set EMBEDEVAL_INCUMBENT_API_KEY); a booted incumbent gets "
                                       "its own")),
    ("--embed-incumbent-model", dict(default=None, metavar="MODEL", help="pair with an incumbent serving this "
                                     "model alias or directory (a model swap)")),
    # The names these options had in 0.1 ("reference" now means only the in-process sentence-transformers
    # model): accepted for one release, with a deprecation warning (_renamed).
    *((old, dict(default=None, action="append" if old.endswith("-arg") else "store", metavar="ARG",
                 help=f"deprecated: use {new}")) for old, new in [
        ("--embed-reference-url", "--embed-incumbent-url"), ("--embed-reference-python", "--embed-incumbent-python"),
        ("--embed-reference-server-arg", "--embed-incumbent-server-arg"),
        ("--embed-reference-model", "--embed-incumbent-model")]),
]
INI = {"embed_model": ("default model(s) when --embed-model is not given", "args", None),
       "embed_device": ("default for --embed-device", None, "auto"),
       "embed_boot_timeout": ("default for --embed-boot-timeout (seconds)", None, "600"),
       "embed_request_timeout": ("default for --embed-request-timeout (seconds)", None, "120"),
       "embed_baselines": ("default for --embed-baselines", None, "baselines")}


class SettingsError(ValueError):
    """An option or ini value that cannot be used: names it, says what was expected."""


@dataclass(frozen=True)
class Incumbent:
    """The incumbent server a paired run measures beside the candidate."""

    spec: object  # registry.ModelSpec: the candidate's, or --embed-incumbent-model's
    url: str | None = None  # already running; else the plugin boots it
    python: str | None = None  # another virtualenv's python; else this one
    server_args: tuple[str, ...] | None = None  # its own SGLang arguments; else the candidate's
    api_key: str | None = field(default=None, repr=False)  # its own key: the candidate's never reaches it

    def describe(self) -> str:
        if self.url:
            return f"the server at {redact_url(self.url)}"
        parts = [f"{self.spec.alias}"]
        if self.python:
            parts.append(f"booted by {self.python}")
        if self.server_args is not None:
            parts.append(f"with arguments {' '.join(self.server_args) or '(none)'}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Settings:
    specs: list
    url: str | None
    device: str
    server_args: tuple[str, ...]
    boot_timeout: float
    request_timeout: float
    api_key: str | None = field(repr=False)  # a repr reaches tracebacks: never the key
    hardware: str | None
    strict: bool
    update_baselines: bool
    accept_regressions: bool
    baselines: Path
    report_path: Path | None
    benchmark_dir: Path | None
    benchmark_json: Path | None
    chart_path: Path | None
    gpus: tuple[int, ...] | None
    host: str
    allow_downloads: bool
    incumbent: Incumbent | None = None  # paired verdicts: an incumbent server beside the candidate
    any_sglang: bool = False  # --embed-any-sglang
    mteb_results: Path | None = None  # --embed-mteb-results
    workers: int | None = None  # --embed-workers: a fleet of N workers behind the gateway; None = the model's
    gateway_policy: str | None = None  # --embed-gateway-policy; None = the model's

    def header(self) -> str:
        fleet = f", {self.workers} workers behind SGLang's gateway" if (self.workers or 1) > 1 else ""
        target = redact_url(self.url) or f"SGLang booted by the plugin, device {self.device}{fleet}"
        paired = f"; paired with {self.incumbent.describe()}" if self.incumbent else ""
        return f"embedeval: models {', '.join(s.alias for s in self.specs)}; server: {target}{paired}"

    def exposure(self) -> str | None:
        """The warning a server listening beyond loopback deserves, if it does."""
        if is_loopback(self.host):
            return None
        return (f"--embed-host {self.host}: the SGLang server will accept connections from other machines, "
                f"with the key in {API_KEY_ENV}")


def read(option: Callable[[str], Any], ini: Callable[[str], Any], rootpath: Path) -> Settings:
    """Settings from ``option(name)`` (command line, pytest's dest names) and ``ini(name)``."""
    from ..facts.registry import DEFAULT_ALIAS, ModelConfigError, Registry, UnknownModelError

    names = [name.strip() for value in option("embed_model") for name in value.split(",")]
    names = [name for name in names if name] or ini("embed_model") or [DEFAULT_ALIAS]
    try:
        registry = Registry.for_project(rootpath)
        specs = [registry.resolve(name) for name in dict.fromkeys(names)]
    except (UnknownModelError, ModelConfigError) as exc:
        raise SettingsError(str(exc)) from None
    if option("embed_url") and len(specs) > 1:
        raise SettingsError("--embed-url tests one server: pass exactly one --embed-model with it")
    if option("embed_accept_regressions") and not option("embed_update_baselines"):
        raise SettingsError("--embed-accept-regressions only means something with --embed-update-baselines")
    hardware = option("embed_hardware")
    if hardware:
        try:
            safe_name(hardware, "--embed-hardware key")
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
    server_args = tuple(arg for value in option("embed_server_arg") for arg in shlex.split(value))
    try:  # before anything boots: the host, port and key are the plugin's to set
        check_server_args(server_args, "--embed-server-arg")
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    path = lambda name: Path(option(name)) if option(name) else None  # noqa: E731
    device = option("embed_device") or ini("embed_device")
    if device not in ("auto", "cpu", "cuda"):
        raise SettingsError(f"embed_device: expected auto, cpu or cuda, got {device!r}")
    host = option("embed_host") or LOCALHOST
    api_key = option("embed_api_key") or os.environ.get(API_KEY_ENV) or None
    if not api_key and not is_loopback(host):
        raise SettingsError(f"--embed-host {host} lets other machines reach the server: give it a key they must "
                            f"send ({API_KEY_ENV}), or drop --embed-host to keep it on 127.0.0.1")
    return Settings(
        specs=specs,
        url=option("embed_url"),
        device=device,
        server_args=server_args,
        boot_timeout=option("embed_boot_timeout") or _seconds(ini, "embed_boot_timeout"),
        request_timeout=option("embed_request_timeout") or _seconds(ini, "embed_request_timeout"),
        api_key=api_key,
        hardware=hardware,
        strict=bool(option("embed_strict")),
        update_baselines=bool(option("embed_update_baselines")),
        accept_regressions=bool(option("embed_accept_regressions")),
        baselines=rootpath / (option("embed_baselines") or ini("embed_baselines")),
        report_path=path("embed_report"),
        benchmark_dir=path("embed_benchmark_dir"),
        benchmark_json=path("embed_benchmark_json"),
        chart_path=path("embed_chart"),
        gpus=_gpus(option("embed_gpus")),
        host=host,
        allow_downloads=bool(option("embed_allow_downloads")),
        incumbent=_incumbent(option, registry, specs),
        any_sglang=bool(option("embed_any_sglang")),
        mteb_results=path("embed_mteb_results"),
        workers=_workers(option("embed_workers"), bool(option("embed_url"))),
        gateway_policy=option("embed_gateway_policy"),
    )


RENAMED = ("embed_incumbent_url", "embed_incumbent_python", "embed_incumbent_server_arg", "embed_incumbent_model")


class OptionDeprecated(FutureWarning):
    """An option under the name it had before: it still works for one release."""


def _renamed(option: Callable[[str], Any]) -> Callable[[str], Any]:
    """``option`` that also reads each incumbent option's old name (--embed-reference-*), warning once per name."""
    import warnings

    def read(name: str):
        value = option(name)
        old = name.replace("incumbent", "reference")
        if value in (None, []) and name in RENAMED and option(old) not in (None, []):
            flag = "--" + old.replace("_", "-")
            warnings.warn(OptionDeprecated(f"{flag} is deprecated: use {flag.replace('reference', 'incumbent')} "
                                           "(the paired server is the incumbent; \"reference\" is the in-process "
                                           "model of embed_check_reference)"), stacklevel=2)
            return option(old)
        return value

    return read


def _incumbent(option: Callable[[str], Any], registry, specs: list) -> Incumbent | None:
    option = _renamed(option)
    url, python = option("embed_incumbent_url"), option("embed_incumbent_python")
    model = option("embed_incumbent_model")
    arguments = option("embed_incumbent_server_arg")
    if not any((url, python, model, arguments is not None)):
        return None
    if len(specs) > 1 and model:
        raise SettingsError("--embed-incumbent-model pairs one model with another: pass one --embed-model with it")
    if python and not (Path(python).is_file() and os.access(python, os.X_OK)):
        raise SettingsError(f"--embed-incumbent-python {python}: no executable python there; give the path of "
                            "another virtualenv's interpreter, e.g. /opt/sglang-old/bin/python")
    if url and (python or arguments is not None):
        raise SettingsError("--embed-incumbent-url names a server that is already running: it takes no "
                            "--embed-incumbent-python or --embed-incumbent-server-arg")
    from ..facts.registry import ModelConfigError, UnknownModelError

    try:
        spec = registry.resolve(model) if model else specs[0]
    except (UnknownModelError, ModelConfigError) as exc:
        raise SettingsError(f"--embed-incumbent-model: {exc}") from None
    server_args = None if arguments is None else tuple(a for value in arguments for a in shlex.split(value))
    try:
        check_server_args(server_args or (), "--embed-incumbent-server-arg")
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    key = option("embed_incumbent_api_key") or os.environ.get(INCUMBENT_API_KEY_ENV) or None
    return Incumbent(spec, url, python, server_args, key)


def _workers(value: int | None, url: bool) -> int | None:
    if value is None:
        return None
    if value < 1:
        raise SettingsError(f"--embed-workers {value}: give the number of SGLang workers to boot, 1 or more")
    if url and value > 1:
        raise SettingsError("--embed-workers boots a fleet; --embed-url tests one that is already running (point it "
                            "at the gateway: the plugin asks it for its workers)")
    return value


def _seconds(ini: Callable[[str], Any], name: str) -> float:
    raw = ini(name)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"ini value {name} = {raw!r}: expected a number of seconds, like 600") from None
    if not value > 0:
        raise SettingsError(f"ini value {name} = {raw!r}: expected a positive number of seconds")
    return value


def _gpus(value: str | None) -> tuple[int, ...] | None:
    if not value:
        return None
    try:
        wanted = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise SettingsError(f"--embed-gpus takes GPU indexes like 0,1,2,3, got {value!r}") from None
    present = gpu_count()
    if present == 0:
        raise SettingsError(f"--embed-gpus {value}: NVML sees no GPU on this machine. "
                            "Drop --embed-gpus to run on the CPU (pytest -n N then boots one server per worker).")
    missing = [i for i in wanted if not 0 <= i < present]
    if missing:
        raise SettingsError(f"--embed-gpus {value}: this machine has GPUs 0..{present - 1}; no GPU {missing[0]}")
    return wanted
