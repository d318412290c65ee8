"""The pytest adapter: options, fixtures and report hooks over the library. No logic of its own."""

from __future__ import annotations

import inspect
import json
import os
import shlex
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import baselines as baseline_store
from .engines.remote import RemoteServer, UnreachableServer
from .engines.sglang import LOCALHOST, ServerError, SGLangServer, detect_device, redact
from . import markers
from .drift import VectorStore
from .hardware import HardwareProfile, describe
from .measure.memory import tree_pss_bytes
from .metrics import Tolerance, metric
from .reference import ReferenceModel, ReferenceUnavailable, compare_with_reference, min_cosine_for
from .registry import DEFAULT_ALIAS, ModelConfigError, Registry, UnknownModelError
from .report import diff_table, verdict_table
from .results import ModelRun, Run, model_facts
from .timings import TimingStore
from .verdicts import Outcome, Verdict

API_KEY_ENV = "EMBEDEVAL_API_KEY"


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
    report_path: Path | None
    benchmark_dir: Path | None
    benchmark_json: Path | None
    chart_path: Path | None
    gpus: tuple[int, ...] | None
    host: str


SETTINGS = pytest.StashKey[Settings]()
STORE = pytest.StashKey[baseline_store.BaselineStore]()
RUN = pytest.StashKey[Run]()
FAILED_ATTEMPTS = pytest.StashKey[int]()  # the client's count when a test's call began
RETRIED = pytest.StashKey[list]()  # (test, failed attempts) of the tests that passed on retries
UPDATES = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("embedeval", "embedding-model regression tests")
    add = group.addoption
    add("--embed-model", action="append", default=[], metavar="MODEL",
        help="model alias or local model directory; repeat (or comma-separate) for several. "
             f"Default: the embed_model ini value, else {DEFAULT_ALIAS}.")
    add("--embed-url", metavar="URL", help="test an already-running OpenAI-compatible server instead of booting one")
    add("--embed-device", choices=("auto", "cpu", "cuda"), default=None,
        help="where SGLang runs (default: auto, cuda when NVML sees a GPU)")
    add("--embed-server-arg", action="append", default=[], metavar="ARG",
        help="extra SGLang launch argument(s), e.g. --embed-server-arg='--mem-fraction-static 0.6'")
    add("--embed-boot-timeout", type=float, default=None, metavar="SECONDS",
        help="give up booting the server after this long (default 600)")
    add("--embed-request-timeout", type=float, default=None, metavar="SECONDS",
        help="give up on one request to the server after this long; the client tries 3 times (default 120)")
    add("--embed-api-key", default=None, metavar="KEY",
        help=f"API key the server requires (SGLang --api-key); or set {API_KEY_ENV}")
    add("--embed-baselines", default=None, metavar="DIR", help="baseline directory (default: baselines/)")
    add("--embed-hardware", default=None, metavar="KEY",
        help="hardware key for baselines instead of the detected one (e.g. a100-80gb-x1, cpu-2c)")
    add("--embed-strict", action="store_true", help="a metric with no baseline for this hardware fails its test")
    add("--embed-update-baselines", action="store_true",
        help="write this run's measurements as the baselines of this hardware, and print the diff")
    add("--embed-accept-regressions", action="store_true",
        help="with --embed-update-baselines: also write values that regressed")
    add("--embed-report", default=None, metavar="PATH", help="write every measurement and verdict as JSON")
    add("--embed-benchmark-dir", default=None, metavar="DIR",
        help="write smaller-is-better.json and bigger-is-better.json for github-action-benchmark")
    add("--embed-benchmark-json", default=None, metavar="PATH",
        help="write every request's latency in pytest-benchmark's JSON format (pytest-benchmark compare reads it)")
    add("--embed-chart", default=None, metavar="PNG", help="write a chart of latency and throughput per model")
    add("--embed-gpus", default=None, metavar="LIST",
        help="GPUs to use, e.g. 0,1,2,3; with pytest-xdist each worker gets one GPU and its own server")
    add("--embed-host", default=None, metavar="ADDRESS",
        help="address the booted server listens on (default 127.0.0.1; anything else exposes it, with a warning)")
    add("--embed-allow-downloads", action="store_true",
        help="let this run fetch models and datasets from the Hugging Face hub (default: offline)")
    parser.addini("embed_model", "default model(s) when --embed-model is not given", type="args")
    parser.addini("embed_device", "default for --embed-device", default="auto")
    parser.addini("embed_boot_timeout", "default for --embed-boot-timeout (seconds)", default="600")
    parser.addini("embed_request_timeout", "default for --embed-request-timeout (seconds)", default="120")
    parser.addini("embed_baselines", "default for --embed-baselines", default="baselines")


def _settings(config: pytest.Config) -> Settings:
    option = config.getoption
    names = [name.strip() for value in option("embed_model") for name in value.split(",")]
    names = [name for name in names if name] or config.getini("embed_model") or [DEFAULT_ALIAS]
    registry = Registry.for_project(config.rootpath)
    specs = [registry.resolve(name) for name in dict.fromkeys(names)]
    if option("embed_url") and len(specs) > 1:
        raise pytest.UsageError("--embed-url tests one server: pass exactly one --embed-model with it")
    if option("embed_accept_regressions") and not option("embed_update_baselines"):
        raise pytest.UsageError("--embed-accept-regressions only means something with --embed-update-baselines")
    report, benchmark_dir, chart = option("embed_report"), option("embed_benchmark_dir"), option("embed_chart")
    return Settings(
        specs=specs,
        url=option("embed_url"),
        device=option("embed_device") or config.getini("embed_device"),
        server_args=tuple(arg for value in option("embed_server_arg") for arg in shlex.split(value)),
        boot_timeout=option("embed_boot_timeout") or float(config.getini("embed_boot_timeout")),
        request_timeout=option("embed_request_timeout") or float(config.getini("embed_request_timeout")),
        api_key=option("embed_api_key") or os.environ.get(API_KEY_ENV) or None,
        hardware=option("embed_hardware"),
        strict=option("embed_strict"),
        update_baselines=option("embed_update_baselines"),
        accept_regressions=option("embed_accept_regressions"),
        report_path=Path(report) if report else None,
        benchmark_dir=Path(benchmark_dir) if benchmark_dir else None,
        benchmark_json=Path(option("embed_benchmark_json")) if option("embed_benchmark_json") else None,
        chart_path=Path(chart) if chart else None,
        gpus=_gpus(option("embed_gpus")),
        host=option("embed_host") or LOCALHOST,
    )


def _gpus(value: str | None) -> tuple[int, ...] | None:
    if not value:
        return None
    try:
        wanted = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise pytest.UsageError(f"--embed-gpus takes GPU indexes like 0,1,2,3, got {value!r}") from None
    from .hardware import gpu_names

    present = len(gpu_names()[0])
    if present == 0:
        raise pytest.UsageError(f"--embed-gpus {value}: NVML sees no GPU on this machine. "
                                "Drop --embed-gpus to run on the CPU (pytest -n N then boots one server per worker).")
    missing = [i for i in wanted if i >= present]
    if missing:
        raise pytest.UsageError(f"--embed-gpus {value}: this machine has GPUs 0..{present - 1}; no GPU {missing[0]}")
    return wanted


def _worker_gpus(config: pytest.Config, gpus: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """An xdist worker gets one GPU of the list (gw0 the first, gw1 the second...); a lone run gets them all."""
    worker = getattr(config, "workerinput", {}).get("workerid")
    if gpus is None or worker is None:
        return gpus
    return (gpus[int(worker.removeprefix("gw")) % len(gpus)],)


def pytest_configure(config: pytest.Config) -> None:
    for name in markers.MARKERS:
        config.addinivalue_line("markers", markers.help_line(name))
    try:
        config.stash[SETTINGS] = _settings(config)
        directory = config.rootpath / (config.getoption("embed_baselines") or config.getini("embed_baselines"))
        # Validated now, so that a broken file stops the run before a GPU server boots.
        config.stash[STORE] = baseline_store.BaselineStore(directory)
    except (UnknownModelError, ModelConfigError, baseline_store.BaselineError) as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.stash[SETTINGS].host != LOCALHOST:
        config.issue_config_time_warning(pytest.PytestConfigWarning(
            f"--embed-host {config.stash[SETTINGS].host}: the SGLang server will accept connections from other "
            "machines; protect it with --embed-api-key"), stacklevel=2)
    config.stash[RUN] = Run()
    config.stash[UPDATES] = {}
    config.stash[RETRIED] = []


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash.get(SETTINGS, None)
    if settings is None:
        return None
    target = settings.url or f"SGLang booted by the plugin, device {settings.device}"
    return f"embedeval: models {', '.join(s.alias for s in settings.specs)}; server: {target}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "embed_model" in metafunc.fixturenames:
        specs = metafunc.config.stash[SETTINGS].specs
        metafunc.parametrize("embed_model", specs, ids=[s.alias for s in specs], indirect=True, scope="session")


# -- the server under test --------------------------------------------------------------------------

def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _unwind_on_sigterm() -> None:
    # A CI runner cancelling a job sends SIGTERM, whose default kills pytest without teardown.
    # Unwinding as for Ctrl-C lets session teardown stop the servers instead of orphaning them.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)


@pytest.fixture(scope="session")
def embed_model(request: pytest.FixtureRequest):
    """The ModelSpec under test (the session runs once per --embed-model)."""
    return getattr(request, "param", request.config.stash[SETTINGS].specs[0])


@pytest.fixture(scope="session")
def embed_server(embed_model, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A ready server for the model: booted (and always stopped) by the plugin, or --embed-url's."""
    settings = request.config.stash[SETTINGS]
    if not request.config.getoption("embed_allow_downloads"):
        # Nothing at test time reaches the hub unless asked: a missing file fails fast and says so.
        for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ[variable] = "1"
    if settings.url:
        server = RemoteServer(settings.url, embed_model, api_key=settings.api_key)
    else:
        server = SGLangServer(
            embed_model,
            device=detect_device() if settings.device == "auto" else settings.device,
            log_path=tmp_path_factory.mktemp("embedeval") / f"sglang-{embed_model.alias}.log",
            extra_args=settings.server_args,
            api_key=settings.api_key,
            boot_timeout=settings.boot_timeout,
            gpus=_worker_gpus(request.config, settings.gpus),
            host=settings.host,
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
def embed_client(embed_server, embed_model, request: pytest.FixtureRequest):
    """The real ``openai`` client bound to the server, with a checked ``embed(texts)``."""
    from .client import EmbeddingClient  # openai takes 0.6 s to import: not for every pytest run

    settings = request.config.stash[SETTINGS]
    client = EmbeddingClient(embed_server.url, embed_server.served_model(), api_key=settings.api_key,
                             timeout=settings.request_timeout, dimensions=embed_model.dimensions)
    try:
        yield client
    finally:
        client.close()


# -- baselines and verdicts --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def embed_run(embed_server, request: pytest.FixtureRequest) -> ModelRun:
    """This model's record in the run: its hardware profile and every verdict so far."""
    config = request.config
    settings = config.stash[SETTINGS]
    hardware, machine = describe(embed_server.device, getattr(embed_server, "gpus", None))
    engine, software = embed_server.engine_info()
    run = ModelRun(
        model=embed_server.spec.alias,
        profile=HardwareProfile(settings.hardware or hardware, engine, embed_server.dtype),
        machine=machine,
        software=software,
        server={
            "url": embed_server.url,
            "argv": redact(embed_server.argv, settings.api_key) if isinstance(embed_server, SGLangServer) else None,
            "boot_seconds": embed_server.boot_seconds,
        },
        facts=model_facts(embed_server.spec),
    )
    config.stash[RUN].models[run.model] = run
    return run


@pytest.fixture
def embed_metric(embed_run, request: pytest.FixtureRequest):
    """Call ``embed_metric(name, value, tolerance=None, interval=None)`` to record a measurement.

    It is compared with this hardware's baseline at once; a regression fails this test.
    """
    config = request.config
    settings = config.stash[SETTINGS]
    baselines = config.stash[STORE].for_model(embed_run.model)

    def record(name: str, value: float, *, tolerance: str | float | None = None,
               interval: tuple[float, float] | None = None, note: str | None = None, check: bool = True,
               ratio_interval: tuple[float, float] | None = None, sampled_baseline: float | None = None) -> Verdict:
        try:
            definition = metric(name)
            parsed = Tolerance.parse(tolerance) if tolerance is not None else None
            if parsed:
                definition.check_tolerance(parsed)
        except (KeyError, ValueError) as exc:
            pytest.fail(f"embed_metric({name!r}): {exc.args[0]}", pytrace=False)
        verdict = baselines.compare(name, float(value), embed_run.profile, tolerance=parsed, interval=interval,
                                    test=request.node.nodeid, note=note, ratio_interval=ratio_interval,
                                    sampled_baseline=sampled_baseline)
        embed_run.verdicts.append(verdict)
        request.node.user_properties.append((f"embedeval:{name}", verdict.measured))  # JUnit XML
        if check:
            fail_on([verdict], settings)
        return verdict

    return record


def fail_on(verdicts: list[Verdict], settings: Settings) -> None:
    """Fail the running test with every verdict that fails it, each as a sentence and its table."""
    failing = [v for v in verdicts if (v.outcome is Outcome.REGRESSED and not settings.accept_regressions)
               or (v.outcome is Outcome.NO_BASELINE and settings.strict and not settings.update_baselines)]
    if failing:
        pytest.fail("\n\n".join(f"{v.reason()}\n\n{v.section()}" for v in failing), pytrace=False)


# -- markers -----------------------------------------------------------------------------------------

_MARKER_FIXTURES = ("embed_server", "embed_client", "embed_run", "embed_metric")


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector, name, obj):
    # A marked test needs the server although its signature may not say so: declaring the fixtures
    # before pytest builds the item puts them (and embed_model's parametrization) in its closure.
    if inspect.isfunction(obj) and any(m.name in markers.MARKERS for m in _own_and_enclosing_marks(collector, obj)):
        pytest.mark.usefixtures(*_MARKER_FIXTURES)(obj)
    return (yield)


def _own_and_enclosing_marks(collector, obj):
    yield from getattr(obj, "pytestmark", [])
    node = collector
    while node is not None:
        yield from node.iter_markers() if hasattr(node, "iter_markers") else ()
        node = node.parent


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    client = getattr(item, "funcargs", {}).get("embed_client")
    if client is not None:
        item.stash[FAILED_ATTEMPTS] = client.failed_attempts
    result = yield  # the test body first: a failing body is reported as it is, with no measurement
    for mark in item.iter_markers():
        if mark.name not in markers.MARKERS:
            continue
        try:
            bound = markers.bind(mark.name, mark.args, mark.kwargs)
        except TypeError as exc:
            pytest.fail(str(exc), pytrace=False)
        settings = item.config.stash[SETTINGS]
        reporter = item.config.pluginmanager.get_plugin("terminalreporter")
        embed_run = item.funcargs["embed_run"]
        target = markers.Target(
            item.funcargs["embed_server"], item.funcargs["embed_client"].model, api_key=settings.api_key,
            progress=(lambda line: reporter.write_line(line)) if reporter else print,
            vectors=VectorStore(item.config.stash[STORE].directory), samples=TimingStore(item.config.stash[STORE].directory),
            profile=baseline_store.profile_name(embed_run.profile),
            update=settings.update_baselines, timeout=settings.request_timeout,
        )
        arguments = dict(bound.arguments)
        arguments.pop("target")
        tolerance = arguments.get("tolerance")
        try:
            measurements = markers.measure(mark.name, target, arguments,
                                           judge=lambda found: _regressed(item, embed_run, found, tolerance))
        except markers.NotMeasurable as exc:
            pytest.skip(str(exc))
        except markers.MeasurementError as exc:
            pytest.fail(f"@pytest.mark.{mark.name}: no measurement: {exc}", pytrace=False)
        verdicts = [
            item.funcargs["embed_metric"](m.metric, m.value, tolerance=tolerance if tolerance is not None else m.tolerance,
                                          interval=m.interval, note=m.note, check=False, ratio_interval=m.ratio_interval,
                                          sampled_baseline=m.sampled_baseline)
            for m in measurements
        ]
        for timing in target.timings:
            timing.test = item.nodeid
        embed_run.timings.extend(target.timings)
        fail_on(verdicts, settings)  # every figure of the marker is recorded before any fails the test
        # Reached only when no figure regressed (or regressions are accepted): stored when the session ends.
        embed_run.pending_vectors.update(target.captured)
        embed_run.pending_timings.extend(target.timings)
    return result


def _regressed(item: pytest.Item, embed_run: ModelRun, measurements, tolerance) -> list[str]:
    """The metrics these measurements would fail on, judged exactly as embed_metric judges, recording nothing."""
    baselines = item.config.stash[STORE].for_model(embed_run.model)
    names = []
    for m in measurements:
        chosen = tolerance if tolerance is not None else m.tolerance
        try:
            verdict = baselines.compare(m.metric, m.value, embed_run.profile,
                                        tolerance=Tolerance.parse(chosen) if chosen is not None else None,
                                        interval=m.interval, ratio_interval=m.ratio_interval,
                                        sampled_baseline=m.sampled_baseline)
        except (KeyError, ValueError):
            continue  # embed_metric reports the mistake itself
        if verdict.outcome is Outcome.REGRESSED:
            names.append(m.metric)
    return names


# -- built-in checks ---------------------------------------------------------------------------------

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


# -- reporting ---------------------------------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    server = getattr(item, "funcargs", {}).get("embed_server")
    if report.failed and server is not None:
        state = "running" if server.is_alive() else "NOT RUNNING (it died)"
        report.sections.append((f"embed server log, last lines (server {state})", server.log_tail()))
    client = getattr(item, "funcargs", {}).get("embed_client")
    if call.when == "call" and client is not None and FAILED_ATTEMPTS in item.stash:
        # The SDK retries server errors and timeouts by itself: a pass built on retries must say so.
        failed = client.failed_attempts - item.stash[FAILED_ATTEMPTS]
        if failed:
            item.user_properties.append(("embedeval:failed_attempts", failed))  # JUnit XML
            if report.passed:
                item.config.stash[RETRIED].append((item.nodeid, failed))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    settings, run = config.stash.get(SETTINGS, None), config.stash.get(RUN, None)
    if settings is None or run is None:
        return
    # An interrupted run measured only part of what it set out to: it never rewrites baselines.
    updating = settings.update_baselines and session.exitstatus != pytest.ExitCode.INTERRUPTED
    if updating:
        vectors = VectorStore(config.stash[STORE].directory)
        for model_run in run.models.values():
            for model, (texts, captured) in model_run.pending_vectors.items():
                path = vectors.save(model, baseline_store.profile_name(model_run.profile), texts, captured)
                model_run.stored_files.append(str(path))
            if model_run.pending_timings:
                path = TimingStore(config.stash[STORE].directory).save(
                    model_run.model, baseline_store.profile_name(model_run.profile), model_run.pending_timings,
                    _machine_info(model_run))
                model_run.stored_files.append(str(path))
    if hasattr(config, "workerinput"):
        # An xdist worker hands its measurements to the controller, the one writer of the TOML files.
        config.workeroutput["embedeval_run"] = run.to_json()
        return
    if updating:
        store = config.stash[STORE]
        for model_run in run.models.values():
            measurements = model_run.measurements()
            if measurements:
                config.stash[UPDATES][model_run.model] = baseline_store.update(
                    store.directory, model_run.model, model_run.profile, measurements,
                    machine=model_run.machine, software=model_run.software,
                    accept_regressions=settings.accept_regressions,
                )
        if any(not c.written for changes in config.stash[UPDATES].values() for c in changes):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if not run.models:
        return
    from . import environment, outputs

    run.environment = environment.collect()
    if settings.report_path:
        baseline_store.write_atomically(settings.report_path, run.to_json())
    if settings.benchmark_dir:
        outputs.write_benchmark_files(run, settings.benchmark_dir)
    if settings.benchmark_json:
        from .timings import document

        timings = {model: model_run.timings for model, model_run in run.models.items() if model_run.timings}
        machine = _machine_info(next(iter(run.models.values())))
        baseline_store.write_atomically(settings.benchmark_json, json.dumps(document(timings, machine), indent=2))
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        outputs.append_step_summary(run, Path(os.environ["GITHUB_STEP_SUMMARY"]), config.stash[UPDATES])
    if settings.chart_path:
        from .compare import chart

        chart(list(run.models.values()), settings.chart_path)


def _machine_info(model_run: ModelRun) -> dict:
    """What pytest-benchmark's machine info lacks: the baseline profile and the accelerator."""
    return {"embedeval_profile": baseline_store.profile_name(model_run.profile), "embedeval_machine": model_run.machine}


def pytest_testnodedown(node, error) -> None:
    """xdist controller: merge a worker's measurements into the one report."""
    data = getattr(node, "workeroutput", {}).get("embedeval_run")
    if data:
        merged = node.config.stash[RUN]
        for model, model_run in Run.from_dict(json.loads(data)).models.items():
            if model in merged.models:
                merged.models[model].verdicts.extend(model_run.verdicts)
                merged.models[model].stored_files.extend(model_run.stored_files)
                merged.models[model].timings.extend(model_run.timings)
            else:
                merged.models[model] = model_run


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    for nodeid, failed in config.stash.get(RETRIED, []):
        terminalreporter.line(f"embedeval: {nodeid} passed after {failed} failed request attempt"
                              f"{'s' if failed > 1 else ''} (server errors or timeouts, retried by the client)",
                              yellow=True)
    run = config.stash.get(RUN, None)
    if not run or not run.models:
        return
    for model_run in run.models.values():
        if not model_run.verdicts:
            continue
        terminalreporter.section(f"embedeval: {model_run.model} on {model_run.profile}", sep="-")
        terminalreporter.line(verdict_table(model_run.verdicts))
    for model, changes in config.stash[UPDATES].items():
        path = config.stash[STORE].for_model(model).path
        terminalreporter.section(f"embedeval: baseline update for {model} ({path})", sep="-")
        terminalreporter.line(diff_table(changes))
        for stored in config.stash[RUN].models[model].stored_files:
            terminalreporter.line(f"written with the baselines: {stored}")
        refused = [c.metric for c in changes if not c.written]
        if refused:
            terminalreporter.line(
                f"refused to write regressed values for {', '.join(refused)}: the old baselines stay. "
                "Re-run with --embed-accept-regressions if the regression is intended.", red=True)
    if len(run.models) > 1:
        from .compare import comparison_table

        terminalreporter.section("embedeval: models side by side (article's figures in brackets)", sep="-")
        terminalreporter.line(comparison_table(list(run.models.values()), config.stash[STORE].models))
    settings = config.stash[SETTINGS]
    for path in (settings.report_path, settings.chart_path, settings.benchmark_json):
        if path:
            terminalreporter.line(f"embedeval: written {path}")
