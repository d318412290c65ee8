"""Where a run's results go besides the terminal: the GitHub step summary and github-action-benchmark."""

from __future__ import annotations

import json
from pathlib import Path

from ..store.files import write_atomically
from ..facts.metrics import EXACT, HIGHER, metric, parse_label
from .tables import diff_table, pair_table, verdict_table
from ..run.record import Run


def append_step_summary(run: Run, path: Path, updates: dict | None = None) -> None:
    """Markdown for the job page: one table per model, regressions first and counted in the heading."""
    lines = ["## Embedding regression tests (pytest-embedeval)", ""]
    for model_run in run.models.values():
        failing = sum(v.failing for v in model_run.verdicts)
        status = f"{failing} failing" if failing else "nothing failing"
        lines += [f"### {model_run.model} on {model_run.profile}: {status}", "",
                  f"{model_run.machine}; {model_run.software}", "",
                  verdict_table(model_run.verdicts, markdown=True), ""]
        paired = pair_table(model_run.verdicts, markdown=True)
        if paired:
            incumbent = model_run.server.get("incumbent", {}).get("described", "the incumbent server")
            lines += [f"Candidate against {incumbent}, measured side by side:", "", paired, ""]
        if updates and model_run.model in updates:
            lines += [f"Baseline update for {model_run.model}:", "",
                      diff_table(updates[model_run.model], markdown=True), ""]
    with open(path, "a", encoding="utf-8") as summary:
        summary.write("\n".join(lines) + "\n")


def benchmark_entries(run: Run) -> tuple[list[dict], list[dict]]:
    """(smaller-is-better, bigger-is-better) in github-action-benchmark's custom tool format."""
    smaller, bigger = [], []
    for model_run in run.models.values():
        for name, value in model_run.measurements().items():
            definition = metric(parse_label(name)[0])
            if definition.better == EXACT or definition.fixed_baseline is not None:
                continue  # a count (dimensions), a share of failures, a paired ratio: judged, not charted
            entry = {"name": f"{model_run.model} {name}", "unit": definition.unit, "value": value,
                     "extra": str(model_run.profile)}
            (bigger if definition.better == HIGHER else smaller).append(entry)
    return smaller, bigger


def write_benchmark_files(run: Run, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    smaller, bigger = benchmark_entries(run)
    write_atomically(directory / "smaller-is-better.json", json.dumps(smaller, indent=2))
    write_atomically(directory / "bigger-is-better.json", json.dumps(bigger, indent=2))
