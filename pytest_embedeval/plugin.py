"""The pytest adapter: options, fixtures and report hooks over the library. No logic of its own."""

from __future__ import annotations

import os
import shlex
import signal
import threading

import pytest

from .engines.remote import RemoteServer, UnreachableServer
from .engines.sglang import ServerError, SGLangServer, detect_device
from .measure.memory import tree_pss_bytes
from .reference import ReferenceModel, min_cosine_for, ReferenceUnavailable, compare_with_reference
from .registry import DEFAULT_ALIAS, ModelConfigError, Registry, UnknownModelError

SPECS = pytest.StashKey[list]()
SETTINGS = pytest.StashKey[dict]()
API_KEY_ENV = "EMBEDEVAL_API_KEY"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("embedeval", "embedding-model regression tests")
    group.addoption("--embed-model", action="append", default=[], metavar="MODEL",
                    help="model alias or local model directory; repeat (or comma-separate) for several. "
                         f"Default: the embed_model ini value, else {DEFAULT_ALIAS}.")
    group.addoption("--embed-url", metavar="URL",
                    help="test an already-running OpenAI-compatible server instead of booting one")
    group.addoption("--embed-device", choices=("auto", "cpu", "cuda"), default=None,
                    help="where SGLang runs (default: auto, cuda when NVML sees a GPU)")
    group.addoption("--embed-server-arg", action="append", default=[], metavar="ARG",
                    help="extra SGLang launch argument(s), e.g. --embed-server-arg='--mem-fraction-static 0.6'")
    group.addoption("--embed-boot-timeout", type=float, default=None, metavar="SECONDS",
                    help="give up booting the server after this long (default 600)")
    group.addoption("--embed-api-key", default=None, metavar="KEY",
                    help=f"API key the server requires (SGLang --api-key); or set {API_KEY_ENV}")
    parser.addini("embed_model", "default model(s) when --embed-model is not given", type="args")
    parser.addini("embed_device", "default for --embed-device", default="auto")
    parser.addini("embed_boot_timeout", "default for --embed-boot-timeout (seconds)", default="600")


def _requested_models(config: pytest.Config) -> list[str]:
    names = [name.strip() for value in config.getoption("embed_model") for name in value.split(",")]
    return [name for name in names if name] or config.getini("embed_model") or [DEFAULT_ALIAS]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "embed: a test of the embedding server under test")
    try:
        registry = Registry.for_project(config.rootpath)
        specs = [registry.resolve(name) for name in dict.fromkeys(_requested_models(config))]
    except (UnknownModelError, ModelConfigError) as exc:
        raise pytest.UsageError(str(exc)) from None
    url = config.getoption("embed_url")
    if url and len(specs) > 1:
        raise pytest.UsageError("--embed-url tests one server: pass exactly one --embed-model with it")
    device = config.getoption("embed_device") or config.getini("embed_device")
    config.stash[SPECS] = specs
    config.stash[SETTINGS] = {
        "url": url,
        "device": device,
        "server_args": tuple(arg for value in config.getoption("embed_server_arg") for arg in shlex.split(value)),
        "boot_timeout": config.getoption("embed_boot_timeout") or float(config.getini("embed_boot_timeout")),
        "api_key": config.getoption("embed_api_key") or os.environ.get(API_KEY_ENV) or None,
    }


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _unwind_on_sigterm() -> None:
    # A CI runner cancelling a job sends SIGTERM, whose default kills pytest without teardown.
    # Unwinding as for Ctrl-C lets session teardown stop the servers instead of orphaning them.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)


def pytest_report_header(config: pytest.Config) -> str | None:
    specs, settings = config.stash.get(SPECS, None), config.stash.get(SETTINGS, None)
    if not specs:
        return None
    target = settings["url"] or f"SGLang booted by the plugin, device {settings['device']}"
    return f"embedeval: models {', '.join(s.alias for s in specs)}; server: {target}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "embed_model" in metafunc.fixturenames:
        specs = metafunc.config.stash[SPECS]
        metafunc.parametrize("embed_model", specs, ids=[s.alias for s in specs], indirect=True, scope="session")


@pytest.fixture(scope="session")
def embed_model(request: pytest.FixtureRequest):
    """The ModelSpec under test (the session runs once per --embed-model)."""
    return getattr(request, "param", request.config.stash[SPECS][0])


@pytest.fixture(scope="session")
def embed_server(embed_model, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A ready server for the model: booted (and always stopped) by the plugin, or --embed-url's."""
    settings = request.config.stash[SETTINGS]
    if settings["url"]:
        server = RemoteServer(settings["url"], embed_model, api_key=settings["api_key"])
    else:
        device = detect_device() if settings["device"] == "auto" else settings["device"]
        server = SGLangServer(
            embed_model,
            device=device,
            log_path=tmp_path_factory.mktemp("embedeval") / f"sglang-{embed_model.alias}.log",
            extra_args=settings["server_args"],
            api_key=settings["api_key"],
            boot_timeout=settings["boot_timeout"],
        )
        _unwind_on_sigterm()
    try:
        server.start()
    except (ServerError, UnreachableServer) as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def embed_client(embed_server, request: pytest.FixtureRequest):
    """The real ``openai`` client bound to the server, with a checked ``embed(texts)``."""
    from .client import EmbeddingClient  # openai takes 0.6 s to import: not for every pytest run

    return EmbeddingClient(embed_server.url, embed_server.served_model(),
                           api_key=request.config.stash[SETTINGS]["api_key"])


@pytest.fixture(scope="session")
def embed_reference(embed_model) -> ReferenceModel:
    """The model's sentence-transformers reference, run in this process from the same files."""
    return ReferenceModel(embed_model)


@pytest.fixture
def embed_check_reference(embed_client, embed_reference, embed_server):
    """Call it to assert that served vectors equal the reference; returns the per-text cosines."""

    def check(texts: list[str] | None = None, min_cosine: float | None = None):
        try:
            texts = texts or embed_reference.probe_texts()
            reference = embed_reference.encode(texts)
        except ReferenceUnavailable as exc:
            pytest.skip(f"no reference to compare with: {exc}")
        threshold = min_cosine if min_cosine is not None else min_cosine_for(embed_server.dtype)
        served = embed_client.embed(texts)
        drift = compare_with_reference(texts, served, reference, threshold)
        if drift is not None:
            pytest.fail(str(drift), pytrace=False)
        return (served * reference).sum(axis=1)

    return check


@pytest.fixture
def embed_server_memory(embed_server):
    """Host memory (PSS) of the server's process tree; skipped for servers this run did not start."""
    if embed_server.process is None:
        pytest.skip("server memory cannot be measured: --embed-url points at a server this run did not start")
    return lambda: tree_pss_bytes(embed_server.process.pid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    server = getattr(item, "funcargs", {}).get("embed_server")
    if report.failed and server is not None:
        state = "running" if server.is_alive() else "NOT RUNNING (it died)"
        report.sections.append((f"embed server log, last lines (server {state})", server.log_tail()))
    return report

