"""Measured against baseline: a pure function in, a verdict out that renders itself as a sentence.

The same verdict objects feed test failures, the terminal table, JSON and Markdown.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum

from .metrics import EXACT, HIGHER, Metric, Tolerance


class Outcome(str, Enum):
    PASSED = "pass"
    REGRESSED = "regressed"
    IMPROVED = "improved"
    NO_BASELINE = "no baseline"
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
    pair: tuple[float, float] | None = None  # a paired figure: (reference's value, candidate's value)
    published: str | None = None  # published figures of the metric, shown beside it: "article 89 ms: +68%"

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
            return (f"{self.metric} is not a number (measured {self.measured}): likely cause: {cause}. "
                    "A figure that is not a number never passes; check the server's log and its answers")
        if self.outcome is Outcome.NO_BASELINE:
            published = f"; published: {self.published}" if self.published else ""
            return (f"{self.metric}: measured {measured}; no baseline for this hardware profile ({self.profile})"
                    f"{published}")
        interval = ""
        if self.interval:
            low, high = (format_value(x, self.unit) for x in self.interval)
            interval = f", 95% CI {low}..{high}"
        if self.pair:
            return (f"{self.metric} {self.outcome.value}: candidate {self.pair_text()}: {measured}{interval} "
                    f"({self.delta_text()} from {format_value(self.baseline, self.unit)}, tolerance {self.tolerance})")
        return (
            f"{self.metric} {self.outcome.value}: measured {measured}{interval}, baseline "
            f"{format_value(self.baseline, self.unit)} ({self.delta_text()}, tolerance {self.tolerance}; "
            f"profile {self.profile!r}, source {self.source})"
        )

    def pair_text(self) -> str:
        """The two servers' own values: "36.5 ms vs reference 33.1 ms"."""
        from .metrics import metric

        unit = metric(self.metric).pair_unit or self.unit
        return f"{format_value(self.pair[1], unit)} vs reference {format_value(self.pair[0], unit)}"

    def section(self) -> str:
        """The detail, as a small table: metric, baseline, measured, delta, tolerance."""
        rows = [
            ("metric", self.metric),
            ("baseline", format_value(self.baseline, self.unit)),
            ("measured", format_value(self.measured, self.unit)),
            ("delta", self.delta_text()),
            ("tolerance", self.tolerance or "-"),
            ("verdict", self.outcome.value),
            ("profile", f"{self.profile} ({self.source})" if self.source else str(self.profile)),
        ]
        if self.note:
            rows.append(("measured as", self.note))
        if self.published:
            rows.append(("published", self.published))
        if self.pair:
            rows.insert(1, ("servers", f"candidate {self.pair_text()}"))
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


def compare(
    metric: Metric,
    measured: float,
    baseline: float | None,
    tolerance: Tolerance | None = None,
    *,
    model: str = "",
    profile: str | None = None,
    source: str | None = None,
    interval: tuple[float, float] | None = None,
    test: str | None = None,
    note: str | None = None,
    pair: tuple[float, float] | None = None,
    published: str | None = None,
) -> Verdict:
    """Pass, regressed, improved, no baseline, or not a number.

    With an ``interval`` (the measurement's confidence interval) a difference from a stored baseline
    counts only when the whole interval lies outside the tolerance band: noise within the band is never
    a regression. A paired figure's difference counts when it is past the tolerance and its interval
    excludes no change.
    A NaN compares false with everything, so it is caught first: otherwise it would never be
    "beyond the band" and would pass.
    """
    tolerance = tolerance or metric.tolerance
    if metric.fixed_baseline is not None:
        baseline, profile, source = metric.fixed_baseline, "built in", "every server"
    if interval is not None and not all(math.isfinite(x) for x in interval):
        interval = None  # a bootstrap over degenerate samples: judge the point estimate alone
    common = dict(model=model, metric=metric.name, unit=metric.unit, measured=measured, profile=profile,
                  interval=interval, test=test, note=note, pair=pair, published=published)
    if not math.isfinite(measured):
        return Verdict(outcome=Outcome.NOT_A_NUMBER, baseline=baseline, tolerance=str(tolerance), source=source,
                       **common)
    if baseline is None:
        return Verdict(outcome=Outcome.NO_BASELINE, **common)
    band = tolerance.band(baseline)
    low, high = interval if interval else (measured, measured)
    if metric.better == EXACT:
        outcome = Outcome.PASSED if abs(measured - baseline) <= band else Outcome.REGRESSED
    elif metric.pair_unit is not None:
        # Both servers measured in the same moments, on the same items: the interval holds all the noise
        # there is, so the usual test applies: past the tolerance, and no change at all outside the interval.
        # A stored baseline's run had another day's noise that no interval holds: see below.
        higher = metric.better == HIGHER
        up = measured > baseline + band and low > baseline
        down = measured < baseline - band and high < baseline
        outcome = Outcome.REGRESSED if (down if higher else up) else Outcome.IMPROVED if (up if higher else down) \
            else Outcome.PASSED
    else:
        worse_beyond = low > baseline + band if metric.better != HIGHER else high < baseline - band
        better_beyond = high < baseline - band if metric.better != HIGHER else low > baseline + band
        outcome = Outcome.REGRESSED if worse_beyond else Outcome.IMPROVED if better_beyond else Outcome.PASSED
    return Verdict(outcome=outcome, baseline=baseline, tolerance=str(tolerance), source=source, **common)
