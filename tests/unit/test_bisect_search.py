"""The bisection's search and its reading of a step: every place the first bad version can be, the number of
steps, versions that cannot be told, and what a step's pytest run and report say (no environment, no server)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pytest_embedeval.judge.verdicts import Outcome as VerdictOutcome
from pytest_embedeval.judge.verdicts import Verdict
from pytest_embedeval.upgrade import bisect
from pytest_embedeval.upgrade.bisect import BrokenStep, Outcome, StepResult, most_steps, search

GOOD, BAD, UNSURE = (StepResult(o, o.value) for o in Outcome)


def versions_with(unknown: int) -> list[str]:
    return [f"1.{i}" for i in range(unknown + 2)]  # the good one, the unknown ones, the bad one


class Recorded:
    """A stand-in step: bad from ``first_bad`` on, ``unsure`` versions cannot be told; remembers what ran."""

    def __init__(self, versions, first_bad, unsure=()):
        self.versions, self.first_bad, self.unsure, self.ran = versions, first_bad, set(unsure), []

    def __call__(self, version):
        self.ran.append(version)
        if version in self.unsure:
            return UNSURE
        return BAD if self.versions.index(version) >= self.versions.index(self.first_bad) else GOOD


@pytest.mark.parametrize("unknown", range(1, 10))
def test_every_place_of_the_first_bad_version_is_found_within_the_bound(unknown):
    versions = versions_with(unknown)
    steps_taken = []
    for first_bad in versions[1:]:
        step = Recorded(versions, first_bad)
        finding = search(versions, step)
        assert (finding.first_bad, finding.last_good) == (first_bad, versions[versions.index(first_bad) - 1])
        assert finding.untested == ()
        assert len(step.ran) == len(set(step.ran)) == len(finding.steps)  # no version runs twice
        assert versions[0] not in step.ran and versions[-1] not in step.ran  # the given ends are trusted
        steps_taken.append(len(step.ran))
    # ceil(log2(n + 1)): the first bad one may be any of the n unknown ones or the given bad one.
    assert max(steps_taken) == most_steps(unknown) == math.ceil(math.log2(unknown + 1))
    assert min(steps_taken) >= math.floor(math.log2(unknown + 1))


def test_the_bound_is_told_before_each_step_and_holds():
    versions = versions_with(7)
    told = []
    finding = search(versions, Recorded(versions, "1.5"), lambda version, number, bound: told.append((number, bound)))
    assert [number for number, _ in told] == [1, 2, 3] and {bound for _, bound in told} == {3}
    assert len(finding.steps) == 3


def test_no_version_between_takes_no_step():
    finding = search(["1.0", "1.1"], lambda version: pytest.fail("nothing should run"))
    assert (finding.last_good, finding.first_bad, finding.steps) == ("1.0", "1.1", ())
    assert finding.sentence() == "first bad version: 1.1 (last good: 1.0), 0 steps"


def test_a_version_that_cannot_be_told_is_skipped_for_a_neighbour():
    versions = versions_with(5)  # 1.1 .. 1.5 unknown; the middle one, 1.3, cannot be told
    step = Recorded(versions, "1.4", unsure={"1.3"})
    finding = search(versions, step)
    assert step.ran == ["1.3", "1.4", "1.2"]  # its neighbour next, then the middle of what is left
    assert (finding.last_good, finding.first_bad, finding.untested) == ("1.2", "1.4", ("1.3",))


def test_a_skip_next_to_the_first_bad_version_leaves_both_named():
    versions = versions_with(3)
    step = Recorded(versions, "1.3", unsure={"1.2"})
    finding = search(versions, step)
    assert (finding.last_good, finding.first_bad, finding.untested) == ("1.1", "1.3", ("1.2",))
    assert finding.sentence() == ("first bad version: one of 1.2, 1.3 (1.2 could not be told; last good: 1.1), "
                                  f"{len(step.ran)} steps")


def test_when_nothing_can_be_told_every_version_between_is_named():
    versions = versions_with(4)
    finding = search(versions, lambda version: UNSURE)
    assert (finding.last_good, finding.first_bad, finding.untested) == ("1.0", "1.5", ("1.1", "1.2", "1.3", "1.4"))
    assert len(finding.steps) == 4


@pytest.mark.parametrize("unknown", range(1, 10))
def test_with_any_one_version_skipped_the_answer_is_still_right(unknown):
    versions = versions_with(unknown)
    for first_bad in versions[1:]:
        for unsure in versions[1:-1]:
            finding = search(versions, Recorded(versions, first_bad, {unsure}))
            assert first_bad in (*finding.untested, finding.first_bad)
            assert finding.untested in ((), (unsure,))
            assert versions.index(finding.last_good) < versions.index(first_bad)
            assert len(finding.steps) <= most_steps(unknown) + 1  # one step more for the skip, at most


def test_a_bisection_needs_two_ends():
    with pytest.raises(ValueError, match="a good and a bad version"):
        search(["1.0"], lambda version: GOOD)


# -- what a step's run says ----------------------------------------------------------------------------------

def verdict(metric, outcome, measured=1.0, *, failing=None, unit="ratio"):
    failing = outcome in (VerdictOutcome.REGRESSED, VerdictOutcome.NOT_A_NUMBER) if failing is None else failing
    return Verdict("minilm", metric, unit, measured, outcome, baseline=1.0, tolerance="5%", failing=failing)


def report(tmp_path: Path, *verdicts) -> Path:
    path = tmp_path / "step.json"
    model = {"model": "minilm", "profile": {"hardware": "cpu-2c", "engine": "sglang", "dtype": "float32",
                                            "deployment": "single", "paired": True},
             "verdicts": [v.to_dict() for v in verdicts]}
    path.write_text(json.dumps({"format": "pytest-embedeval/run/1", "models": [model]}))
    return path


def log(tmp_path: Path, text="collected 1 item\n1 passed") -> Path:
    path = tmp_path / "step.log"
    path.write_text(text)
    return path


def test_a_regressed_paired_ratio_makes_the_version_bad(tmp_path):
    result = bisect.judge_step(1, report(tmp_path, verdict("paired_latency_p50_ratio", VerdictOutcome.REGRESSED,
                                                           1.31)), log(tmp_path))
    assert result == StepResult(Outcome.BAD, "regressed: paired_latency_p50_ratio 1.310x")


def test_passing_paired_figures_make_it_good_whatever_the_stored_baselines_say(tmp_path):
    # A stored baseline was measured on another day: it would flag every step alike, so it does not decide.
    result = bisect.judge_step(1, report(tmp_path, verdict("latency_p50_ms", VerdictOutcome.REGRESSED, 40, unit="ms"),
                                         verdict("paired_latency_p50_ratio", VerdictOutcome.PASSED, 1.01)),
                               log(tmp_path))
    assert result == StepResult(Outcome.GOOD, "pass: paired_latency_p50_ratio 1.010x")


def test_a_figure_that_is_not_a_number_makes_it_bad(tmp_path):
    result = bisect.judge_step(1, report(tmp_path, verdict("latency_p50_ms", VerdictOutcome.NOT_A_NUMBER,
                                                           float("nan"), unit="ms"),
                                         verdict("paired_latency_p50_ratio", VerdictOutcome.PASSED)), log(tmp_path))
    assert result.outcome is Outcome.BAD and result.summary.startswith("not a number: latency_p50_ms")


def test_an_inconclusive_paired_figure_with_nothing_failing_cannot_tell(tmp_path):
    result = bisect.judge_step(0, report(tmp_path, verdict("paired_latency_p50_ratio", VerdictOutcome.INCONCLUSIVE,
                                                           1.08),
                                         verdict("paired_min_cosine", VerdictOutcome.PASSED, 1.0, unit="cosine")),
                               log(tmp_path))
    assert result == StepResult(Outcome.CANNOT_TELL, "cannot tell: paired_latency_p50_ratio 1.080x inconclusive")


def test_failed_tests_without_any_paired_figure_cannot_tell(tmp_path):
    result = bisect.judge_step(1, report(tmp_path), log(tmp_path, "E   the server did not become ready"))
    assert result.outcome is Outcome.CANNOT_TELL and "no paired figure" in result.summary


@pytest.mark.parametrize("code, meaning", [(2, "interrupted"), (3, "internal error"), (4, "usage error"),
                                           (5, "no tests collected")])
def test_pytest_stopping_short_is_a_broken_step_with_its_output(tmp_path, code, meaning):
    with pytest.raises(BrokenStep, match=f"pytest exited {code} \\({meaning}\\)") as raised:
        bisect.judge_step(code, report(tmp_path), log(tmp_path, "ERROR: unrecognized arguments: --embed-modle"))
    assert "unrecognized arguments: --embed-modle" in str(raised.value)


def test_no_report_is_a_broken_step(tmp_path):
    with pytest.raises(BrokenStep, match="wrote no run report"):
        bisect.judge_step(0, tmp_path / "missing.json", log(tmp_path))


def test_a_suite_that_pairs_nothing_is_a_broken_step(tmp_path):
    with pytest.raises(BrokenStep, match="measured no paired figure"):
        bisect.judge_step(0, report(tmp_path, verdict("latency_p50_ms", VerdictOutcome.PASSED, 20, unit="ms")),
                          log(tmp_path))


# -- what is bisected ------------------------------------------------------------------------------------------

def test_versions_between_are_ordered_as_versions_not_as_text():
    available = ["0.5.10", "0.5.9", "0.5.23", "0.5.8", "0.6.0rc1", "0.5.22"]
    assert bisect.versions_between("0.5.9", "0.5.22", available) == ["0.5.9", "0.5.10", "0.5.22"]


def test_the_good_version_must_come_first():
    with pytest.raises(ValueError, match="--good 1.4 must be older than --bad 1.0"):
        bisect.versions_between("1.4", "1.0", ["1.0", "1.4"])


GOOD_LOCK = """# uv pip compile
torch==2.13.0
    # via sglang
sglang==0.5.22
numpy==2.0.0
oldpkg==1.0
"""
BAD_LOCK = """torch==2.14.1
sglang==0.5.23
numpy==2.0.0
newpkg==3.1
"""


def test_the_pins_two_locks_differ_in_come_in_name_order():
    good, options = bisect.read_pins(GOOD_LOCK, "good.txt")
    bad, _ = bisect.read_pins(BAD_LOCK, "bad.txt")
    changes = bisect.pin_changes(good, bad)
    assert [str(c) for c in changes] == ["newpkg added (newpkg==3.1)", "oldpkg removed (was oldpkg==1.0)",
                                         "sglang 0.5.22 -> 0.5.23", "torch 2.13.0 -> 2.14.1"]
    assert bisect.lock_with_changes(good, options, changes, 0) == ("numpy==2.0.0", "oldpkg==1.0", "sglang==0.5.22",
                                                                   "torch==2.13.0")
    assert bisect.lock_with_changes(good, options, changes, 3) == ("newpkg==3.1", "numpy==2.0.0", "sglang==0.5.23",
                                                                   "torch==2.13.0")
    assert set(bisect.lock_with_changes(good, options, changes, 4)) == set(bad.values())


def test_a_line_that_is_not_a_requirement_names_the_file():
    with pytest.raises(ValueError, match="good.txt: 'torch===' is not a requirement"):
        bisect.read_pins("torch===\n", "good.txt")


# -- `embedeval bisect step`, as git bisect run calls it -----------------------------------------------------

@pytest.fixture
def one_step(tmp_path, monkeypatch):
    """`bisect step` with the environment and the pytest run replaced by stand-ins: returns (exit code, output)."""
    from pytest_embedeval.upgrade import environments

    lock = tmp_path / "requirements-lock.txt"
    lock.write_text("sglang==0.5.23\n")
    monkeypatch.chdir(tmp_path)
    built = environments.Environment(tmp_path / "env", built=False)

    def run(outcome, *, build=None, broken=None):
        def environment(spec, **_):
            if build:
                raise environments.EnvironmentBuildError(build)
            assert spec.requirements == ("sglang==0.5.23",)
            return built

        def run_step(candidate, good, pytest_args, folder, name):
            assert (candidate, str(good), pytest_args) == (built.python, "/good/bin/python", ["-x", "suite"])
            if broken:
                raise BrokenStep(broken)
            return StepResult(outcome, f"{outcome.value}: stand-in")

        monkeypatch.setattr(environments, "environment", environment)
        monkeypatch.setattr(bisect, "run_step", run_step)
        return bisect.main(["step", "--good-python", "/good/bin/python", "--", "-x", "suite"])

    return run


def test_step_exit_codes_follow_git_bisect_run(one_step, capsys):
    assert one_step(Outcome.GOOD) == 0
    assert one_step(Outcome.BAD) == 1
    assert one_step(Outcome.CANNOT_TELL) == 125  # git's skip
    assert "requirements-lock.txt: bad: bad: stand-in" in capsys.readouterr().out


def test_a_step_whose_environment_cannot_be_built_is_skipped(one_step, capsys):
    assert one_step(Outcome.GOOD, build="pip could not install 'sglang==0.5.23'") == 125
    assert "cannot tell (skip): pip could not install 'sglang==0.5.23'" in capsys.readouterr().err


def test_a_broken_step_stops_git_bisect(one_step, capsys):
    assert one_step(Outcome.GOOD, broken="pytest exited 4 (usage error)") == 128  # above 127: git stops
    assert "stopped: pytest exited 4" in capsys.readouterr().err


def test_a_step_without_a_lock_stops_and_says_which(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert bisect.main(["step", "--good-python", "/good/bin/python", "--", "suite"]) == 128
    assert "cannot read requirements-lock.txt" in capsys.readouterr().err


def test_the_command_takes_pytest_arguments_after_the_dashes():
    import argparse

    commands = argparse.ArgumentParser(prog="embedeval").add_subparsers(dest="command")
    bisect.add_parser(commands)
    parsed = commands._name_parser_map["bisect"].parse_args(
        ["sglang", "--good", "0.5.22", "--bad", "0.5.23", "--", "-x", "--embed-model=minilm", "examples/"])
    assert parsed.argv == ["sglang", "--good", "0.5.22", "--bad", "0.5.23", "--", "-x", "--embed-model=minilm",
                           "examples/"]
    args = bisect.parser().parse_args(parsed.argv[:parsed.argv.index("--")])
    assert (args.package, args.good, args.bad) == ("sglang", "0.5.22", "0.5.23")


# -- the whole command, with stand-in environments and steps -------------------------------------------------

@pytest.fixture
def stand_in_steps(tmp_path, monkeypatch):
    """The bisect command with environments and pytest runs replaced by stand-ins: a step is bad when its
    requirements hold one of ``bad_lines``. Returns (run the command, the requirements each environment got)."""
    from pytest_embedeval.upgrade import environments

    monkeypatch.chdir(tmp_path)
    built = []

    def run(argv, bad_lines, broken=None):
        def environment(spec, **_):
            built.append(spec.requirements)
            return environments.Environment(tmp_path / f"env{len(built)}", built=True)

        def run_step(candidate, good, pytest_args, folder, name):
            assert good == tmp_path / "env1" / "bin" / "python" and pytest_args == ["-x", "suite"]
            if broken:
                raise BrokenStep(broken)
            requirements = built[int(candidate.parent.parent.name[3:]) - 1]
            if bad_lines & set(requirements):
                return StepResult(Outcome.BAD, "regressed: paired_latency_p50_ratio 1.310x")
            return StepResult(Outcome.GOOD, "pass: paired_latency_p50_ratio 1.002x")

        monkeypatch.setattr(environments, "environment", environment)
        monkeypatch.setattr(bisect, "run_step", run_step)
        return bisect.main([*argv, "--reports", str(tmp_path / "steps"), "--", "-x", "suite"])

    return run, built


def test_bisecting_versions_names_each_step_and_the_answer(stand_in_steps, capsys):
    run, built = stand_in_steps
    code = run(["sglang", "--good", "0.5.20", "--bad", "0.5.23", "--versions", "0.5.23,0.5.22,0.5.21,0.5.20,0.5.9"],
               {"sglang==0.5.22", "sglang==0.5.23"})
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert built == [("sglang==0.5.20",), ("sglang==0.5.22",), ("sglang==0.5.21",)]  # the good one first
    assert out[1:] == ["step 1 of at most 2: sglang 0.5.22 ... regressed: paired_latency_p50_ratio 1.310x",
                       "step 2 of at most 2: sglang 0.5.21 ... pass: paired_latency_p50_ratio 1.002x",
                       "first bad version: sglang 0.5.22 (last good: sglang 0.5.21), 2 steps"]


def test_bisecting_two_locks_finds_the_pin_whose_change_regresses(stand_in_steps, tmp_path, capsys):
    run, built = stand_in_steps
    (tmp_path / "good.txt").write_text(GOOD_LOCK)
    (tmp_path / "bad.txt").write_text(BAD_LOCK)
    code = run(["--good-lock", "good.txt", "--bad-lock", "bad.txt"], {"sglang==0.5.23"})
    out = capsys.readouterr().out
    assert code == 0
    # Four changes in name order (newpkg, oldpkg, sglang, torch): the third is the first bad one.
    assert "change k runs the good lock with changes 1..k" in out and "3. sglang 0.5.22 -> 0.5.23" in out
    assert out.splitlines()[-1] == ("first bad change: change 3 of 4 (sglang 0.5.22 -> 0.5.23) (last good: change 2 "
                                    "of 4 (oldpkg removed (was oldpkg==1.0))), 2 steps")
    assert built[0] == ("numpy==2.0.0", "oldpkg==1.0", "sglang==0.5.22", "torch==2.13.0")


def test_a_broken_step_stops_the_bisection_with_its_reason(stand_in_steps, capsys):
    run, _ = stand_in_steps
    code = run(["sglang", "--good", "0.5.20", "--bad", "0.5.22", "--versions", "0.5.21"], set(),
               broken="pytest exited 4 (usage error) in this step")
    assert code == 2
    assert "embedeval bisect: stopped: pytest exited 4 (usage error)" in capsys.readouterr().err


def test_mixed_up_arguments_say_what_to_give(capsys):
    assert bisect.main(["sglang", "--good", "1.0"]) == 2
    assert "give PACKAGE --good V1 --bad V2, or --good-lock A.txt --bad-lock B.txt" in capsys.readouterr().err
    assert bisect.main(["--good-lock", "a.txt"]) == 2
    assert "give --good-lock and --bad-lock together" in capsys.readouterr().err
