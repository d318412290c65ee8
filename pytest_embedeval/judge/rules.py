"""The judge: the one place where a figure meets its baseline, and the one place that says what fails.

A figure's identity is its model, its label (the metric and the shape the marker measured it at: "latency_p50_ms
(batch 1 x 16 tokens)"), and where and how its server ran (``HardwareProfile``: the hardware share, the engine,
the dtype, the deployment flags, paired or alone). A figure is judged only against a stored figure of the same
identity: times, rates and memory against the same hardware's; scores, vectors and shapes against any hardware's
of the same engine, dtype and deployment. Published figures (an article's, a model card's) never judge.

Tolerances, in order, the first one set wins:

    a paired figure:      the marker's paired_tolerance, the dtype's default, the metric's default
    a fixed baseline:     the dtype's default, the metric's default (nothing loosens "1.0 on every server")
    any other figure:     the marker's tolerance, the baseline entry's, the dtype's default, the metric's default

The defaults are the one table in ``facts/metrics.py`` (``CATALOGUE``: each metric's tolerance, and its
half-precision one).

Outcomes: a stored baseline's change counts only when the whole interval lies past the tolerance (another day's
noise is in no interval); a paired figure's when it is past the tolerance and its interval excludes no change
(both servers were measured in the same moments). An interval more than ``CANNOT_TELL`` times as wide as the
tolerance band is no evidence either way: "inconclusive", never a pass. A value outside its own interval is a
broken measurement: inconclusive too.

What fails (``Policy.fails``): not a number, always; regressed, unless accepted, and a fixed baseline never is;
no baseline and inconclusive under ``--embed-strict``. What an update writes (``Judge.changes``): a new figure,
one that improved past its tolerance, or any figure the user accepted; a figure that merely passed keeps its
baseline, so that small steps cannot walk a baseline away (four +8% runs are judged against the first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..facts.hardware import ANY, UNKNOWN, HardwareProfile
from ..facts.metrics import EXACT, HIGHER, Metric, Tolerance, label, metric, parse_label
from .verdicts import Outcome, Verdict, format_value

# An interval wider than this many tolerance bands (each band being the width baseline +- tolerance) cannot tell
# a change of the tolerance's size from none.
CANNOT_TELL = 2.0


@dataclass(frozen=True)
class Policy:
    """What fails a run: the options a user chose, in one place."""

    strict: bool = False  # a figure with no baseline, or one that cannot tell, fails
    update: bool = False  # this run's figures become the baselines of this hardware
    accept_regressions: bool = False  # with update: a regressed figure is written, and fails nothing

    def fails(self, verdict: Verdict) -> bool:
        if verdict.outcome is Outcome.NOT_A_NUMBER:
            return True  # never accepted, never written: there is nothing to accept
        if verdict.outcome is Outcome.REGRESSED:
            return not self.accept_regressions or is_fixed(verdict.metric)
        if verdict.outcome is Outcome.NO_BASELINE:
            return self.strict and not self.update  # an update is how a figure gets its baseline
        return verdict.outcome is Outcome.INCONCLUSIVE and self.strict


def is_fixed(metric_name: str) -> bool:
    return metric(metric_name).fixed_baseline is not None


def tolerance(definition: Metric, *, half_precision: bool, paired: str | float | None = None,
              marker: str | float | None = None, entry: Tolerance | None = None) -> Tolerance:
    """The tolerance a figure is judged with, in the order the module's docstring gives.

    Raises ValueError for a tolerance of the wrong kind (a percentage for a score, points for a time).
    """
    if definition.pair_unit is not None:
        chosen = paired
    elif definition.fixed_baseline is not None:
        chosen = None
    else:
        chosen = marker if marker is not None else entry
    if chosen is None:
        return definition.half_precision if half_precision and definition.half_precision else definition.tolerance
    parsed = chosen if isinstance(chosen, Tolerance) else Tolerance.parse(chosen)
    definition.check_tolerance(parsed)
    return parsed


def reference_min_cosine(dtype: str) -> float:
    """The least cosine of a served vector to the in-process reference's: fp32 servers match to rounding noise,
    half precision rounds every layer. reference_min_cosine's own tolerances (facts/metrics.py)."""
    from ..facts.vector_math import is_half_precision

    return 1.0 - tolerance(metric("reference_min_cosine"), half_precision=is_half_precision(dtype)).value


def applies(profile, here: HardwareProfile, hardware_bound: bool) -> bool:
    """Whether a stored profile's figures are of this identity's place: times, rates and memory need the same
    hardware share and the same pairing; every figure needs the same engine, dtype and deployment."""
    hardware = profile.hardware if hardware_bound else ANY
    return (hardware in (ANY, here.hardware) and profile.engine in (ANY, here.engine)
            and profile.dtype in (ANY, here.dtype) and profile.deployment == here.deployment
            and (profile.paired == here.paired or not hardware_bound))


def find(baselines, figure_label: str, here: HardwareProfile):
    """(profile, entry) of the measured baseline of this identity, or None: this hardware's own first, then an
    exact profile, then the newest."""
    bound = metric(parse_label(figure_label)[0]).hardware_bound
    if bound and here.hardware == UNKNOWN:
        return None
    candidates = [p for p in baselines.profiles.values() if p.source == "measured" and figure_label in p.metrics
                  and not p.metrics[figure_label].disputed and applies(p, here, bound)]
    if not candidates:
        return None
    key = (lambda p: (p.hardware == here.hardware, p.is_exact, p.date)) if bound else (lambda p: p.date)
    best = max(candidates, key=key)
    return best, best.metrics[figure_label]


def published(baselines, figure_label: str, measured: float) -> str | None:
    """The published figures of this metric (of this shape, or of no stated shape), with the difference; a figure
    of no stated shape (a test's own) is shown beside the published ones of any shape."""
    name, shape = parse_label(figure_label)
    definition, shown = metric(name), []
    for profile in baselines.profiles.values():
        entry = profile.metrics.get(figure_label) or profile.metrics.get(name) or (None if shape else next(
            (e for stored, e in profile.metrics.items() if parse_label(stored)[0] == name), None))
        if profile.source == "measured" or entry is None:
            continue
        where = f" on {profile.hardware}" if definition.hardware_bound and profile.hardware != ANY else ""
        text = f"{profile.name} {format_value(entry.value, definition.unit)}{where}"
        if entry.disputed:
            text += " (disputed)"
        elif definition.tolerance.relative and entry.value and math.isfinite(measured):
            text += f": {(measured - entry.value) / abs(entry.value):+.0%}"
        elif math.isfinite(measured):
            text += f": {measured - entry.value:+.4g}"
        shown.append(text)
    return "; ".join(shown) or None


def other_identities(baselines, figure_label: str, here: HardwareProfile) -> list[str]:
    """Stored figures of the same metric that do not judge this one (another shape, deployment or place)."""
    name = parse_label(figure_label)[0]
    bound = metric(name).hardware_bound
    return sorted({f"{stored} in profile {p.name!r}" for p in baselines.profiles.values() if p.source == "measured"
                   for stored in p.metrics if parse_label(stored)[0] == name
                   and not (stored == figure_label and applies(p, here, bound))})


def compare(definition: Metric, measured: float, baseline: float | None, band_tolerance: Tolerance | None = None,
            *, interval: tuple[float, float] | None = None) -> tuple[Outcome, str | None]:
    """The outcome of one figure against one baseline, and why it cannot tell where it cannot."""
    band_tolerance = band_tolerance or definition.tolerance
    if definition.fixed_baseline is not None:
        baseline = definition.fixed_baseline
    if interval is not None and not all(math.isfinite(x) for x in interval):
        interval = None  # a bootstrap over degenerate samples: judge the point estimate alone
    if not math.isfinite(measured):
        return Outcome.NOT_A_NUMBER, None
    if baseline is None:
        return Outcome.NO_BASELINE, None
    band = band_tolerance.band(baseline)
    low, high = interval if interval else (measured, measured)
    slack = 1e-6 * max(abs(low), abs(high), 1.0)  # stored figures are rounded to 6 decimals
    if not low - slack <= measured <= high + slack:
        return Outcome.INCONCLUSIVE, (f"the measured value lies outside its own 95% interval "
                                      f"({low:.6g}..{high:.6g}): the measurement is unsound")
    if definition.better == EXACT:
        return (Outcome.PASSED if abs(measured - baseline) <= band else Outcome.REGRESSED), None
    higher = definition.better == HIGHER
    if definition.pair_unit is not None:
        # Both servers in the same moments, on the same items: past the tolerance, and no change outside the CI.
        up, down = measured > baseline + band and low > baseline, measured < baseline - band and high < baseline
    else:
        # A stored baseline's run had another day's noise, which no interval holds: the whole CI past the band.
        up, down = low > baseline + band, high < baseline - band
    worse, better = (down, up) if higher else (up, down)
    if worse:
        return Outcome.REGRESSED, None
    if better:
        return Outcome.IMPROVED, None
    if interval and band and high - low > CANNOT_TELL * 2 * band:
        return Outcome.INCONCLUSIVE, (f"its 95% interval {high - low:.4g} wide cannot tell a change of "
                                      f"{band_tolerance} from none (more than {CANNOT_TELL:g}x the tolerance band): "
                                      "measure more requests or items")
    return Outcome.PASSED, None


@dataclass(frozen=True)
class Figure:
    """What a marker or a test measured, as the judge needs it."""

    label: str  # metric, and the shape it was measured at
    value: float
    interval: tuple[float, float] | None = None
    note: str | None = None
    pair: tuple[float, float] | None = None
    missing: str | None = None  # why there is no value: a stored input this run needs is not there
    subject: str | None = None  # what within the server it is about: "worker 2 of 2 (http://...)"


class Judge:
    """The verdicts of one run: its policy, and the store's baselines as plain data."""

    def __init__(self, baselines, policy: Policy):
        self.baselines = baselines  # store.BaselineStore
        self.policy = policy

    def verdict(self, model: str, figure: Figure, here: HardwareProfile, *, half_precision: bool,
                paired_tolerance=None, marker_tolerance=None, test: str | None = None,
                against_stored=None) -> Verdict:
        """The one verdict of a figure. ``against_stored(baseline_value) -> (interval, note) | None``: the
        interval of the change against the run that wrote the baseline, where its samples or items are stored.
        Raises ValueError naming an unknown metric or a tolerance of the wrong kind."""
        name, shape = parse_label(figure.label)
        try:
            definition = metric(name)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        stored = self.baselines.for_model(model)
        found = None if definition.fixed_baseline is not None else find(stored, figure.label, here)
        entry = found[1] if found else None
        chosen = tolerance(definition, half_precision=half_precision, paired=paired_tolerance,
                           marker=marker_tolerance, entry=entry.tolerance if entry else None)
        interval, note = figure.interval, figure.note
        if entry is not None and against_stored is not None and (better := against_stored(entry.value)):
            interval, note = better[0], f"{note}; {better[1]}" if note else better[1]
        baseline = definition.fixed_baseline if definition.fixed_baseline is not None else (
            entry.value if entry else None)
        if figure.missing:
            outcome, why = Outcome.NO_BASELINE, figure.missing
        else:
            outcome, why = compare(definition, figure.value, baseline, chosen, interval=interval)
        if outcome is Outcome.NO_BASELINE and not figure.missing:
            why = self._no_baseline(stored, figure.label, here, definition)
        profile, source = ("built in", "every server") if definition.fixed_baseline is not None else (
            (found[0].name, found[0].source) if found else (str(here), None))
        judged = outcome is not Outcome.NO_BASELINE
        verdict = Verdict(model=model, metric=name, shape=shape, unit=definition.unit, measured=figure.value,
                          outcome=outcome, baseline=baseline if judged else None,
                          tolerance=str(chosen) if judged else None, profile=profile, source=source,
                          interval=interval, test=test, note=note, pair=figure.pair,
                          published=published(stored, figure.label, figure.value), why=why, subject=figure.subject)
        return replace(verdict, failing=self.policy.fails(verdict))

    @staticmethod
    def _no_baseline(stored, figure_label: str, here: HardwareProfile, definition: Metric) -> str | None:
        if definition.hardware_bound and here.hardware == UNKNOWN:
            return ("the server's hardware is unknown (it is not this machine: --embed-url); name it with "
                    "--embed-hardware KEY to judge and record its times, rates and memory")
        others = other_identities(stored, figure_label, here)
        return f"stored figures of another identity do not judge it: {'; '.join(others)}" if others else None

    def changes(self, verdicts: list[Verdict], here: HardwareProfile, current) -> list:
        """What an update does with each figure (``store.Change``), decided here and written by the store.

        ``current``: the model's baselines as the store holds them now (re-read under its lock)."""
        from ..store import Change

        latest = {}
        for v in verdicts:
            if not is_fixed(v.metric):
                latest[label(v.metric, v.shape)] = v  # the last verdict of each identity
        changes = []
        for figure_label, v in sorted(latest.items()):
            home = home_of(v.metric, here)
            profile = current.profiles.get(home_name(home))
            old = profile.metrics.get(figure_label) if profile else None
            if v.outcome is Outcome.NO_BASELINE and not math.isfinite(v.measured):
                action = "skipped: not measured"  # a figure whose stored input was missing: nothing to write
            elif v.outcome is Outcome.NOT_A_NUMBER:
                action = "refused: not a number"
            elif metric(v.metric).hardware_bound and here.hardware == UNKNOWN:
                action = "refused: unknown hardware (--embed-hardware)"
            elif v.outcome is Outcome.INCONCLUSIVE:
                action = "refused: cannot tell"
            elif v.outcome is Outcome.REGRESSED:
                action = "accepted regression" if self.policy.accept_regressions else "refused: regressed"
            elif old is None:
                action = "new"
            elif old.value == v.measured:
                action = "unchanged"
            elif v.outcome is Outcome.IMPROVED:
                action = "improved"
            elif self.policy.accept_regressions:
                action = "moved on request"
            else:  # passed: the baseline stays where it was accepted
                action = "kept: passed, the baseline stays"
            changes.append(Change(figure_label, home, old.value if old else None, v.measured, action, v))
        return changes


def home_of(metric_name: str, here: HardwareProfile) -> HardwareProfile:
    """The profile a figure is stored in: times, rates and memory in this hardware's; the rest in any
    hardware's of the same engine, dtype and deployment."""
    return here if metric(metric_name).hardware_bound else replace(here, hardware=ANY, paired=False)


def home_name(home: HardwareProfile) -> str:
    from ..store import profile_name

    return profile_name(home)
