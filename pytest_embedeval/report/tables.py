"""Tables people read: verdicts, baseline diffs and the baseline store, as text or Markdown."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ..store.baselines import Change, ModelBaselines
from ..judge.verdicts import Outcome, Verdict, format_value
from ..facts.metrics import CATALOGUE, PAIRED_SCORE, metric, parse_label

PAIRED = {name for name, definition in CATALOGUE.items() if definition.pair_unit or name == "paired_min_cosine"}

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

