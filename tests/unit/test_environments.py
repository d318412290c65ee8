"""Environments built from requirement lines, offline, from STAND-IN wheels written in the test: the overlay on
this python's packages, the cache, the lock, and what a failed install says (no network, no server)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pytest_embedeval.upgrade import environments
from pytest_embedeval.upgrade.environments import COMPLETE, EnvironmentBuildError, EnvSpec, environment
from support.standin_packages import build_module_wheel

NAME = "embedeval-standin-thing"
OFFLINE = ("--no-index",)


@pytest.fixture(scope="module", autouse=True)
def quick_pip():
    # pip's check of every installed package's pins takes 5-9 s over this project's 11 GB base, per install.
    # pip reads a --no-* option's variable the other way round: "0" is --no-warn-conflicts.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIP_NO_WARN_CONFLICTS", "0")
        yield


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    for version in ("1.0", "1.1"):
        build_module_wheel(folder, NAME, version, f"VERSION = {version!r}\n")
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("envs")


@pytest.fixture(scope="module")
def overlay(wheels, cache) -> environments.Environment:
    """The version 1.1 of the stand-in, over this python's packages: built once for the module."""
    return environment(spec(wheels, f"{NAME}==1.1"), root=cache, progress=lambda text: None)


def spec(wheels: Path, *requirements: str, isolated: bool = False) -> EnvSpec:
    return EnvSpec(requirements, ("--find-links", str(wheels), *OFFLINE), isolated)


def run(python: Path, code: str) -> str:
    # In the environment's folder: a python started in the checkout would import the project from there.
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True,
                          cwd=python.parent).stdout.strip()


def test_an_overlay_installs_the_pin_and_sees_the_base_packages(overlay):
    assert overlay.built and (overlay.directory / COMPLETE).is_file()
    assert run(overlay.python, "import embedeval_standin_thing as m; print(m.VERSION)") == "1.1"
    # The base's packages, its editable install of this project included (through the base's own .pth file).
    assert run(overlay.python, "import pytest_embedeval; print(pytest_embedeval.__file__)") == \
        run(Path(sys.executable), "import pytest_embedeval; print(pytest_embedeval.__file__)")
    own = overlay.directory / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    assert sorted(p.name for p in own.iterdir() if p.name != "__pycache__") == [
        "_embedeval_overlay.pth", "embedeval_standin_thing-1.1.dist-info", "embedeval_standin_thing.py"]


def test_an_environment_is_built_once_and_reused(wheels, cache, overlay, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a} for a cached environment"))
    again = environment(spec(wheels, f"{NAME}==1.1"), root=cache, progress=lambda text: None)
    assert (again.directory, again.built) == (overlay.directory, False)


def test_the_cache_key_changes_with_what_decides_the_contents(wheels):
    keys = {spec(wheels, f"{NAME}==1.0").key(), spec(wheels, f"{NAME}==1.1").key(),
            spec(wheels, f"{NAME}==1.0", isolated=True).key(),
            EnvSpec((f"{NAME}==1.0",), ("--find-links", str(wheels))).key()}
    assert len(keys) == 4
    assert spec(wheels, f"{NAME}==1.0").key() == spec(wheels, f"{NAME}==1.0").key()


def test_the_cache_folder_comes_from_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(environments.CACHE_VARIABLE, str(tmp_path / "envs"))
    assert environments.cache_root() == tmp_path / "envs"
    monkeypatch.delenv(environments.CACHE_VARIABLE)
    assert environments.cache_root() == Path.home() / ".cache" / "embedeval" / "envs"


def test_a_failed_install_names_the_requirement_and_caches_nothing(wheels, tmp_path):
    wanted = spec(wheels, f"{NAME}==9.9")
    with pytest.raises(EnvironmentBuildError) as raised:
        environment(wanted, root=tmp_path, progress=lambda text: None)
    message = str(raised.value)
    assert message.startswith(f"pip could not install '{NAME}==9.9'") and "nothing was cached" in message
    assert "from versions: 1.0, 1.1" in message  # pip's own lines, at the end
    assert not (tmp_path / wanted.key()).exists()


def test_a_half_built_environment_is_built_again_once_however_many_jobs_ask(wheels, tmp_path):
    wanted = spec(wheels, f"{NAME}==1.0")
    half = tmp_path / wanted.key()
    (half / "bin").mkdir(parents=True)
    (half / "leftover").write_text("a job killed while building")
    said, results = [], []
    jobs = [threading.Thread(target=lambda: results.append(environment(wanted, root=tmp_path, progress=said.append)))
            for _ in range(2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert sorted(r.built for r in results) == [False, True]  # one built it, the other waited and reused it
    assert not (half / "leftover").exists()
    assert f"removing a half-built environment: {half}" in said
    assert run(results[0].python, "import embedeval_standin_thing as m; print(m.VERSION)") == "1.0"


def test_an_overlay_of_an_overlay_shadows_the_base_version(wheels, overlay, tmp_path):
    # The base here has 1.1 (an overlay itself); pip installs 1.0 into the new overlay, leaving the base alone.
    code = ("from pytest_embedeval.upgrade.environments import EnvSpec, environment; "
            f"print(environment(EnvSpec(('{NAME}==1.0',), ('--no-index', '--find-links', {str(wheels)!r})), "
            f"root={str(tmp_path)!r}, progress=lambda text: None).python)")
    inner = Path(run(overlay.python, code))
    assert run(inner, "import embedeval_standin_thing as m; print(m.VERSION)") == "1.0"
    assert run(overlay.python, "import embedeval_standin_thing as m; print(m.VERSION)") == "1.1"
    assert run(inner, "import pytest_embedeval; print('seen')") == "seen"  # through both overlays


def test_an_isolated_environment_sees_none_of_the_base(wheels, tmp_path):
    built = environment(spec(wheels, f"{NAME}==1.1", isolated=True), root=tmp_path, progress=lambda text: None)
    assert run(built.python, "import embedeval_standin_thing as m; print(m.VERSION)") == "1.1"
    found = run(built.python, "import importlib.util; print(importlib.util.find_spec('pytest_embedeval'))")
    assert found == "None"


def test_requirement_lines_drop_comments_and_join_continuations():
    text = "# a lock\ntorch==2.14.1 \\\n    --hash=sha256:abc\n\nsglang==0.5.23  # via us\n    # via sglang\n"
    assert environments.requirement_lines(text) == ("torch==2.14.1 --hash=sha256:abc", "sglang==0.5.23")


def test_the_env_command_prints_the_python(wheels, cache, overlay, monkeypatch, capsys):
    import argparse

    monkeypatch.setenv(environments.CACHE_VARIABLE, str(cache))
    parser = argparse.ArgumentParser(prog="embedeval")
    environments.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["env", f"{NAME}==1.1", "--no-index", "--find-links", str(wheels)])
    assert args.handler(args) == 0
    assert capsys.readouterr().out == f"{overlay.python}\n"  # the cached one: its python is all it prints
    args = parser.parse_args(["env", "-r", str(cache / "missing.txt")])
    assert args.handler(args) == 2
    assert "cannot read the requirements file" in capsys.readouterr().err


def test_an_overlay_on_a_base_that_changed_is_another_environment(wheels, tmp_path, monkeypatch):
    base = tmp_path / "base-site-packages"
    (base / "torch-2.13.0.dist-info").mkdir(parents=True)
    monkeypatch.setattr(environments.site, "getsitepackages", lambda: [str(base)])
    before = spec(wheels, f"{NAME}==1.1").key()
    (base / "torch-2.13.0.dist-info").rename(base / "torch-2.14.1.dist-info")
    assert spec(wheels, f"{NAME}==1.1").key() != before
    assert spec(wheels, f"{NAME}==1.1", isolated=True).key() == spec(wheels, f"{NAME}==1.1", isolated=True).key()
