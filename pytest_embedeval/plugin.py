"""The pytest adapter: options, fixtures and hooks over the library. It judges nothing itself.

The plugin stays silent and imports nothing heavy until a run uses it: an ``--embed-*`` option, an ``embed_*``
ini value, or a collected test that needs an embed fixture or marker. Every figure goes to the run session
(``run/session.py``), which records the verdict the judge (``judge/``) makes; a failing one fails the test.
"""

from __future__ import annotations

import inspect

import pytest

from .measure import markers

SESSION = pytest.StashKey["RunSession"]()
SETTINGS = pytest.StashKey["Settings"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    from .run.settings import INI, OPTIONS

    group = parser.getgroup("embedeval", "embedding-model regression tests")
    for flag, options in OPTIONS:
        group.addoption(flag, **options)
    for name, (help_text, kind, default) in INI.items():
        parser.addini(name, help_text, type=kind, default=default)


def _asked_for(config: pytest.Config) -> bool:
    """An --embed-* option or an embed_* ini value: the user wants the plugin before any test is collected."""
    options = any(value not in (None, False, []) for name, value in vars(config.option).items()
                  if name.startswith("embed_"))
    from .run.settings import INI

    # An unset ini value reads as its default (pytest 9.2 deprecates config.inicfg, which said what was set).
    return options or any(config.getini(name) not in (None, [], default) for name, (_, _, default) in INI.items())


def _session(config: pytest.Config):
    """The run session, opened on first use: settings read and baselines validated before any server boots."""
    if SESSION not in config.stash:
        from .run.session import RunSession
        from .run.settings import SettingsError, read
        from .store import BaselineError

        try:
            config.stash[SETTINGS] = read(config.getoption, config.getini, config.rootpath)
            config.stash[SESSION] = RunSession.for_settings(config.stash[SETTINGS], lambda x: _progress(config, x))
        except (SettingsError, BaselineError) as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[SESSION]


def _progress(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")  # looked up late: it registers after us
    if config.get_verbosity() >= 0:  # -q keeps long work quiet
        reporter.write_line(line) if reporter else print(line)


def pytest_configure(config: pytest.Config) -> None:
    for name in markers.MARKERS:
        config.addinivalue_line("markers", markers.help_line(name))
    if _asked_for(config):
        _session(config)
        if config.stash[SETTINGS].exposure():
            config.issue_config_time_warning(pytest.PytestConfigWarning(config.stash[SETTINGS].exposure()), 2)


def pytest_report_header(config: pytest.Config) -> str | None:
    return config.stash[SETTINGS].header() if SETTINGS in config.stash else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "embed_model" in metafunc.fixturenames:
        _session(metafunc.config)
        specs = metafunc.config.stash[SETTINGS].specs
        metafunc.parametrize("embed_model", specs, ids=[s.alias for s in specs], indirect=True, scope="session")


# -- the server under test --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def embed_model(request: pytest.FixtureRequest):
    """The ModelSpec under test (the session runs once per --embed-model)."""
    return request.param


def _serve(request: pytest.FixtureRequest, tmp_path_factory, spec, incumbent: bool = False):
    from .serve.serving import CannotServe, serving

    worker = getattr(request.config, "workerinput", {}).get("workerid")
    try:
        with serving(spec, request.config.stash[SETTINGS], tmp_path_factory.mktemp("embedeval"), worker,
                     incumbent=incumbent, progress=_session(request.config).progress) as server:
            yield server
    except CannotServe as exc:
        pytest.fail(f"{'the incumbent server: ' if incumbent else ''}{exc}", pytrace=False)


@pytest.fixture(scope="session")
def embed_server(embed_model, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A ready server for the model: booted (and always stopped) by the plugin, or --embed-url's."""
    yield from _serve(request, tmp_path_factory, embed_model)


@pytest.fixture(scope="session")
def embed_client(embed_server, embed_model, embed_run, request: pytest.FixtureRequest):
    """The real ``openai`` client bound to the server, with a checked ``embed(texts)``; it counts every attempt."""
    from .serve.serving import client_for

    with client_for(embed_server, request.config.stash[SETTINGS], embed_model.dimensions) as client:
        yield client


@pytest.fixture(scope="session")
def embed_pair(embed_run, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The paired incumbent ``(server, client)`` measured beside the candidate; None in an unpaired run."""
    from .serve.serving import client_for

    incumbent = request.config.stash[SETTINGS].incumbent
    if incumbent is None:
        yield None
        return
    for server in _serve(request, tmp_path_factory, incumbent.spec, incumbent=True):
        with client_for(server, request.config.stash[SETTINGS]) as client:
            _session(request.config).open_incumbent(embed_run, server, incumbent.describe())
            yield server, client


@pytest.fixture(scope="session")
def embed_run(embed_server, request: pytest.FixtureRequest):
    """This model's record in the run: its hardware profile and every verdict so far."""
    settings = request.config.stash[SETTINGS]
    return _session(request.config).open_server(embed_server, hardware=settings.hardware,
                                                paired=settings.incumbent is not None)


def _fail_on(verdicts, session) -> None:
    if failing := session.failing(verdicts):
        pytest.fail("\n\n".join(f"{v.reason()}\n\n{v.section()}" for v in failing), pytrace=False)


@pytest.fixture
def embed_metric(embed_run, request: pytest.FixtureRequest):
    """``embed_metric(name, value, tolerance=None, interval=None, note=None)``: a figure, judged at once."""
    session = _session(request.config)

    def record(name: str, value: float, *, tolerance: str | float | None = None,
               interval: tuple[float, float] | None = None, note: str | None = None):
        try:
            (verdict,) = session.record(embed_run, [markers.Measurement(name, float(value), interval, note)],
                                        tolerance=tolerance, test=request.node.nodeid)
        except ValueError as exc:
            pytest.fail(f"embed_metric({name!r}): {exc}", pytrace=False)
        request.node.user_properties.append((f"embedeval:{name}", verdict.measured))  # JUnit XML
        _fail_on([verdict], session)
        return verdict

    return record


# -- markers -----------------------------------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector, name, obj):
    # A marked test needs the server although its signature may not say so: declaring the fixtures
    # before pytest builds the item puts them (and embed_model's parametrization) in its closure.
    if inspect.isfunction(obj) and any(m.name in markers.MARKERS for m in _own_and_enclosing_marks(collector, obj)):
        pytest.mark.usefixtures("embed_server", "embed_client", "embed_run", "embed_pair")(obj)
    return (yield)


def _own_and_enclosing_marks(collector, obj):
    yield from getattr(obj, "pytestmark", [])
    for node in collector.listchain():
        yield from node.iter_markers()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    funcargs, failed = getattr(item, "funcargs", {}), []
    clients = {"": funcargs.get("embed_client"), "incumbent": (funcargs.get("embed_pair") or (None, None))[1]}
    counted = {server: (c, (c.attempts, c.failed_attempts)) for server, c in clients.items() if c is not None}
    try:
        result = yield  # the test body first: a failing body is reported as it is, with no measurement
        for mark in (m for m in item.iter_markers() if m.name in markers.MARKERS):
            _measure(item, mark)
    finally:  # failed attempts are a figure of their own, even when retries hid them, and so is a dead worker
        if run := funcargs.get("embed_run"):
            failed = _session(item.config).after_test(run, counted, funcargs["embed_server"], item.nodeid)
    if failed:
        _fail_on(failed, _session(item.config))
    return result


def _measure(item: pytest.Item, mark) -> None:
    session, embed_run = _session(item.config), item.funcargs["embed_run"]
    try:
        arguments, judging = markers.arguments(mark.name, mark.args, mark.kwargs)
    except TypeError as exc:
        pytest.fail(str(exc), pytrace=False)
    target = session.target(embed_run, item.funcargs["embed_server"], item.funcargs["embed_client"],
                            item.config.stash[SETTINGS], incumbent=item.funcargs["embed_pair"])
    try:
        verdicts = session.measure(embed_run, mark.name, target, arguments, judging, test=item.nodeid)
    except markers.NotMeasurable as exc:
        pytest.skip(str(exc))
    except (markers.MeasurementError, ValueError) as exc:
        pytest.fail(f"@pytest.mark.{mark.name}: no measurement: {exc}", pytrace=False)
    item.user_properties.extend((f"embedeval:{v.label}", v.measured) for v in verdicts)  # JUnit XML
    _fail_on(verdicts, session)


# -- built-in checks ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def embed_reference(embed_model):
    """The model's sentence-transformers reference, run in this process from the same files."""
    from .measure.reference import ReferenceModel

    return ReferenceModel(embed_model)


@pytest.fixture
def embed_check_reference(embed_client, embed_reference, embed_server):
    """Call it to assert that served vectors equal the reference; returns the per-text cosines."""
    from .judge.rules import reference_min_cosine
    from .measure.reference import ReferenceMismatch, ReferenceUnavailable, check_served

    def check(texts: list[str] | None = None, min_cosine: float | None = None):
        least = reference_min_cosine(embed_server.dtype) if min_cosine is None else min_cosine  # the judge's default
        try:
            return check_served(embed_client, embed_reference, texts, least)
        except ReferenceUnavailable as exc:
            pytest.skip(f"no reference to compare with: {exc}")
        except ReferenceMismatch as exc:
            pytest.fail(str(exc), pytrace=False)

    return check


@pytest.fixture
def embed_server_memory(embed_server):
    """Host memory (PSS) of the server's process tree; skipped for servers this run did not start."""
    from .measure.memory import tree_pss_bytes

    if embed_server.process is None:
        pytest.skip("server memory cannot be measured: --embed-url points at a server this run did not start")
    return lambda: sum(tree_pss_bytes(pid) for pid in embed_server.root_pids())


# -- reporting ---------------------------------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    server = getattr(item, "funcargs", {}).get("embed_server")
    if report.failed and server is not None:
        state = "running" if server.is_alive() else "NOT RUNNING (it died)"
        report.sections.append((f"embed server log, last lines (server {state})", server.log_tail()))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    run_session = session.config.stash.get(SESSION, None)
    if run_session is None:
        return
    worker = hasattr(session.config, "workerinput")
    run_session.finish(interrupted=session.exitstatus == pytest.ExitCode.INTERRUPTED, controller=not worker)
    if worker:  # the controller merges, updates and reports, as one judge of one run
        session.config.workeroutput["embedeval_run"] = run_session.run.to_json()
        return
    if run_session.failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if run_session.run.models:
        from .report import write_files

        write_files(run_session, session.config.stash[SETTINGS])


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: unknown, and harmless, where it is not installed
def pytest_testnodedown(node, error) -> None:
    """xdist controller: a worker's recorded verdicts join the one run."""
    if data := getattr(node, "workeroutput", {}).get("embedeval_run"):
        _session(node.config).merge(data)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    run_session = config.stash.get(SESSION, None)
    if run_session is None or not run_session.run.models:
        return
    from .report import sections

    for title, body, markup in sections(run_session):
        if title:
            terminalreporter.section(title, sep="-")
        terminalreporter.line(body, **markup)
