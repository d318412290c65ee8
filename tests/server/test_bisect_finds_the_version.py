"""`embedeval bisect` on real SGLang servers: the first version of a STAND-IN package that slows the server down is
found in the fewest steps, each step a paired run of the version's environment against the good one's.

The stand-in `embedeval-standin-delay` (tests/support/standin_packages.py) is an SGLang plugin, loaded by SGLang's
own plugin framework in the server of any environment it is installed in: versions 1.0-1.2 change nothing, 1.3
and 1.4 answer every /v1/embeddings request 60 ms late (a p50 of 20-80 ms here, so the pair's ratio is 1.7x or
more, far past the suite's 25% tolerance and out of reach of a shared machine's noise).
"""

from __future__ import annotations

import pytest

from pytest_embedeval.upgrade import bisect, environments
from support.standin_packages import DELAY_PACKAGE, build_delay_wheels

DELAYS_MS = {"1.0": 0, "1.1": 0, "1.2": 0, "1.3": 60, "1.4": 60}

SUITE = """
import pytest

@pytest.mark.embed_latency(requests=40, warmup=5, paired_tolerance="25%")
def test_latency():
    pass
"""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wheels")
    build_delay_wheels(folder, DELAYS_MS)
    return folder


@pytest.fixture
def workspace(tmp_path_factory, tmp_path, monkeypatch):
    """A user's project folder with the suite, and an environment cache shared by this module's tests."""
    monkeypatch.setenv(environments.CACHE_VARIABLE, str(tmp_path_factory.getbasetemp() / "bisect-envs"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test_paired.py").write_text(SUITE)
    return tmp_path


PYTEST_ARGS = ["--", "-p", "no:cacheprovider", "--embed-model=minilm", "test_paired.py"]


def test_bisect_finds_the_first_slow_version_in_two_steps(wheels, workspace, capsys):
    code = bisect.main([DELAY_PACKAGE, "--good", "1.0", "--bad", "1.4", "--no-index", "--find-links", str(wheels),
                        "--reports", str(workspace / "steps"), *PYTEST_ARGS])
    out = capsys.readouterr().out
    assert code == 0, out
    # The versions come from the index (pip index versions): three between 1.0 and 1.4, so ceil(log2(4)) = 2 steps.
    assert "3 between, at most 2 steps" in out
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert steps[0].startswith(f"step 1 of at most 2: {DELAY_PACKAGE} 1.2 ... pass: paired_latency_p50_ratio "), out
    assert steps[1].startswith(f"step 2 of at most 2: {DELAY_PACKAGE} 1.3 ... regressed: paired_latency_p50_ratio "), out
    assert len(steps) == 2
    assert out.splitlines()[-1] == f"first bad version: {DELAY_PACKAGE} 1.3 (last good: {DELAY_PACKAGE} 1.2), 2 steps"
    assert sorted(p.name for p in (workspace / "steps").glob("*.json")) == ["step-1.2.json", "step-1.3.json"]


def test_bisect_step_tells_git_the_checked_out_lock_is_bad(wheels, workspace, capsys):
    index = ("--find-links", str(wheels.resolve()), "--no-index")  # as the command passes them: the bisection's env
    good = environments.environment(environments.EnvSpec((f"{DELAY_PACKAGE}==1.0",), index))
    (workspace / "requirements-lock.txt").write_text(f"{DELAY_PACKAGE}==1.4\n")
    code = bisect.main(["step", "--good-python", str(good.python), *index, *PYTEST_ARGS])
    out = capsys.readouterr().out
    assert code == 1, out  # git bisect run: bad
    assert out.startswith("requirements-lock.txt: bad: regressed: paired_latency_p50_ratio "), out
