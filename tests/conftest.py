import os
import shutil
import sys
from pathlib import Path

import pytest

from pytest_embedeval.facts.registry import embedded_minilm_dir

# Nothing in the tests reaches the hub: set before huggingface_hub is imported (it reads the variable once).
for _variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_variable] = "1"

# tests/support/ (the stand-in server, stand-in models, inner runs, shared data) is imported as `support`. Under
# pytest's default prepend import mode this directory is on sys.path already, for this file; said here so that the
# test modules of both lanes can count on it however pytest was started.
TESTS = Path(__file__).parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from support.inner_run import InnerRun  # noqa: E402

# The lanes, by directory:
#   tests/unit/    no server of any kind, no network, nothing heavy: all of it in under 60 s (`pytest tests/unit`)
#   tests/server/  the slow lane: real SGLang, the stand-in server, inner pytest runs that boot or reach a server,
#                  SGLang's own code, models and mteb's registries in process; every test there is marked `server`
# so `pytest -m "not server"` is the unit lane. A unit test that asks for a server fixture is refused at collection:
# it belongs in tests/server/.
UNIT, SERVER = TESTS / "unit", TESTS / "server"
SERVER_FIXTURES = frozenset({"embed_server", "embed_client", "standin", "inner_run", "sglang_parser",
                             "oldest_sglang"})


def in_lane(path: Path, lane: Path) -> bool:
    return Path(path).resolve().is_relative_to(lane.resolve())


def misplaced(path: Path, name: str, fixturenames, marked_server: bool) -> str | None:
    """Why the test ``name`` in ``path`` cannot be in the unit lane; None if it can (or is not in tests/unit/)."""
    if not in_lane(path, UNIT):
        return None
    wanted = sorted(SERVER_FIXTURES & set(fixturenames))
    if wanted:
        return (f"{name} is in tests/unit/ but asks for the server fixture{'s' if len(wanted) > 1 else ''} "
                f"{', '.join(wanted)}: move it to tests/server/")
    if marked_server:
        return f"{name} is in tests/unit/ but marked server: move it to tests/server/"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector, name, obj):
    made = yield
    items = made if isinstance(made, list) else [made]
    for item in items:
        if isinstance(item, pytest.Function):
            reason = misplaced(item.path, item.nodeid, item.fixturenames, item.get_closest_marker("server") is not None)
            if reason:
                raise collector.CollectError(reason)
    return made


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if in_lane(item.path, SERVER) or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)


def pytest_collection_finish(session) -> None:
    # In-process pytester runs drop the modules they imported when they end; torch cannot be imported a second
    # time in one process, and mteb imported again finds its benchmark registry empty ("'MTEB(cmn, v1)' not
    # found"). Importing both here keeps them loaded across those runs: only where such runs are selected (the
    # server lane), since the two imports take 15 s.
    if any(item.get_closest_marker("server") for item in session.items):
        import mteb  # noqa: F401
        import sentence_transformers  # noqa: F401


@pytest.fixture(autouse=True)
def _the_servers_key(request, monkeypatch):
    """Inner runs that reach this session's booted server (``--embed-url={embed_server.url}``) send its key, as a
    user who shares a booted server with another tool would: every server the plugin boots has one."""
    if "embed_server" in request.fixturenames:
        key = request.getfixturevalue("embed_server").api_key
        if key:
            monkeypatch.setenv("EMBEDEVAL_API_KEY", key)


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
    """Start STAND-IN servers (tests/support/standin.py) for faults no real server can be made to produce."""
    from support.standin import StandinServer

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


@pytest.fixture
def sts_file(tmp_path):
    """Scored pairs in a user's JSONL file (support.task_data.PAIRS)."""
    from support.task_data import PAIRS, write_jsonl

    return write_jsonl(tmp_path / "pairs.jsonl", [{"sentence1": a, "sentence2": b, "score": s} for a, b, s in PAIRS])


@pytest.fixture
def beir_folder(tmp_path):
    """A user's retrieval task as a BEIR folder (support.task_data.DOCS, QUERIES, QRELS)."""
    from support.task_data import DOCS, QRELS, QUERIES, write_jsonl

    folder = tmp_path / "faq"
    folder.mkdir()
    write_jsonl(folder / "corpus.jsonl", DOCS)
    write_jsonl(folder / "queries.jsonl", QUERIES)
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in QRELS))
    return folder
