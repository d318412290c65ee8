"""Which SGLang a server runs: its version against the range this plugin is tested with, and the flags its
own argument parser knows, so that the plugin never passes one that version does not.

Users install the SGLang they want to test (an upgrade is the very thing they test); the plugin reads
that install through the python that will run it, once per python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TESTED = ">=0.5.20,<0.6"  # 0.5.23 runs the whole suite; 0.5.20's parser takes the plugin's command line
INSIST = "--embed-any-sglang"

# Flags the plugin adds for correctness or economy, and can do without where a version lacks them.
OPTIONAL = ("--sleep-on-idle", "--allow-auto-truncate", "--max-total-tokens")

_VERSION = "from importlib.metadata import version; print(version('sglang'))"
_FLAGS = """
import argparse, json
from sglang.srt.server_args import ServerArgs
parser = argparse.ArgumentParser()
ServerArgs.add_cli_args(parser)
print(json.dumps(sorted(parser._option_string_actions)))
"""


class IncompatibleSGLang(RuntimeError):
    """The installed SGLang is not one the plugin can drive: the sentence says which, and what to do."""


@dataclass(frozen=True)
class SGLangInstall:
    python: str
    version: str
    flags: frozenset[str]

    def check(self, insist: bool = False) -> None:
        from packaging.specifiers import SpecifierSet

        if self.version not in SpecifierSet(TESTED, prereleases=True) and not insist:
            raise IncompatibleSGLang(
                f"SGLang {self.version} ({self.python}) is outside the range pytest-embedeval is tested with "
                f"({TESTED}): run with {INSIST} to try it anyway, or install one inside the range "
                "(pip install 'pytest-embedeval[sglang]')")

    def supported(self, argv: list[str], plugin_flags: set[str]) -> list[str]:
        """``argv`` without the plugin's optional flags this version lacks; IncompatibleSGLang for any other."""
        kept, index = [], 0
        unknown = []
        while index < len(argv):
            word = argv[index]
            flag = word.split("=", 1)[0]
            takes_value = index + 1 < len(argv) and not argv[index + 1].startswith("--") and "=" not in word
            if flag.startswith("--") and flag not in self.flags:
                if flag in OPTIONAL and flag in plugin_flags:
                    index += 2 if takes_value else 1
                    continue
                unknown.append(flag)
            kept.append(word)
            index += 1
        if unknown:
            raise IncompatibleSGLang(f"SGLang {self.version} does not know {', '.join(unknown)}: "
                                     "drop them from --embed-server-arg or the model's server_args")
        return kept


@lru_cache(maxsize=None)
def installed(python: str = sys.executable) -> SGLangInstall:
    """The SGLang that ``python`` imports: its version, and its parser's flags.

    The version is read at once; the flags need SGLang's parser, whose imports take seconds, so they are
    kept per version in the user's cache: one SGLang version has one parser.
    """
    version = _ask(python, _VERSION)
    cached = _cache_dir() / f"sglang-{version}-flags.json"
    try:
        flags = json.loads(cached.read_text())
    except (OSError, ValueError):
        flags = json.loads(_ask(python, _FLAGS))
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(flags))
        except OSError:
            pass  # a read-only home: ask again next time
    return SGLangInstall(python, version, frozenset(flags))


def _ask(python: str, code: str) -> str:
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IncompatibleSGLang(f"could not ask {python} for its SGLang: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise IncompatibleSGLang(f"{python} cannot import SGLang ({tail}): install it in that environment with "
                                 "pip install 'pytest-embedeval[sglang]' (or the SGLang you want to test)")
    return done.stdout.strip().splitlines()[-1]


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pytest-embedeval"
