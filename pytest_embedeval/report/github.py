"""Where a run's results go besides the terminal: the GitHub step summary and github-action-benchmark."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..facts.metrics import EXACT, HIGHER, metric
from ..judge.verdicts import Verdict
from ..run.record import Run
from ..store.files import write_atomically
from .tables import diff_table, pair_table, verdict_table


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
    """(smaller-is-better, bigger-is-better) in github-action-benchmark's custom tool format: name, unit, value,
    and ``range``, "± X" with X the farther end of the verdict's 95% interval from the value."""
    smaller, bigger = [], []
    for model_run, v in _charted(run):
        entry = {"name": f"{model_run.model} {v.label}", "unit": v.unit, "value": v.measured,
                 "extra": str(model_run.profile)}
        if v.interval and all(math.isfinite(end) for end in v.interval):
            entry["range"] = f"± {max(v.measured - v.interval[0], v.interval[1] - v.measured):.3g}"
        (bigger if metric(v.metric).better == HIGHER else smaller).append(entry)
    return smaller, bigger


def alert_threshold(run: Run, higher: bool) -> str:
    """github-action-benchmark's ``alert-threshold`` for one chart file: "115%".

    The action holds every figure of a file to one threshold, on the ratio of a point to the point before it
    (current / previous where smaller is better, previous / current where bigger is). The judge gives each figure
    its own tolerance (``judge.rules.tolerance``). The file's threshold is the largest of its figures' tolerances,
    as that ratio: two single runs are compared with no interval, so a threshold below a figure's own tolerance
    would comment on what the judge calls noise for it, on every other push; the tighter figures are gated by
    their own verdicts in the tests, which is what fails a run. Nothing charted: the action's own 200%.
    """
    fractions = [_tolerance_fraction(model_run, v) for model_run, v in _charted(run)
                 if (metric(v.metric).better == HIGHER) == higher and v.measured]
    if not fractions:
        return "200%"
    worst = max(fractions)
    if higher:  # a drop by the whole tolerance, as previous / current
        ratio = 1 / (1 - worst) if worst < 1 else math.inf
    else:
        ratio = 1 + worst
    # Rounded up, so that only a change past the tolerance alerts; 9999%: the most the workflow's check accepts.
    return f"{min(math.ceil(round(100 * ratio, 6)), 9999)}%"


def _tolerance_fraction(model_run, v: Verdict) -> float:
    """The figure's tolerance as the judge chose it (as recorded, else the judge's default), as a share of it."""
    from ..facts.vector_math import is_half_precision
    from ..judge.rules import tolerance
    from ..run.versus import recorded_tolerance

    chosen = tolerance(metric(v.metric), half_precision=is_half_precision(model_run.profile.dtype),
                       marker=recorded_tolerance(v.tolerance))
    return chosen.band(v.measured) / abs(v.measured)


def _charted(run: Run):
    """(model run, verdict) of every figure a chart shows: the last of each label, of a finite value, neither a
    count (dimensions) nor a fixed baseline's (a share of failures, a paired ratio): judged, not charted."""
    for model_run in run.models.values():
        for v in {v.label: v for v in model_run.verdicts}.values():
            definition = metric(v.metric)
            if definition.better != EXACT and definition.fixed_baseline is None and math.isfinite(v.measured):
                yield model_run, v


CHARTS = {"smaller-is-better": False, "bigger-is-better": True}  # file stem: whether bigger is better


def write_benchmark_files(run: Run, directory: Path) -> None:
    """Each chart's file, and beside it ``<file>-alert-threshold.txt`` for the workflow's ``alert-threshold``."""
    directory.mkdir(parents=True, exist_ok=True)
    for (stem, higher), entries in zip(CHARTS.items(), benchmark_entries(run)):
        write_atomically(directory / f"{stem}.json", json.dumps(entries, indent=2))
        write_atomically(directory / f"{stem}-alert-threshold.txt", alert_threshold(run, higher))
