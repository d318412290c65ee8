"""Environments built from requirement lines, once, and cached: the python that runs one version of a stack.

    embedeval env sglang==0.5.22 [-r LOCK] [--isolated] [--index-url URL] [--find-links DIR] [--no-index]

prints the python of the environment (built on first use, reused after). An environment is a virtualenv under
``$EMBEDEVAL_ENV_CACHE`` (default ``~/.cache/embedeval/envs``), in a folder named by a hash of what decides its
contents: the python version, the base it overlays, the requirement lines and the index options. It is built
under a lock file (two jobs never build the same one at once), marked ``.complete`` last, and only then used; a
folder without the mark is a half-built one, removed and built again. A failed install leaves nothing cached.

**The overlay** (the default) saves the 11 GB of a full SGLang stack per environment: the virtualenv's
site-packages holds a ``.pth`` line ``import site; site.addsitedir(BASE)`` for the site-packages of the python
running this command (the base). Its own site-packages comes first on ``sys.path`` and shadows the base; the
base's ``.pth`` files run too (an editable install of the project stays importable), and pip, which sees the
base's packages, installs only what the requirements pin differently: ``sglang==0.5.22`` over a base with 0.5.23
costs sglang's own wheel, not torch. What it leaks: every package of the base that the requirements do not name
stays importable, at the base's version (pip's warnings about base packages whose own pins the new versions
break are shown). For a full lock file, where that matters, ``--isolated`` builds a plain virtualenv with nothing
but the lock (and the full size). Either way the environment has no pip of its own: this python's pip installs
into it (``pip --python``).

Only the standard library is imported here, so that a workflow can use it before anything else is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import site
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

CACHE_VARIABLE = "EMBEDEVAL_ENV_CACHE"
COMPLETE = ".complete"  # written last: an environment without it was never finished
OVERLAY_PTH = "_embedeval_overlay.pth"


class EnvironmentBuildError(Exception):
    """An environment could not be built; nothing was cached."""


@dataclass(frozen=True)
class EnvSpec:
    """What an environment holds: requirement lines (a lock file's or pins), the index options pip gets, and
    whether it overlays the running python's packages."""

    requirements: tuple[str, ...]
    index_options: tuple[str, ...] = ()
    isolated: bool = False

    def base(self) -> tuple[str, ...]:
        """The site-packages the overlay adds: the running python's (none for an isolated environment)."""
        return () if self.isolated else tuple(site.getsitepackages())

    def key(self) -> str:
        # The base's installed distributions (their folder names carry the versions) are part of the identity:
        # pip skipped what the base had, so an overlay on a base that changed since is another environment.
        installed = [sorted(name for name in os.listdir(path) if name.endswith(".dist-info"))
                     for path in self.base() if os.path.isdir(path)]
        identity = {"python": sys.version, "interpreter": sys.base_prefix, "base": self.base(),
                    "base_packages": installed, "requirements": self.requirements, "index": self.index_options}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]

    def describe(self) -> str:
        shown = ", ".join(self.requirements[:3]) + (f" and {len(self.requirements) - 3} more"
                                                     if len(self.requirements) > 3 else "")
        return f"{shown or 'no requirements'} ({'isolated' if self.isolated else 'overlay on ' + sys.prefix})"


@dataclass(frozen=True)
class Environment:
    directory: Path
    built: bool  # False when it came from the cache

    @property
    def python(self) -> Path:
        return self.directory / "bin" / "python"


def requirement_lines(text: str) -> tuple[str, ...]:
    """The lines pip reads from a requirements file, without blank lines, comments and line continuations."""
    joined = re.sub(r"\\\n", " ", text)
    lines = (re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines())
    return tuple(" ".join(line.split()) for line in lines if line)


def cache_root() -> Path:
    configured = os.environ.get(CACHE_VARIABLE)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "embedeval" / "envs"


def environment(spec: EnvSpec, *, root: Path | None = None, progress=None) -> Environment:
    """The environment of ``spec``: from the cache when it was built before, built (under a lock) when not.

    Raises EnvironmentBuildError when pip fails: the message names the requirement and ends with pip's output.
    """
    say = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    root = Path(root) if root else cache_root()
    directory = root / spec.key()
    if (directory / COMPLETE).is_file():
        return Environment(directory, built=False)
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / f"{directory.name}.lock", lambda: say(f"waiting for another job building {directory}")):
        if (directory / COMPLETE).is_file():  # the job we waited for built it
            return Environment(directory, built=False)
        if directory.exists():
            say(f"removing a half-built environment: {directory}")
            shutil.rmtree(directory)
        say(f"building an environment for {spec.describe()} in {directory}")
        try:
            _build(spec, directory, say)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        (directory / COMPLETE).write_text(json.dumps({"requirements": spec.requirements,
                                                      "index_options": spec.index_options,
                                                      "base": spec.base()}, indent=2) + "\n")
    return Environment(directory, built=True)


@contextlib.contextmanager
def _exclusive(path: Path, on_wait):
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(spec: EnvSpec, directory: Path, say) -> None:
    venv.EnvBuilder(with_pip=False, symlinks=True).create(directory)
    python = directory / "bin" / "python"
    if spec.base():
        own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
        Path(own, OVERLAY_PTH).write_text("".join(f"import site; site.addsitedir({path!r})\n"
                                                  for path in spec.base()))
    if not spec.requirements:
        return
    requirements = directory / "embedeval-requirements.txt"
    requirements.write_text("\n".join(spec.requirements) + "\n")
    # This python's pip, run by the environment's python (--python): an environment needs no pip of its own.
    done = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--disable-pip-version-check",
                           *spec.index_options, "-r", requirements], check=False, capture_output=True, text=True)
    if done.returncode:
        raise EnvironmentBuildError(install_failure(spec, done.stdout + done.stderr))
    # In an overlay, a base package whose own pins the new versions break: worth a line, as pip says it.
    for line in done.stderr.splitlines():
        if "but you have" in line or "which is incompatible" in line:
            say(f"pip: {line.strip()}")


# What pip prints about the requirement it could not install, most specific first.
_FAILED_REQUIREMENT = (
    r"No matching distribution found for (\S+)",
    r"Could not find a version that satisfies the requirement (\S+)",
    r"Cannot install (.+?) because these package versions have conflicting dependencies",
    r"Invalid requirement: '?([^'\n]+)'?",
    r"Failed (?:to build|building wheel for) (\S+)",
    r"Could not install packages due to an OSError: (.+)",
)


def install_failure(spec: EnvSpec, output: str) -> str:
    """The sentence of a failed install: the requirement pip could not install, then pip's last lines."""
    failed = next((m.group(1) for pattern in _FAILED_REQUIREMENT if (m := re.search(pattern, output))), None)
    what = repr(failed) if failed else "one of " + ", ".join(spec.requirements)
    tail = "\n".join(output.strip().splitlines()[-12:])
    options = " ".join(spec.index_options) or "pip's configured index"
    return (f"pip could not install {what} (requirements: {spec.describe()}; index: {options}); nothing was "
            f"cached. Fix the requirement or the index options (--index-url, --find-links, --no-index). "
            f"pip's last lines:\n{tail}")


# -- the index options pip gets, and the `embedeval env` command ------------------------------------------------

def add_index_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("package index (passed to pip)")
    group.add_argument("--index-url", metavar="URL")
    group.add_argument("--extra-index-url", metavar="URL", action="append", default=[])
    group.add_argument("--find-links", metavar="PATH_OR_URL", action="append", default=[])
    group.add_argument("--no-index", action="store_true")
    parser.add_argument("--isolated", action="store_true", help="a plain virtualenv with only the requirements, "
                        "instead of an overlay on this python's packages (for full lock files)")


def index_options(args: argparse.Namespace) -> tuple[str, ...]:
    """pip's index options from the parsed arguments; a local --find-links folder made absolute, so that the
    cache key and pip see the same folder from any directory."""
    options = ["--index-url", args.index_url] if args.index_url else []
    for url in args.extra_index_url:
        options += ["--extra-index-url", url]
    for link in args.find_links:
        options += ["--find-links", str(Path(link).resolve()) if Path(link).exists() else link]
    return tuple(options + (["--no-index"] if args.no_index else []))


def _env_command(args: argparse.Namespace) -> int:
    lines = tuple(args.pins)
    for path in args.requirement:
        try:
            lines += requirement_lines(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            print(f"embedeval env: cannot read the requirements file {path}: {exc.strerror}", file=sys.stderr)
            return 2
    if not lines:
        print("embedeval env: give requirements (PIN ... or -r FILE)", file=sys.stderr)
        return 2
    try:
        built = environment(EnvSpec(lines, index_options(args), args.isolated))
    except EnvironmentBuildError as exc:
        print(f"embedeval env: {exc}", file=sys.stderr)
        return 1
    print(built.python)
    return 0


def add_parser(commands) -> argparse.ArgumentParser:
    """``embedeval env``: print the python of the (cached) environment of some requirements."""
    parser = commands.add_parser("env", help="build (or reuse) the environment of some requirements and print its "
                                 "python", description="\n\n".join(__doc__.split("\n\n")[:2]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pins", nargs="*", metavar="PIN", help="requirements such as sglang==0.5.22")
    parser.add_argument("-r", "--requirement", action="append", default=[], metavar="FILE",
                        help="a requirements or lock file (repeatable)")
    add_index_options(parser)
    parser.set_defaults(handler=_env_command)
    return parser
