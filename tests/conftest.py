import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from pytest_embedeval.facts.registry import embedded_minilm_dir

# Nothing in the tests reaches the hub: set before huggingface_hub is imported (it reads the variable once).
for _variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_variable] = "1"

MARKER_ENV = "EMBEDEVAL_TEST_RUN"

# The lanes: a test that starts a server (a real SGLang, a stand-in, an inner pytest that boots one) or runs
# SGLang's own code takes seconds on a 2-core CPU, and is in the `server` lane by the fixture it asks for.
# `pytest -m "not server"` is the fast lane.
SERVER_FIXTURES = frozenset({"embed_server", "embed_client", "standin", "inner_run", "sglang_parser",
                             "oldest_sglang"})


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)


def pytest_collection_finish(session) -> None:
    # In-process pytester runs drop the modules they imported when they end; torch cannot be imported a second
    # time in one process, and mteb imported again finds its benchmark registry empty ("'MTEB(cmn, v1)' not
    # found"). Importing both here keeps them loaded across those runs: only where such runs are selected (the
    # server lane), since the two imports take 15 s.
    if any(item.get_closest_marker("server") for item in session.items):
        import mteb  # noqa: F401
        import sentence_transformers  # noqa: F401


def processes_of_run(marker: str) -> list[psutil.Process]:
    """Every live process started (transitively) by an inner run tagged with ``marker``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER_ENV) == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


class InnerRun:
    """``pytest`` in a subprocess, as a user starts it, tagged so that its processes can be found."""

    def __init__(self, path: Path, args: list[str]):
        self.marker = uuid.uuid4().hex
        env = {**os.environ, MARKER_ENV: self.marker, "PYTHONUNBUFFERED": "1"}
        self.output_path = path / f"inner-{self.marker}.out"
        self.sessions: set[int] = set()  # server sessions seen: SGLang's renamed workers lose the env marker
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=path, env=env, stdout=open(self.output_path, "wb"), stderr=subprocess.STDOUT,
        )

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.server_started()  # notes the server's session while it is alive
            if predicate():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"inner pytest exited before {what}:\n{self.output}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"timed out waiting for {what}:\n{self.output}")
            time.sleep(0.2)

    def server_started(self) -> bool:
        started = False
        for proc in processes_of_run(self.marker):
            try:
                if "sglang.launch_server" in " ".join(proc.cmdline()):
                    self.sessions.add(os.getsid(proc.pid))
                    started = True
            except (psutil.Error, ProcessLookupError):
                pass
        return started

    def interrupt(self, sig=signal.SIGINT) -> None:
        self.process.send_signal(sig)

    def finish(self, timeout: float = 600) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        for proc in self.alive():
            try:
                proc.kill()
            except psutil.Error:
                pass

    def alive(self) -> list[psutil.Process]:
        found = processes_of_run(self.marker)
        for proc in psutil.process_iter():
            try:
                if os.getsid(proc.pid) in self.sessions and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (psutil.Error, ProcessLookupError):
                pass
        return found

    def leftovers(self, settle: float = 10.0) -> list[str]:
        deadline = time.monotonic() + settle
        while (left := self.alive()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return [" ".join(p.cmdline())[:120] for p in left]


@pytest.fixture
def inner_run(pytester):
    runs = []

    def start(*args: str) -> InnerRun:
        runs.append(InnerRun(pytester.path, list(args)))
        return runs[-1]

    yield start
    for run in runs:  # whatever a failed assertion left behind
        run.kill()


@pytest.fixture
def standin():
    """Start STAND-IN servers (tests/standin_server.py) for faults no real server can be made to produce."""
    from standin_server import StandinServer

    servers = []

    def start(fault=None, **options) -> StandinServer:
        servers.append(StandinServer(fault, **options).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


USER_STS_PAIRS = [("A man is playing a guitar.", "A man plays the guitar.", 4.8),
                  ("A man is playing a guitar.", "A woman is slicing onions.", 0.2),
                  ("The stock market fell sharply today.", "Shares dropped steeply on Monday.", 3.6),
                  ("Kids are swimming in the lake.", "Children swim in a lake.", 4.6),
                  ("Kids are swimming in the lake.", "The lake is frozen in winter.", 1.2)]


@pytest.fixture
def user_sts_suite(pytester) -> Path:
    """A user's project: a small STS file of their own (ours.jsonl) and one test scoring it; returns the file."""
    import json

    data = pytester.path / "ours.jsonl"
    data.write_text("\n".join(json.dumps({"sentence1": a, "sentence2": b, "score": s}) for a, b, s in USER_STS_PAIRS))
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.embed_accuracy(task={str(data)!r})\ndef test_ours():\n"
                        "    pass\n")
    return data


@pytest.fixture
def cls_pooled_minilm(tmp_path) -> Path:
    """MiniLM's files with a pooling config that says CLS: the same weights, other facts."""
    model = tmp_path / "minilm-cls"
    shutil.copytree(embedded_minilm_dir(), model, ignore=shutil.ignore_patterns("*.safetensors", "onnx", "openvino"))
    (model / "model.safetensors").symlink_to(embedded_minilm_dir() / "model.safetensors")
    (model / "1_Pooling" / "config.json").write_text('{"word_embedding_dimension": 384, "pooling_mode_cls_token": true}')
    return model
