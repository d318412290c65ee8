"""Check what a job holding a write token takes from the self-hosted GPU runner before it uses it.

The GPU runner is a long-lived machine whose caches (pip's, Hugging Face's) a same-repository pull request
(Dependabot, a collaborator) could have written; the reports and baselines measured there after it reach
gh-pages and pull requests. Only plain data of the expected shape passes: nothing executable, no link,
nothing outside its folder, nothing huge.

    python .github/scripts/check_artifacts.py benchmark reports/MODEL-benchmark/
    python .github/scripts/check_artifacts.py baselines baselines/
Exits 1 with one line per problem (a GitHub error annotation each).

A benchmark folder holds the two chart files and, beside each, its alert threshold ("115%"), which a later step
reads into the action's ``alert-threshold`` through $GITHUB_OUTPUT: only digits and a percent sign pass, so that
no line of it can become a step output of its own.
"""

from __future__ import annotations

import json
import math
import re
import sys
import tomllib
import zipfile
from pathlib import Path

MAX_BYTES = 50 * 1024 * 1024
BASELINE_SUFFIXES = {".toml", ".npz", ".json"}
BENCHMARK_KEYS = {"name": str, "unit": str, "value": (int, float)}
OPTIONAL_KEYS = {"range": str, "extra": str}
CHARTS = ("smaller-is-better", "bigger-is-better")
# 100% to 9999%, as the plugin writes it: a ratio of a point to the one before.
THRESHOLD = re.compile(r"\d{3,4}%", re.ASCII)
# "± 1.25", "± 3e+08": the farther end of the plugin's 95% interval from the value.
RANGE = re.compile(r"± \d+(\.\d+)?(e[+-]\d+)?", re.ASCII)


def files(folder: Path, problems: list[str]):
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            problems.append(f"{path}: a symbolic link")
        elif path.is_file():
            if path.stat().st_size > MAX_BYTES:
                problems.append(f"{path}: {path.stat().st_size} bytes, more than {MAX_BYTES}")
            else:
                yield path


def check_benchmark(folder: Path) -> list[str]:
    problems: list[str] = []
    expected = {f"{chart}{suffix}" for chart in CHARTS for suffix in (".json", "-alert-threshold.txt")}
    present = set()
    for path in files(folder, problems):
        name = path.relative_to(folder).as_posix()
        present.add(name)
        if name not in expected:
            problems.append(f"{path}: not a benchmark file (only {', '.join(sorted(expected))})")
        elif path.suffix == ".txt":
            problems += check_threshold(path)
        else:
            problems += check_figures(path)
    for chart in CHARTS:
        if f"{chart}.json" in present and f"{chart}-alert-threshold.txt" not in present:
            problems.append(f"{folder / chart}.json: no {chart}-alert-threshold.txt beside it")
    return problems


def check_threshold(path: Path) -> list[str]:
    text = path.read_bytes()
    if not THRESHOLD.fullmatch(text.decode("ascii", errors="replace")):
        return [f"{path}: not a threshold like 115% ({text[:20]!r})"]
    return []


def check_figures(path: Path) -> list[str]:
    problems: list[str] = []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return [f"{path}: not JSON ({exc})"]
    if not isinstance(entries, list):
        return [f"{path}: not a list of figures"]
    for number, entry in enumerate(entries):
        where = f"{path}: figure {number}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not an object")
            continue
        unknown = set(entry) - set(BENCHMARK_KEYS) - set(OPTIONAL_KEYS)
        if unknown:
            problems.append(f"{where}: unexpected keys {sorted(unknown)}")
        for key, kind in {**BENCHMARK_KEYS, **OPTIONAL_KEYS}.items():
            if key in entry and (not isinstance(entry[key], kind) or isinstance(entry[key], bool)):
                problems.append(f"{where}: {key} is {type(entry[key]).__name__}")
            elif key in BENCHMARK_KEYS and key not in entry:
                problems.append(f"{where}: no {key}")
        value = entry.get("value")
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{where}: value {value}")
        if isinstance(entry.get("range"), str) and not RANGE.fullmatch(entry["range"]):
            problems.append(f"{where}: range {entry['range'][:40]!r} is not like '± 1.25'")
    return problems


def check_baselines(folder: Path) -> list[str]:
    problems: list[str] = []
    for path in files(folder, problems):
        if path.suffix not in BASELINE_SUFFIXES:
            problems.append(f"{path}: not a baseline file (only {', '.join(sorted(BASELINE_SUFFIXES))})")
        elif path.suffix == ".toml":
            try:
                tomllib.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                problems.append(f"{path}: not TOML ({exc})")
        elif path.suffix == ".json":
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                problems.append(f"{path}: not JSON ({exc})")
        elif path.suffix == ".npz":
            try:
                with zipfile.ZipFile(path) as archive:
                    bad = [name for name in archive.namelist() if not name.endswith(".npy") or "/" in name]
            except zipfile.BadZipFile:
                bad = ["(not a zip archive)"]
            if bad:
                problems.append(f"{path}: not plain arrays ({', '.join(bad[:3])})")
    return problems


def main(argv: list[str]) -> int:
    kind, folder = argv
    problems = (check_benchmark if kind == "benchmark" else check_baselines)(Path(folder))
    for problem in problems:
        print(f"::error title=Artifact refused::{problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
