"""A verdict: what the judge (``rules.py``) decided about one figure, rendered as a sentence and a table.

The same verdict objects feed test failures, the terminal table, JSON and Markdown; none of them decides again
whether a verdict fails (``failing``, set by the judge under the run's policy).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum

from ..facts.metrics import label


class Outcome(str, Enum):
    PASSED = "pass"
    REGRESSED = "regressed"
    IMPROVED = "improved"
    NO_BASELINE = "no baseline"
    INCONCLUSIVE = "inconclusive"  # the interval is too wide to tell a change of the tolerance's size from none
    NOT_A_NUMBER = "not a number"  # NaN or infinite: fails always, and is never written as a baseline


# Why a figure of this unit comes out NaN or infinite, in the user's words.
_LIKELY_CAUSE = {
    "cosine": "the server returned vectors of zeros or NaN, so no cosine exists",
    "norm": "the server returned vectors of NaN or inf",
    "points": "the score had nothing to rank: the server returned identical or degenerate vectors",
    "ms": "no request was timed",
    "tokens/s": "no request completed in the measured window",
    "req/s": "no request completed in the measured window",
    "B": "the memory reading failed",
}


@dataclass(frozen=True)
class Verdict:
    model: str
    metric: str
    unit: str
    measured: float
    outcome: Outcome
    baseline: float | None = None
    tolerance: str | None = None  # as written: "10%" or "0.5"
    profile: str | None = None  # the baseline profile compared against
    source: str | None = None  # that profile's provenance
    interval: tuple[float, float] | None = None  # confidence interval of the measurement
    test: str | None = None
    note: str | None = None  # how it was measured, when the figure needs it to be read right
    pair: tuple[float, float] | None = None  # a paired figure: (incumbent's value, candidate's value)
    published: str | None = None  # published figures of the metric, shown beside it: "article 89 ms: +68%"
    shape: str | None = None  # what the marker measured it at: "batch 1 x 16 tokens"
    why: str | None = None  # an inconclusive or baseline-less verdict's reason, and what would settle it
    timing: str | None = None  # the run record's Timing whose per-request samples the figure summarises
    statistic: str | None = None  # how it summarises them: "p50", "p90", "p99" or "mean"
    failing: bool = False  # decided by the judge under the run's policy: reports and exit codes read it
    subject: str | None = None  # what the figure is about within its server, when not all of it: "worker 2 of 2"

    @property
    def label(self) -> str:
        return label(self.metric, self.shape)

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None else self.measured - self.baseline

    def delta_text(self) -> str:
        if self.baseline is None:
            return "-"
        if self.tolerance and self.tolerance.endswith("%") and self.baseline:
            return f"{(self.measured - self.baseline) / abs(self.baseline) * 100:+.1f}%"
        return f"{self.delta:+.4g}"

    def reason(self) -> str:
        """One sentence: what was measured, against what, and what it means."""
        measured = format_value(self.measured, self.unit)
        if self.outcome is Outcome.NOT_A_NUMBER:
            cause = _LIKELY_CAUSE.get(self.unit, "the measurement produced no number")
            return (f"{self.label} is not a number (measured {self.measured}): likely cause: {cause}. "
                    "A figure that is not a number never passes; check the server's log and its answers")
        if self.outcome is Outcome.NO_BASELINE:
            published = f"; published: {self.published}" if self.published else ""
            why = f"; {self.why}" if self.why else ""
            value = f"measured {measured}" if math.isfinite(self.measured) else "not measured"
            return (f"{self.label}: {value}; no baseline for this figure's identity ({self.profile}){why}"
                    f"{published}")
        interval = ""
        if self.interval:
            low, high = (format_value(x, self.unit) for x in self.interval)
            interval = f", 95% CI {low}..{high}"
        why = f": {self.why}" if self.why else ""
        if self.subject:
            why = f" ({self.subject}){why}"
        if self.pair:
            return (f"{self.label} {self.outcome.value}{why}: {self.pair_text()}: {measured}{interval} "
                    f"({self.delta_text()} from {format_value(self.baseline, self.unit)}, tolerance {self.tolerance})")
        return (
            f"{self.label} {self.outcome.value}{why}: measured {measured}{interval}, baseline "
            f"{format_value(self.baseline, self.unit)} ({self.delta_text()}, tolerance {self.tolerance}; "
            f"profile {self.profile!r}, source {self.source})"
        )

    def pair_text(self) -> str:
        """The two sides' own values: "candidate 36.5 ms vs incumbent 33.1 ms"."""
        from ..facts.metrics import metric

        definition = metric(self.metric)
        unit, (first, second) = definition.pair_unit or self.unit, definition.sides
        return f"{second} {format_value(self.pair[1], unit)} vs {first} {format_value(self.pair[0], unit)}"

    def section(self) -> str:
        """The detail, as a small table: metric, baseline, measured, delta, tolerance."""
        rows = [
            ("metric", self.label),
            ("baseline", format_value(self.baseline, self.unit)),
            ("measured", format_value(self.measured, self.unit)),
            ("delta", self.delta_text()),
            ("tolerance", self.tolerance or "-"),
            ("verdict", self.outcome.value),
            ("profile", f"{self.profile} ({self.source})" if self.source else str(self.profile)),
        ]
        if self.why:
            rows.append(("why", self.why))
        if self.note:
            rows.append(("measured as", self.note))
        if self.published:
            rows.append(("published", self.published))
        if self.pair:
            rows.insert(1, ("servers", self.pair_text()))
        if self.subject:
            rows.insert(1, ("about", self.subject))
        if self.interval:
            rows.insert(3, ("95% CI", f"{format_value(self.interval[0], self.unit)} .. "
                                      f"{format_value(self.interval[1], self.unit)}"))
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Verdict":
        data = dict(data)
        data["outcome"] = Outcome(data["outcome"])
        # A report written before the judge set it: what failed then.
        data.setdefault("failing", data["outcome"] in (Outcome.REGRESSED, Outcome.NOT_A_NUMBER))
        for key in ("interval", "pair"):
            if data.get(key):
                data[key] = tuple(data[key])
        return cls(**data)


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return f"{value} {unit}"
    if unit == "B":
        return f"{value / 1e9:.2f} GB" if abs(value) >= 1e8 else f"{value / 1e6:.1f} MB"
    if unit in ("cosine",):
        return f"{value:.6f}"
    if unit == "ratio":
        return f"{value:.3f}x"
    if float(value).is_integer():
        return f"{int(value)} {unit}"
    return f"{value:.4g} {unit}"

