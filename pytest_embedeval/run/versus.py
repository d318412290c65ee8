"""Run against run: one model's figures in run B judged against its figures in run A, by the one judge.

Run A's figures become a baseline profile held in memory ("measured", with A's ``HardwareProfile``), and each of
B's figures goes to ``Judge.verdict`` as a run's figure goes to it against the store: the same identity rules
(another hardware, deployment, dtype, pairing or shape is never compared), the same tolerances (B's as it
recorded them, else the judge's defaults), the same outcomes. A timed figure's interval is that of the change:
both runs' per-request samples resampled together, as against a stored baseline run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import partial

from ..facts.metrics import parse_label
from ..facts.vector_math import is_half_precision
from ..judge.rules import Figure, Judge, Policy
from ..judge.verdicts import Outcome, Verdict
from ..store.baselines import Entry, ModelBaselines, Profile
from .record import ModelRun
from .session import interval_against_samples

BEFORE = "run A"  # the name run A's figures go by as a baseline profile


@dataclass
class Comparison:
    """One model in two runs: B's figures as the judge saw them against A's."""

    before: ModelRun
    after: ModelRun
    verdicts: list[Verdict] = field(default_factory=list)  # B's figures; "no baseline" = not comparable, and why
    before_values: dict[str, float] = field(default_factory=dict)  # A's figures, by label
    only_before: list[str] = field(default_factory=list)  # labels A measured and B did not

    def failing(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.failing]

    @staticmethod
    def judged_against_before(verdict: Verdict) -> bool:
        """Whether the judge held this figure to A's (not to a fixed baseline, and not left without one)."""
        return verdict.profile == BEFORE and verdict.baseline is not None


class _RunAsBaselines:
    """Run A's figures of one model as the judge reads a store: one measured profile of A's identity."""

    def __init__(self, before: ModelRun, created: str):
        profile = before.profile
        self.baselines = ModelBaselines(
            path=None, model=before.model,
            profiles={BEFORE: Profile(
                name=BEFORE, hardware=profile.hardware, engine=profile.engine, dtype=profile.dtype,
                source="measured", date=created[:10], machine=before.machine, software=before.software,
                deployment=profile.deployment, paired=profile.paired,
                # A figure that is not a number judges nothing (an update never stores one either).
                metrics={name: Entry(value) for name, value in before.measurements().items()
                         if math.isfinite(value)})})

    def for_model(self, model: str) -> ModelBaselines:
        return self.baselines if model == self.baselines.model else ModelBaselines(None, model, {})


def compare_runs(before: ModelRun, after: ModelRun, *, created: str = "") -> Comparison:
    """B's figures (its last verdict of each label) judged against A's; ``created``: when run A was made."""
    judge = Judge(_RunAsBaselines(before, created), Policy())
    comparison = Comparison(before, after, before_values=before.measurements())
    latest = {v.label: v for v in after.verdicts}
    for v in latest.values():
        tolerance = recorded_tolerance(v.tolerance)
        missing = (v.why or "not measured") if v.outcome is Outcome.NO_BASELINE and not math.isfinite(v.measured) \
            else None
        figure = Figure(v.label, v.measured, v.interval, v.note, v.pair, missing, v.subject)
        verdict = judge.verdict(after.model, figure, after.profile,
                                half_precision=is_half_precision(after.profile.dtype), paired_tolerance=tolerance,
                                marker_tolerance=tolerance, test=v.test,
                                against_stored=partial(_against_before, before, after, v))
        if verdict.outcome is Outcome.NO_BASELINE:
            verdict = replace(verdict, why=_not_comparable(comparison, verdict))
        comparison.verdicts.append(verdict)
    comparison.only_before = [name for name in comparison.before_values if name not in latest]
    return comparison


def recorded_tolerance(text: str | None) -> str | float | None:
    """A verdict's tolerance as written ("10%" or "0.5") in the form the judge takes it."""
    if text is None or text.endswith("%"):
        return text
    return float(text)


def _against_before(before: ModelRun, after: ModelRun, verdict: Verdict, baseline: float):
    """The interval of B's timed figure against A's, from both runs' per-request samples; None without them
    (a report written before verdicts named their samples: then B's own interval stands)."""
    if not verdict.timing or not verdict.statistic:
        return None
    earlier = next((v for v in reversed(before.verdicts) if v.label == verdict.label), None)
    if earlier is None or (earlier.timing, earlier.statistic) != (verdict.timing, verdict.statistic):
        return None
    interval = interval_against_samples(_samples(after, verdict), _samples(before, earlier), verdict.statistic,
                                        baseline)
    if interval is None:
        return None
    return interval, "CI of the change from run A, both runs' samples resampled"


def _samples(model_run: ModelRun, verdict: Verdict) -> list[float] | None:
    """The samples a figure summarises: the Timing it names, the same test's where several tests measured it."""
    found = [t for t in model_run.timings if t.name == verdict.timing]
    own = [t for t in found if t.test == (verdict.test or "")]
    return (own or found)[-1].samples if found else None


def _not_comparable(comparison: Comparison, verdict: Verdict) -> str:
    """Why B's figure met nothing of A's: B has no value, A never measured it, or the two identities differ."""
    if not math.isfinite(verdict.measured):
        return f"run B has no value: {verdict.why}"
    before = comparison.before_values.get(verdict.label)
    if before is None:
        name = parse_label(verdict.label)[0]
        shapes = [other for other in comparison.before_values if parse_label(other)[0] == name]
        return f"run A measured it at another shape only: {', '.join(shapes)}" if shapes else "run A did not measure it"
    if not math.isfinite(before):
        return "run A's figure is not a number"
    identities = f"run A ran as {comparison.before.profile}, run B as {comparison.after.profile}"
    # The judge's own reason adds what the identities alone do not say (a server's hardware nobody named).
    return identities if "another identity" in (verdict.why or "another identity") else f"{identities}; {verdict.why}"
