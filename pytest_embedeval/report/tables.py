"""Tables people read: verdicts, baseline diffs, the baseline store and one run against another, as text or Markdown."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ..facts.metrics import CATALOGUE, PAIRED_SCORE, metric, parse_label
from ..judge.verdicts import Outcome, Verdict, format_value
from ..store.baselines import Change, ModelBaselines

# A fleet's own figures (facts/metrics.py): its parts measured in the same minutes, but no incumbent's.
FLEET = ("fleet_balance_ratio", "gateway_overhead_ratio", "dead_workers")
PAIRED = {name for name, definition in CATALOGUE.items()
          if (definition.pair_unit or name == "paired_min_cosine") and name not in FLEET}

_ORDER = {Outcome.NOT_A_NUMBER: 0, Outcome.REGRESSED: 0, Outcome.INCONCLUSIVE: 1, Outcome.NO_BASELINE: 1,
          Outcome.IMPROVED: 2, Outcome.PASSED: 3}


def _verdict_text(v: Verdict) -> str:
    """The outcome, in capitals where the judge said it fails the run."""
    return v.outcome.value.upper() if v.failing else v.outcome.value


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], markdown: bool = False) -> str:
    rows = [[str(cell) for cell in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]
    render = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([render(headers), render(["-" * w for w in widths]), *map(render, rows)])


def verdict_table(verdicts: Iterable[Verdict], markdown: bool = False) -> str:
    """metric, baseline (profile, source), measured, its 95% CI, delta, tolerance, verdict; failures first."""
    ordered = sorted(verdicts, key=lambda v: (not v.failing, _ORDER[v.outcome], v.label))
    rows = [
        (
            v.label,
            format_value(v.baseline, v.unit) + (f" ({v.profile}, {v.source})" if v.source else ""),
            format_value(v.measured, v.unit) if math.isfinite(v.measured) or v.outcome is not Outcome.NO_BASELINE
            else "not measured",
            f"{v.interval[0]:.4g}..{v.interval[1]:.4g}" if v.interval else "-",
            v.delta_text(),
            v.tolerance or "-",
            _verdict_text(v),
            v.published or "",
        )
        for v in ordered
    ]
    return table(("metric", "baseline", "measured", "95% CI", "delta", "tolerance", "verdict", "vs published"), rows,
                 markdown)


def pair_table(verdicts: Iterable[Verdict], markdown: bool = False) -> str:
    """The paired figures: incumbent, candidate, their ratio (or difference) with its interval, and the verdict."""
    rows = []
    for v in sorted((v for v in verdicts if v.metric in PAIRED or v.metric.startswith(PAIRED_SCORE)),
                    key=lambda v: (not v.failing, _ORDER[v.outcome], v.label)):
        unit = metric(v.metric).pair_unit or v.unit
        incumbent, candidate = (format_value(x, unit) for x in v.pair) if v.pair else ("-", "-")
        rows.append((v.label, incumbent, candidate, format_value(v.measured, v.unit),
                     f"{v.interval[0]:.4g}..{v.interval[1]:.4g}" if v.interval else "-", v.tolerance or "-",
                     _verdict_text(v)))
    if not rows:
        return ""
    return table(("metric", "incumbent", "candidate", "candidate vs incumbent", "95% CI", "tolerance", "verdict"),
                 rows, markdown)


def fleet_table(verdicts: Iterable[Verdict], markdown: bool = False) -> str:
    """A fleet's figures: each worker's latency and share, the balance between workers, the gateway's overhead and
    any worker that died, with what each is about."""
    rows = []
    for v in (v for v in verdicts if v.metric in FLEET or v.subject):
        rows.append((v.label, v.subject or "the fleet", format_value(v.measured, v.unit),
                     f"{v.interval[0]:.4g}..{v.interval[1]:.4g}" if v.interval else "-", v.tolerance or "-",
                     _verdict_text(v), v.pair_text() if v.pair else ""))
    if not rows:
        return ""
    return table(("metric", "about", "measured", "95% CI", "tolerance", "verdict", "sides"), rows, markdown)


def diff_table(changes: Iterable[Change], markdown: bool = False) -> str:
    """What an update did with each figure: moved (new, improved, accepted), kept where it was, or refused."""
    rows = []
    for change in changes:
        unit = metric(parse_label(change.metric)[0]).unit
        delta = "-" if change.old is None else f"{change.new - change.old:+.4g}"
        stored = format_value(change.new if change.moves else change.old, unit)
        rows.append((change.metric, format_value(change.old, unit), format_value(change.new, unit), delta, stored,
                     change.action))
    return table(("figure", "old", "measured", "delta", "stored now", "action"), rows, markdown)


def store_table(baselines: ModelBaselines, markdown: bool = False) -> str:
    """One column per profile, one row per metric, disputed figures marked."""
    profiles = list(baselines.profiles.values())
    known = list(CATALOGUE)
    position = lambda n: known.index(parse_label(n)[0]) if parse_label(n)[0] in known else len(known)  # noqa: E731
    names = sorted({name for p in profiles for name in p.metrics}, key=lambda n: (position(n), n))
    rows = []
    for name in names:
        cells = [name]
        for profile in profiles:
            entry = profile.metrics.get(name)
            if entry is None:
                cells.append("-")
            else:
                cells.append(format_value(entry.value, metric(parse_label(name)[0]).unit)
                             + (" (disputed)" if entry.disputed else ""))
        rows.append(cells)
    headers = ["metric", *(f"{p.name} [{p.source}, {p.hardware}]" for p in profiles)]
    notes = [f"- {p.name}.{name}: disputed: {entry.disputed}" for p in profiles
             for name, entry in p.metrics.items() if entry.disputed]
    body = table(headers, rows, markdown)
    title = f"{baselines.model}  ({baselines.path})"
    return "\n".join([title, body, *(["", *notes] if notes else [])])


def versus_report(comparison, runs: Sequence[tuple[str, str]], markdown: bool = False) -> str:
    """One model's run B against run A: which runs they are, then each figure's change, its interval and the
    judge's verdict, and what the verdicts that cannot tell or cannot compare need. ``runs``: (file, created)
    of A and B. ``comparison``: ``run.versus.Comparison``."""
    model_runs = (comparison.before, comparison.after)
    who = [f"{side} ({when}): {path}, created {created or 'unknown'}; {run.software or 'software unknown'}; "
           f"{run.machine or 'machine unknown'}; {run.profile}"
           for side, when, (path, created), run in zip("AB", ("before", "after"), runs, model_runs)]
    title = f"{comparison.after.model}: run B against run A"
    if markdown:
        head = [f"### {title}", "", *(f"- {line}" for line in who), ""]
    else:
        head = [title, *(f"  {line}" for line in who)]
    rows = [_versus_row(v, comparison.before_values.get(v.label), comparison.judged_against_before(v))
            for v in comparison.verdicts]
    rows += [(name, format_value(value, metric(parse_label(name)[0]).unit), "-", "-", "-", "-", "not measured in run B")
             for name, value in ((n, comparison.before_values[n]) for n in comparison.only_before)]
    body = table(("metric", "A", "B", "change", "95% CI of the change", "tolerance", "verdict"), rows, markdown)
    notes = [f"{v.label} cannot tell: {v.why}" for v in comparison.verdicts if v.outcome is Outcome.INCONCLUSIVE]
    return "\n".join([*head, body, *([""] + notes if notes else [])])


def versus_failures(comparison) -> list[str]:
    """One sentence per failing verdict of B against A: "latency_p50_ms (...) regressed: 20.1 ms -> 24.3 ms
    (+21.0%, CI +12.0%..+31.0%), tolerance 10%"."""
    sentences = []
    for v in comparison.failing():
        before = comparison.before_values.get(v.label)
        if v.outcome is not Outcome.REGRESSED or not comparison.judged_against_before(v):
            sentences.append(v.reason())  # not a number, or judged against a fixed baseline: its own sentence
            continue
        definition = metric(v.metric)
        interval = f", CI {_change_interval(definition, before, v.interval)}" if v.interval else ""
        sentences.append(f"{v.label} regressed: {format_value(before, v.unit)} -> {format_value(v.measured, v.unit)} "
                         f"({_change(definition, before, v.measured)}{interval}), tolerance {v.tolerance}")
    return sentences


def _versus_row(v: Verdict, before: float | None, against_before: bool) -> tuple[str, ...]:
    definition = metric(v.metric)
    if v.outcome is Outcome.NO_BASELINE:
        verdict = f"not comparable: {v.why}"
    elif v.outcome is Outcome.INCONCLUSIVE:
        verdict = "cannot tell"
    elif not against_before:
        verdict = f"{_verdict_text(v)} (against {format_value(v.baseline, v.unit)} on every server)"
    else:
        verdict = _verdict_text(v)
    return (v.label, format_value(before, v.unit), format_value(v.measured, v.unit),
            "-" if v.outcome is Outcome.NO_BASELINE else _change(definition, before, v.measured),
            _change_interval(definition, before, v.interval) if v.interval and against_before else "-",
            v.tolerance or "-", verdict)


def _change(definition, before: float | None, after: float) -> str:
    """B's change from A: relative where the metric's tolerance is (times, rates, memory), else in its unit."""
    if before is None or not (math.isfinite(before) and math.isfinite(after)):
        return "-"
    if definition.tolerance.relative and before:
        return f"{(after - before) / abs(before) * 100:+.1f}%"
    # Stored figures keep 6 decimals: a difference below that is rounding, not a change.
    return f"{round(after - before, 6) + 0.0:+.4g} {definition.unit}"


def _change_interval(definition, before: float, interval: tuple[float, float]) -> str:
    """"+12.0%..+31.0%", or "-0.2..+0.4 points": the interval of B's figure, as changes from A's."""
    low, high = (_change(definition, before, end) for end in interval)
    unit = f" {definition.unit}"
    return f"{low.removesuffix(unit)}..{high}"
