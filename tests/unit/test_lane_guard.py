"""The lanes hold: every test under tests/server/ is in the `server` lane, and a test under tests/unit/ that asks for a
server fixture, or is marked `server`, is a collection error that names it and says to move it to tests/server/."""

from pathlib import Path

CONFTEST = Path(__file__).parents[1] / "conftest.py"


def lanes(pytester, unit: str) -> None:
    """A copy of this suite's lane rules (tests/conftest.py) over a unit/ and a server/ folder.

    Each inner run below deselects the server lane: selected, it would have the copy import mteb (15 s)."""
    pytester.makeconftest(CONFTEST.read_text())
    pytester.mkdir("unit")
    (pytester.path / "unit" / "test_unit.py").write_text(unit)
    pytester.mkdir("server")
    (pytester.path / "server" / "test_slow.py").write_text("def test_boots_a_server():\n    pass\n")


def test_not_server_selects_exactly_the_unit_folder(pytester):
    lanes(pytester, "def test_quick():\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", "-m", "not server")
    assert result.ret == 0
    # server/test_slow.py asks for no server fixture: it is deselected for its folder alone.
    result.stdout.fnmatch_lines(["unit/test_unit.py::test_quick", "1/2 tests collected (1 deselected)*"])
    assert "test_boots_a_server" not in result.stdout.str()


def test_a_unit_test_that_asks_for_a_server_fixture_is_a_collection_error(pytester):
    lanes(pytester, "def test_quick():\n    pass\n\n\ndef test_needs_a_server(tmp_path, embed_client):\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", "-m", "not server")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting unit/test_unit.py*",
                                 "unit/test_unit.py::test_needs_a_server* is in tests/unit/ but asks for the server "
                                 "fixtures embed_client, embed_server: move it to tests/server/"])


def test_a_unit_test_marked_server_is_a_collection_error(pytester):
    lanes(pytester, "import pytest\n\n\n@pytest.mark.server\ndef test_slow_after_all():\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", "-m", "not server")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["unit/test_unit.py::test_slow_after_all is in tests/unit/ but marked server: "
                                 "move it to tests/server/"])


def test_no_two_test_files_share_a_name_across_the_lanes():
    # Without __init__.py files pytest imports each test file by its base name: a second file of the same name in
    # the other lane stops the whole run at collection ("import file mismatch"), as tests/*/test_fleets.py once did.
    tests = Path(__file__).parents[1]
    names = [path.name for path in tests.glob("*/test_*.py")]
    assert sorted(name for name in set(names) if names.count(name) > 1) == []
