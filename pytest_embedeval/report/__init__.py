"""Layer 7, reports people read, rendered from one finished run session: the verdicts as they were recorded.

``tables`` (text and Markdown tables), ``github`` (step summary, github-action-benchmark files),
``compare`` (models side by side, the chart), ``comment`` (a pull request's one comment). ``sections`` and
``write_files`` are what a run ends with.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .tables import diff_table, fleet_table, pair_table, store_table, table, verdict_table

__all__ = ["diff_table", "pair_table", "sections", "store_table", "table", "verdict_table", "write_files"]


# Why an update refused a figure: (what it refused, what the user can do about it).
REFUSALS = {
    "refused: regressed": ("regressed values", "Re-run with --embed-accept-regressions if the regression is intended."),
    "refused: not a number": ("values that are not a number", "Such a figure is never written."),
    "refused: cannot tell": ("inconclusive values", "Their intervals were too wide to tell a change from none: "
                                                     "measure more requests or items."),
    "refused: unknown hardware (--embed-hardware)": ("the times, rates and memory of a server on another machine",
                                                     "Name its hardware with --embed-hardware KEY."),
}


def sections(session) -> list[tuple[str, str, dict]]:
    """(title or None, body, markup) of every section the terminal shows at the end of a run."""
    run, found = session.run, []
    for model_run in run.models.values():
        if model_run.verdicts:
            found.append((f"embedeval: {model_run.model} on {model_run.profile}",
                          verdict_table(model_run.verdicts), {}))
        fleet = fleet_table(model_run.verdicts)
        if fleet:
            workers = len(model_run.server.get("workers") or []) or "its"
            found.append((f"embedeval: {model_run.model}, the fleet ({workers} workers behind the gateway)", fleet, {}))
        paired = pair_table(model_run.verdicts)
        if paired:
            found.append((f"embedeval: {model_run.model}, candidate vs incumbent "
                          f"({model_run.server.get('incumbent', {}).get('described', 'the incumbent server')})",
                          paired, {}))
    for model, changes in session.updates.items():
        lines = [diff_table(changes)]
        lines += [f"written with the baselines: {stored}" for stored in run.models[model].stored_files]
        found.append((f"embedeval: baseline update for {model} ({session.store.baselines.for_model(model).path})",
                      "\n".join(lines), {}))
        for action, (what, fix) in REFUSALS.items():
            refused = [c.metric for c in changes if c.action == action]
            if refused:
                found.append((None, f"refused to write {what} for {', '.join(refused)}: the old baselines stay. "
                                    f"{fix}", {"red": True}))
    if len(run.models) > 1:
        from .compare import comparison_table

        found.append(("embedeval: models side by side (article's figures in brackets)",
                      comparison_table(list(run.models.values()), session.store.baselines.models), {}))
    if not session.policy.update:
        found += _missing_machine_baselines(run)
    found += [(None, f"embedeval: written {path}", {}) for path in session.written]
    return found


def _missing_machine_baselines(run) -> list[tuple[str | None, str, dict]]:
    """One line per model whose timed or memory figures had nothing to compare with on this machine."""
    from ..facts.metrics import metric
    from ..judge.verdicts import Outcome

    lines = []
    for model_run in run.models.values():
        missing = sorted({v.metric for v in model_run.verdicts
                          if v.outcome is Outcome.NO_BASELINE and metric(v.metric).hardware_bound})
        if missing:
            lines.append((None, f"embedeval: {model_run.model} has no timing or memory baselines for "
                                f"{model_run.profile.hardware} ({', '.join(missing)}); scores and vectors were "
                                "still checked. Record this machine's by running the same command with "
                                "--embed-update-baselines", {"yellow": True}))
    return lines


def write_files(session, settings) -> list[Path]:
    """The JSON report, github-action-benchmark and pytest-benchmark files, the step summary, the chart."""
    from ..facts import environment
    from ..run.record import machine_info
    from ..store.files import write_atomically

    run, written = session.run, session.written
    run.environment = environment.collect()
    if settings.report_path:
        write_atomically(settings.report_path, run.to_json())
        written.append(settings.report_path)
    if settings.benchmark_dir:
        from .github import write_benchmark_files

        write_benchmark_files(run, settings.benchmark_dir)
    if settings.benchmark_json:
        from ..store.timings import document

        timings = {model: model_run.timings for model, model_run in run.models.items() if model_run.timings}
        machine = machine_info(next(iter(run.models.values())))
        write_atomically(settings.benchmark_json, json.dumps(document(timings, machine), indent=2))
        written.append(settings.benchmark_json)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        from .github import append_step_summary

        append_step_summary(run, Path(os.environ["GITHUB_STEP_SUMMARY"]), session.updates)
    if settings.chart_path:
        from .compare import chart

        written.append(chart(list(run.models.values()), settings.chart_path))
    return written
