"""The install a new user gets: the lock pins the whole tested stack within the project's ranges, the README's
quick start installs it and CI runs that quick start as written in a fresh virtualenv, the package claims only the
Python it was tested with, and a release is published by a workflow that holds no secret.

Nothing here installs anything: the files are read (CI itself runs the install, `.ci/run`)."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements-lock.txt"
CI_RUN = ROOT / ".ci" / "run"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REFRESH = "uv pip compile pyproject.toml -o requirements-lock.txt"


def locked() -> dict[str, str]:
    """Every pin of the lock, by canonical name; a line that is not `name==version` fails here."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            specifiers = list(requirement.specifier)
            assert len(specifiers) == 1 and specifiers[0].operator == "==" and not requirement.marker, (
                f"requirements-lock.txt: '{line}' is not an exact pin; regenerate it with `{REFRESH}`")
            pins[canonicalize_name(requirement.name)] = specifiers[0].version
    return pins


def asked_for(extra: str) -> list[Requirement]:
    """The project's requirements with an extra, its own extras followed (dev -> sglang, accuracy)."""
    project = PYPROJECT["project"]
    found, extras, seen = [Requirement(r) for r in project["dependencies"]], [extra], set()
    while extras:
        if (name := extras.pop()) in seen:
            continue
        seen.add(name)
        for requirement in map(Requirement, project["optional-dependencies"][name]):
            if canonicalize_name(requirement.name) == canonicalize_name(project["name"]):
                extras.extend(requirement.extras)
            else:
                found.append(requirement)
    return found


def quick_start() -> list[str]:
    """The README's quick-start commands, comments dropped."""
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Quick start\n(.*?)^## ", readme, re.M | re.S).group(1)
    block = re.search(r"^```bash\n(.*?)^```", section, re.M | re.S).group(1)
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.strip()]


def test_the_lock_pins_everything_the_project_asks_for_within_its_ranges():
    pins = locked()
    wanted = asked_for(PYPROJECT["tool"]["uv"]["pip"]["extra"][0])
    missing = sorted({r.name for r in wanted if canonicalize_name(r.name) not in pins})
    outside = [f"{r} (locked {pins[canonicalize_name(r.name)]})" for r in wanted
               if canonicalize_name(r.name) in pins
               and not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)]
    assert not missing and not outside, (
        f"requirements-lock.txt is behind pyproject.toml: missing {missing}, outside the range {outside}; "
        f"run `{REFRESH}`")
    # What the README and FACTS call the tested stack.
    assert pins["sglang"] == "0.5.23" and pins["torch"] == "2.14.1"


def test_the_lock_says_how_it_was_made_and_the_readme_and_the_weekly_workflow_refresh_it_so():
    assert REFRESH in LOCK.read_text().splitlines()[1]
    readme = (ROOT / "README.md").read_text()
    upgrade = REFRESH.replace("compile ", "compile --upgrade ")
    assert REFRESH in readme and upgrade in readme
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "lock.yml").read_text())
    runs = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert upgrade in runs, runs
    assert "schedule" in workflow[True]  # PyYAML reads the key `on` as true


def test_the_package_claims_only_the_python_the_lock_was_made_and_tested_for():
    python = PYPROJECT["tool"]["uv"]["pip"]["python-version"]
    claimed = [c.rsplit(" :: ", 1)[1] for c in PYPROJECT["project"]["classifiers"]
               if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert claimed == [python]
    assert re.search(rf"python{re.escape(python)} -m venv", CI_RUN.read_text())


def test_ci_runs_the_readme_quick_start_as_written_in_a_fresh_virtualenv():
    commands = quick_start()
    assert len(commands) == 2 and commands[1] == "pytest", commands
    assert "-r requirements-lock.txt" in commands[0]
    lines = [line.strip() for line in CI_RUN.read_text().splitlines()]
    for command in commands:
        assert command in lines or f"({command})" in lines, f".ci/run does not run the README's `{command}`"
    venv = next(i for i, line in enumerate(lines) if " -m venv " in line)
    first_pip = next(i for i, line in enumerate(lines) if "pip install" in line)
    activate = next(i for i, line in enumerate(lines) if line.startswith(". ") and "/bin/activate" in line)
    assert venv < activate < first_pip, "the install must go into a virtualenv made by this run"
    assert "set -euo pipefail" in lines


def test_ci_builds_the_package_checks_it_and_runs_the_main_job_from_the_wheel():
    text = CI_RUN.read_text()
    for step in ("python -m build", "twine check --strict", "dist/*.whl", "pip check"):
        assert step in text, f".ci/run does not run `{step}`"
    after_wheel = text[text.index("dist/*.whl"):]
    assert "cd " in after_wheel and quick_start()[0].split("&& ", 1)[1] in after_wheel


def test_a_release_is_built_checked_and_published_with_trusted_publishing():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    assert workflow[True]["push"]["tags"] == ["v*"]
    build, publish = workflow["jobs"]["build"], workflow["jobs"]["publish"]
    runs = " ".join(step.get("run", "") for step in build["steps"])
    assert "python -m build" in runs and "twine check --strict" in runs and "v$version" in runs
    assert publish["needs"] == "build" and publish["permissions"] == {"id-token": "write"}
    uploader, = [step for step in publish["steps"] if step["uses"].startswith("pypa/gh-action-pypi-publish@")]
    assert not set(uploader.get("with", {})) & {"password", "user"}, "trusted publishing needs no stored token"
    assert workflow["permissions"] == {"contents": "read"}
