"""Bisection: the first version of a package (or the first pin of a lock) whose paired verdict regresses.

    embedeval bisect PACKAGE --good V1 --bad V2 [--versions A,B,C] [index options] -- PYTEST_ARGS...
    embedeval bisect --good-lock A.txt --bad-lock B.txt [index options] -- PYTEST_ARGS...
    embedeval bisect step --good-python PATH [--requirements LOCK] [index options] -- PYTEST_ARGS...

Each step builds (or reuses) the environment of one version (``environments.py``) and runs the suite there,
paired: ``ENV_PYTHON -m pytest PYTEST_ARGS --embed-incumbent-python GOOD_PYTHON --embed-report STEP.json``, so
the candidate is booted by the version's python and the incumbent by the good version's, side by side. The step
is judged on the verdicts whose baseline is fixed (the paired ratios and differences, failed requests): those
compare the two servers of the same minutes, where a stored baseline of another day would flag every step alike.
A failing one makes the version bad; one that cannot tell, with none failing, skips the version (as
``git bisect skip``); all passing makes it good. A step whose pytest stops short (exit 2-5, no report) is broken,
and the bisection stops there, showing its output.

``bisect step`` is one step for ``git bisect run``: it exits 0 good, 1 bad, 125 cannot tell or the environment
could not be built (git skips the commit), and 128 for a broken step (git stops the bisection on any code above
127).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TypeVar

from . import environments
from .environments import EnvironmentBuildError, EnvSpec, requirement_lines

V = TypeVar("V")

# git bisect run's exit codes: 0 good, 1-127 but 125 bad, 125 skip, anything above 127 stops the bisection.
GIT_GOOD, GIT_BAD, GIT_SKIP, GIT_ABORT = 0, 1, 125, 128


class Outcome(Enum):
    GOOD = "good"
    BAD = "bad"
    CANNOT_TELL = "cannot tell"


@dataclass(frozen=True)
class StepResult:
    outcome: Outcome
    summary: str  # "regressed: paired_latency_p50_ratio 1.310x"


class BrokenStep(Exception):
    """A step that ran no verdict to read: the suite or its options are wrong, not the version."""


# -- the search -------------------------------------------------------------------------------------------------

def most_steps(unknown: int) -> int:
    """Steps a bisection over ``unknown`` versions between a good and a bad one takes at most, skips aside:
    ceil(log2(unknown + 1)), one step per halving of the unknown+1 places the first bad one may be."""
    return unknown.bit_length()


@dataclass(frozen=True)
class Finding:
    last_good: object
    first_bad: object
    untested: tuple  # versions between the two that could not be told: the first bad one may be any of them
    steps: tuple  # (version, StepResult) in the order they ran

    def sentence(self, name: Callable[[object], str] = str, noun: str = "version") -> str:
        count = f"{len(self.steps)} step{'' if len(self.steps) == 1 else 's'}"
        if self.untested:
            candidates = ", ".join(name(v) for v in (*self.untested, self.first_bad))
            return (f"first bad {noun}: one of {candidates} ({', '.join(name(v) for v in self.untested)} could not "
                    f"be told; last good: {name(self.last_good)}), {count}")
        return f"first bad {noun}: {name(self.first_bad)} (last good: {name(self.last_good)}), {count}"


def search(versions: Sequence[V], step: Callable[[V], StepResult],
           before_step: Callable[[V, int, int], None] = lambda version, number, bound: None) -> Finding:
    """The first bad version of ``versions`` (oldest first: the first is good, the last bad, neither run).

    Each step runs the middle one of the versions still unknown; a version that cannot be told is set aside and
    its neighbour runs next. ``before_step(version, number, at_most)`` is told each step before it runs, with the
    bound on the steps that assumes no more versions are skipped.
    """
    if len(versions) < 2:
        raise ValueError("a bisection needs a good and a bad version")
    good, bad = 0, len(versions) - 1
    skipped: set[int] = set()
    steps = []
    while unknown := [i for i in range(good + 1, bad) if i not in skipped]:
        index = unknown[len(unknown) // 2]
        before_step(versions[index], len(steps) + 1, len(steps) + most_steps(len(unknown)))
        result = step(versions[index])
        steps.append((versions[index], result))
        if result.outcome is Outcome.GOOD:
            good = index
        elif result.outcome is Outcome.BAD:
            bad = index
        else:
            skipped.add(index)
    untested = tuple(versions[i] for i in sorted(skipped) if good < i < bad)
    return Finding(versions[good], versions[bad], untested, tuple(steps))


# -- one step: the suite, paired, in the version's environment ------------------------------------------------

def run_step(candidate: Path, good: Path, pytest_args: Sequence[str], folder: Path, name: str) -> StepResult:
    """Run the suite with ``candidate``'s python paired against ``good``'s; its output goes to NAME.log."""
    report, log = folder / f"{name}.json", folder / f"{name}.log"
    report.unlink(missing_ok=True)
    command = [str(candidate), "-m", "pytest", *pytest_args, f"--embed-incumbent-python={good}",
               f"--embed-report={report}"]
    with open(log, "wb") as output:
        code = subprocess.run(command, check=False, stdout=output, stderr=subprocess.STDOUT).returncode
    return judge_step(code, report, log)


_PYTEST_EXIT = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}


def judge_step(exit_code: int, report: Path, log: Path) -> StepResult:
    """good, bad or cannot tell, from a step's pytest exit code and run report; BrokenStep when neither says."""
    from ..judge.rules import is_fixed
    from ..judge.verdicts import Outcome as VerdictOutcome
    from ..judge.verdicts import format_value
    from ..run.record import Run

    if exit_code not in (0, 1):
        raise BrokenStep(f"pytest exited {exit_code} ({_PYTEST_EXIT.get(exit_code, 'stopped short')}) in this step: "
                         f"fix the suite or its arguments. Its last lines ({log}):\n{_tail(log)}")
    if not report.is_file():
        raise BrokenStep(f"pytest wrote no run report ({report}) in this step: pass the arguments of a suite that "
                         f"uses the plugin. Its last lines ({log}):\n{_tail(log)}")
    verdicts = Run.from_json(report).verdicts()
    deciding = [v for v in verdicts if is_fixed(v.metric) or v.outcome is VerdictOutcome.NOT_A_NUMBER]

    def shown(verdict) -> str:
        return f"{verdict.label} {format_value(verdict.measured, verdict.unit)}"

    if failing := [v for v in deciding if v.failing]:
        more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
        return StepResult(Outcome.BAD, f"{failing[0].outcome.value}: {shown(failing[0])}{more}")
    if not any(v.metric.startswith("paired") for v in deciding):
        if exit_code == 1:  # e.g. this version's server never came up: nothing paired was measured
            return StepResult(Outcome.CANNOT_TELL, f"cannot tell: tests failed and no paired figure was measured "
                                                   f"(log: {log})")
        raise BrokenStep(f"the suite measured no paired figure in this step ({report}): give it a timed marker "
                         "(embed_latency, embed_throughput) or embed_drift, which pair the two servers")
    if unsure := [v for v in deciding if v.outcome is VerdictOutcome.INCONCLUSIVE]:
        return StepResult(Outcome.CANNOT_TELL, f"cannot tell: {shown(unsure[0])} inconclusive")
    first = next(v for v in deciding if v.metric.startswith("paired"))
    return StepResult(Outcome.GOOD, f"{first.outcome.value}: {shown(first)}")


def _tail(log: Path, lines: int = 25) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").rstrip().splitlines()[-lines:])
    except OSError:
        return "(no output)"


# -- what is bisected: a package's released versions, or the pins two lock files differ in ----------------------

def released_versions(package: str, options: Sequence[str]) -> list[str]:
    """The versions the index offers of ``package`` (``pip index versions`` with the same index options)."""
    done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", package, "--disable-pip-version-check",
                           *options], check=False, capture_output=True, text=True)
    listed = next((line.split(":", 1)[1] for line in done.stdout.splitlines()
                   if line.startswith("Available versions:")), None)
    if done.returncode or listed is None:
        raise ValueError(f"could not list the versions of {package} ({' '.join(options) or 'default index'}): "
                         f"{(done.stderr or done.stdout).strip()[-500:]}; give them with --versions A,B,C")
    return [v.strip() for v in listed.split(",") if v.strip()]


def versions_between(good: str, bad: str, available: Sequence[str]) -> list[str]:
    """good, the versions after it and before bad, and bad: oldest first, by PEP 440 order."""
    from packaging.version import InvalidVersion, Version

    try:
        low, high = Version(good), Version(bad)
        ordered = sorted({Version(v) for v in available} | {low, high})
    except InvalidVersion as exc:
        raise ValueError(f"{exc}: versions are compared as PEP 440 versions") from None
    if not low < high:
        raise ValueError(f"--good {good} must be older than --bad {bad}: the bisection looks for the first bad "
                         "version after the last good one")
    return [str(v) for v in ordered if low <= v <= high]


@dataclass(frozen=True)
class PinChange:
    """One pin the bad lock changes: a new version, a package added, or one removed."""

    name: str
    good: str | None  # the good lock's line, None when the bad lock adds the package
    bad: str | None  # the bad lock's line, None when it removes the package

    def __str__(self) -> str:
        if self.good is None:
            return f"{self.name} added ({self.bad})"
        if self.bad is None:
            return f"{self.name} removed (was {self.good})"
        return f"{self.name} {_pinned(self.good)} -> {_pinned(self.bad)}"


def _pinned(line: str) -> str:
    from packaging.requirements import Requirement

    specifier = str(Requirement(line.split(";")[0].split(" --")[0]).specifier)
    return specifier[2:] if specifier.startswith("==") and "," not in specifier else specifier or line


def read_pins(text: str, source: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """(package name -> its line, option lines such as --index-url) of a requirements or lock file."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    pins, options = {}, []
    for line in requirement_lines(text):
        if line.startswith("-"):
            options.append(line)
            continue
        try:
            pins[canonicalize_name(Requirement(line.split(" --")[0]).name)] = line
        except InvalidRequirement as exc:
            raise ValueError(f"{source}: {line!r} is not a requirement ({exc})") from None
    return pins, tuple(options)


def pin_changes(good: dict[str, str], bad: dict[str, str]) -> list[PinChange]:
    """The pins that differ, in package-name order: the order the bisection takes them in."""
    return [PinChange(name, good.get(name), bad.get(name))
            for name in sorted(good.keys() | bad.keys()) if good.get(name) != bad.get(name)]


def lock_with_changes(good: dict[str, str], options: tuple[str, ...], changes: Sequence[PinChange],
                      count: int) -> tuple[str, ...]:
    """The good lock with the first ``count`` changes taken from the bad one."""
    pins = dict(good)
    for change in changes[:count]:
        if change.bad is None:
            pins.pop(change.name, None)
        else:
            pins[change.name] = change.bad
    return options + tuple(pins[name] for name in sorted(pins))


# -- the commands --------------------------------------------------------------------------------------------

def _say(text: str, end: str = "\n") -> None:
    print(text, end=end, flush=True)


def _bisect(args: argparse.Namespace, pytest_args: list[str]) -> int:
    options = environments.index_options(args)
    if args.good_lock or args.bad_lock:
        if not (args.good_lock and args.bad_lock) or args.package or args.good or args.bad:
            raise ValueError("give --good-lock and --bad-lock together, without PACKAGE, --good and --bad")
        good_pins, lock_options = read_pins(_read(args.good_lock), str(args.good_lock))
        changes = pin_changes(good_pins, read_pins(_read(args.bad_lock), str(args.bad_lock))[0])
        if not changes:
            raise ValueError(f"{args.good_lock} and {args.bad_lock} pin the same versions: nothing to bisect")
        _say(f"{len(changes)} pins differ; change k runs the good lock with changes 1..k, in package-name order: "
             + "; ".join(f"{i}. {c}" for i, c in enumerate(changes, 1)))
        versions, noun = list(range(len(changes) + 1)), "change"  # k: the good lock with the first k changes

        def requirements(k: int) -> tuple[str, ...]:
            return lock_with_changes(good_pins, lock_options, changes, k)

        def name(k: int) -> str:
            return f"change {k} of {len(changes)} ({changes[k - 1]})" if k else "the good lock"
    else:
        if not (args.package and args.good and args.bad):
            raise ValueError("give PACKAGE --good V1 --bad V2, or --good-lock A.txt --bad-lock B.txt")
        available = (args.versions.split(",") if args.versions else released_versions(args.package, options))
        versions, noun = versions_between(args.good, args.bad, available), "version"

        def requirements(version: str) -> tuple[str, ...]:
            return (f"{args.package}=={version}",)

        def name(version: str) -> str:
            return f"{args.package} {version}"

    folder = Path(args.reports or tempfile.mkdtemp(prefix="embedeval-bisect-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        good = environments.environment(EnvSpec(requirements(versions[0]), options, args.isolated)).python
    except EnvironmentBuildError as exc:
        raise ValueError(f"the good environment ({name(versions[0])}) could not be built: {exc}") from None
    _say(f"good: {name(versions[0])} ({good}); bad: {name(versions[-1])}; {len(versions) - 2} between, "
         f"at most {most_steps(len(versions) - 2)} steps; step reports and logs in {folder}")

    headline = {}

    def step(version) -> StepResult:
        # The environment first (its messages on their own lines), then the step's line while pytest runs.
        try:
            built = environments.environment(EnvSpec(requirements(version), options, args.isolated))
        except EnvironmentBuildError as exc:
            built, result = None, StepResult(Outcome.CANNOT_TELL, f"cannot tell: its environment could not be "
                                                                  f"built: {exc}")
        _say(f"{headline[version]} ... ", end="")
        if built:
            result = run_step(built.python, good, pytest_args, folder, f"step-{version}")
        _say(result.summary)
        return result

    try:
        finding = search(versions, step, lambda version, number, bound: headline.update(
            {version: f"step {number} of at most {bound}: {name(version)}"}))
    except BrokenStep as exc:
        print(f"\nembedeval bisect: stopped: {exc}", file=sys.stderr)
        return 2
    _say(finding.sentence(name, noun))
    return 0


def _step(args: argparse.Namespace, pytest_args: list[str]) -> int:
    """One step for ``git bisect run``: the checked-out lock's environment against --good-python."""
    if not args.good_python:
        print("embedeval bisect step: give --good-python, the python of the good version's environment "
              "(embedeval env -r GOOD_LOCK prints it)", file=sys.stderr)
        return GIT_ABORT
    lock = Path(args.requirements or "requirements-lock.txt")
    try:
        spec = EnvSpec(requirement_lines(lock.read_text(encoding="utf-8")), environments.index_options(args),
                       args.isolated)
    except OSError as exc:
        print(f"embedeval bisect step: cannot read {lock} ({exc.strerror}): give the lock with --requirements",
              file=sys.stderr)
        return GIT_ABORT
    try:
        built = environments.environment(spec)
    except EnvironmentBuildError as exc:
        print(f"embedeval bisect step: cannot tell (skip): {exc}", file=sys.stderr)
        return GIT_SKIP
    with tempfile.TemporaryDirectory(prefix="embedeval-bisect-step-") as scratch:
        folder = Path(args.reports) if args.reports else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            result = run_step(built.python, Path(args.good_python), pytest_args, folder, "step")
        except BrokenStep as exc:
            print(f"embedeval bisect step: stopped: {exc}", file=sys.stderr)
            return GIT_ABORT
    _say(f"{lock}: {result.outcome.value}: {result.summary}")
    return {Outcome.GOOD: GIT_GOOD, Outcome.BAD: GIT_BAD}.get(result.outcome, GIT_SKIP)


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the lock file {path}: {exc.strerror}") from None


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedeval bisect", description="\n\n".join(__doc__.split("\n\n")[:2]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Everything after -- goes to pytest, in every step.")
    parser.add_argument("package", nargs="?", metavar="PACKAGE|step",
                        help="the package whose versions are bisected, or `step` for one step of git bisect run")
    parser.add_argument("--good", metavar="VERSION", help="a version known to be good")
    parser.add_argument("--bad", metavar="VERSION", help="a later version known to be bad")
    parser.add_argument("--versions", metavar="A,B,C", help="the versions to consider, instead of the index's")
    parser.add_argument("--good-lock", type=Path, metavar="FILE", help="a lock file known to be good")
    parser.add_argument("--bad-lock", type=Path, metavar="FILE", help="a lock file known to be bad")
    parser.add_argument("--good-python", metavar="PATH", help="step: the good environment's python")
    parser.add_argument("--requirements", metavar="FILE", help="step: the lock to build the candidate from "
                        "(default: requirements-lock.txt)")
    parser.add_argument("--reports", metavar="DIR", help="keep each step's run report and log here")
    environments.add_index_options(parser)
    return parser


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    ours, pytest_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = parser().parse_args(ours)
    if args.package == "step":
        return _step(args, pytest_args)
    try:
        return _bisect(args, pytest_args)
    except ValueError as exc:
        print(f"embedeval bisect: {exc}", file=sys.stderr)
        return 2


def add_parser(commands) -> argparse.ArgumentParser:
    """``embedeval bisect``, whose arguments (its own, then -- and pytest's) are parsed by ``main``: argparse
    cannot take pytest's arguments after ``--`` once a positional (PACKAGE) came before the options."""
    # prefix_chars without "-": every word after `bisect`, options and "--" included, reaches main() untouched.
    command = commands.add_parser("bisect", help="find the first version (or lock pin) whose paired verdict "
                                  "regresses", add_help=False, prefix_chars="+")
    command.add_argument("argv", nargs=argparse.REMAINDER)
    command.set_defaults(handler=lambda args: main(args.argv))
    return command
