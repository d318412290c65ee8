"""The run session: every figure of a run, recorded once, judged once.

Every figure of a run passes through ``RunSession.record`` once: the judge (``judge/rules.py``) makes its verdict,
the session keeps it, and that same verdict is what fails a test, what the update writes or refuses, what every
report shows and what an xdist worker hands to the controller. Markers only measure (``measure/markers/``); the
session decides whether a timed figure that regressed is measured a second time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from ..judge.rules import Figure, Judge, Policy
from ..measure.markers import MARKERS, TIMED, Measured, Measurement, MeasurementError, Target
from ..facts.metrics import label
from ..facts.server_access import redact_url
from .record import ModelRun, Run, launch_record, machine_info, model_run_for
from ..store import BaselineError, Change, Store, profile_name, vectors_name
from ..store.baselines import update as update_baselines
from ..judge.verdicts import Outcome, Verdict

__all__ = ["Policy", "RunSession"]


@dataclass
class _Pending:
    """What an update may store beside the TOML: written for the figures whose values the update moves."""

    vectors: tuple | None = None  # the probe texts and vectors, behind drift_min_cosine
    timings: list = field(default_factory=list)  # (labels of the marker's figures, Timing)
    items: dict = field(default_factory=dict)  # an accuracy figure's label -> its per-item values


class RunSession:
    """One run: the store, the policy, and every verdict, recorded once."""

    def __init__(self, store: Store, policy: Policy, progress: Callable[[str], None] = print):
        self.store = store
        self.policy = policy
        self._judge = Judge(store.baselines, policy)
        self.progress = progress
        self.run = Run()
        self.updates: dict[str, list[Change]] = {}  # model -> what the update wrote, kept or refused
        self.written: list = []  # the report files written at the end
        self._pending: dict[str, _Pending] = {}
        self._stored_timings: dict[tuple[str, str], dict] = {}  # (model, profile) -> the baseline run's samples

    @classmethod
    def for_settings(cls, settings, progress: Callable[[str], None] = print) -> "RunSession":
        """The session of a run with these settings; raises BaselineError for a broken baseline file."""
        policy = Policy(settings.strict, settings.update_baselines, settings.accept_regressions)
        return cls(Store(settings.baselines), policy, progress)

    def open_server(self, server, *, hardware: str | None = None, paired: bool = False) -> ModelRun:
        """The record of one model's server in this run: where its figures are kept and judged."""
        return self.open_model(model_run_for(server, hardware=hardware, paired=paired))

    def open_model(self, model_run: ModelRun) -> ModelRun:
        profile_name(model_run.profile)  # a name that cannot be a file name fails here, before any figure
        self.run.models[model_run.model] = model_run
        self._pending[model_run.model] = _Pending()
        return model_run

    # -- judging -----------------------------------------------------------------------------------

    def judge(self, model_run: ModelRun, measurement: Measurement, *, tolerance=None, paired_tolerance=None,
              test: str | None = None, timings: list = ()) -> Verdict:
        """The verdict on one figure; records nothing. Raises ValueError naming a bad metric or tolerance."""
        from ..facts.vector_math import is_half_precision

        dtypes = [model_run.profile.dtype]
        if measurement.metric.startswith("paired"):  # either server's half precision rounds the pair's figure
            dtypes.append(model_run.server.get("incumbent", {}).get("dtype", ""))
        figure = Figure(label(measurement.metric, measurement.shape), float(measurement.value),
                        measurement.interval, measurement.note, measurement.pair, measurement.missing,
                        measurement.subject)

        def against_stored(baseline: float):
            return (self._against_stored_samples(model_run, measurement, timings, baseline)
                    or self._against_stored_items(model_run, measurement, baseline))

        verdict = self._judge.verdict(model_run.model, figure, model_run.profile,
                                      half_precision=any(is_half_precision(d) for d in dtypes),
                                      paired_tolerance=paired_tolerance, marker_tolerance=tolerance, test=test,
                                      against_stored=against_stored)
        # The record says which samples the figure summarises, so that a later run can be judged against them.
        return replace(verdict, timing=measurement.timing, statistic=measurement.statistic)

    def _against_stored_items(self, model_run: ModelRun, measurement: Measurement, baseline: float):
        """An accuracy figure's interval of the change from the run that wrote its baseline, when that run's items
        are stored and are the figure the baseline holds: both runs' items resampled together. None otherwise
        (then the figure's own interval stands: another set of that many items)."""
        if not measurement.items:
            return None
        stored = self.store.items.load(model_run.model, vectors_name(model_run.profile),
                                       label(measurement.metric, measurement.shape))
        if stored is None:
            return None
        from ..measure.accuracy.items import score
        from ..measure.accuracy.paired import paired_difference_interval

        difference = paired_difference_interval(measurement.items, stored)
        if difference is None or abs(100 * score(stored) - baseline) > 1e-3:  # a hand-edited figure: no pairing
            return None
        return ((baseline + 100 * difference[0], baseline + 100 * difference[1]),
                "CI of the change from the baseline run, the same items resampled together")

    def _against_stored_samples(self, model_run: ModelRun, measurement: Measurement, timings, baseline: float):
        """A timed figure's interval against the baseline run's own samples, when they are stored and are the
        figure the baseline holds: both runs resampled, so the baseline's own noise counts. None otherwise."""
        if not measurement.timing:
            return None
        samples = next((t.samples for t in timings if t.name == measurement.timing), None)
        key = (model_run.model, profile_name(model_run.profile))
        if key not in self._stored_timings:  # read once a run: the file changes only when the run ends
            try:
                self._stored_timings[key] = self.store.timings.load(*key)
            except BaselineError as exc:  # a broken file: name it, rather than judge without it
                raise MeasurementError(str(exc)) from None
        interval = interval_against_samples(samples, self._stored_timings[key].get(measurement.timing),
                                            measurement.statistic, baseline)
        if interval is None:
            return None
        return interval, "CI of this run against the baseline run, both runs' samples resampled"

    def record(self, model_run: ModelRun, measurements: list[Measurement], *, tolerance=None,
               paired_tolerance=None, test: str | None = None, timings: list = ()) -> list[Verdict]:
        """Judge each figure once and keep the verdict."""
        verdicts = [self.judge(model_run, m, tolerance=tolerance, paired_tolerance=paired_tolerance, test=test,
                               timings=timings) for m in measurements]
        model_run.verdicts.extend(verdicts)
        return verdicts

    @staticmethod
    def failing(verdicts: list[Verdict]) -> list[Verdict]:
        return [v for v in verdicts if v.failing]

    # -- markers -----------------------------------------------------------------------------------

    def target(self, model_run: ModelRun, server, client, settings, incumbent: tuple | None = None) -> Target:
        """What a marker measures: the server through the run's one counted client, the stored vectors, and
        in a paired run the incumbent ``(server, client)`` to measure beside it."""
        timeout = settings.request_timeout
        paired = (Target(*incumbent, api_key=incumbent[0].api_key, timeout=timeout, progress=self.progress)
                  if incumbent else None)
        return Target(server, client, api_key=server.api_key, progress=self.progress, update=self.policy.update,
                      timeout=timeout, incumbent=paired, mteb_results=settings.mteb_results,
                      stored_vectors=lambda: self.store.vectors.load(model_run.model, vectors_name(model_run.profile)))

    def open_incumbent(self, model_run: ModelRun, server, described: str) -> None:
        """Note in the run's record which server the candidate's paired figures were measured against."""
        model_run.server["incumbent"] = {
            "described": described, "url": redact_url(server.url), "software": server.engine_info()[1],
            "dtype": server.dtype, **launch_record(server)}

    def measure(self, model_run: ModelRun, marker: str, target: Target, arguments: dict, judging: dict | None = None,
                test: str | None = None) -> list[Verdict]:
        """Run a marker with its measuring ``arguments`` and record its figures, judged with ``judging``
        (the marker's tolerance and paired_tolerance, ``markers.arguments``).

        One window of a shared runner can be slow for reasons that are not the server's. A timed
        figure that regressed is measured in a second, independent window, and the second decides:
        a noisy minute then fails a test only if it happens twice in a row, a slower server every time.
        """
        tolerances = {"tolerance": None, "paired_tolerance": None, **(judging or {})}
        measured = _run_marker(marker, target, arguments)
        if marker in TIMED:
            first = [self.judge(model_run, m, **tolerances, timings=measured.timings) for m in measured.measurements]
            regressed = {v.metric: v.measured for v in first if v.outcome is Outcome.REGRESSED}
            if regressed:
                self.progress(f"@pytest.mark.{marker}: {', '.join(regressed)} regressed; measuring again to tell "
                              "a slower server from a noisy minute")
                again = _run_marker(marker, target, arguments)
                measured = Measured(
                    [replace(m, note=f"{m.note}; second run, the first regressed ({regressed[m.metric]:.4g})")
                     if m.metric in regressed else m for m in again.measurements],
                    again.timings, again.vectors)
        for timing in measured.timings:
            timing.test = test or ""
        verdicts = self.record(model_run, measured.measurements, **tolerances, test=test, timings=measured.timings)
        model_run.timings.extend(measured.timings)
        # What an update may store beside the figures, written at the end where the figures' values move.
        pending = self._pending[model_run.model]
        figures = frozenset(v.label for v in verdicts)
        pending.timings.extend((figures, t) for t in measured.timings)
        pending.vectors = measured.vectors or pending.vectors
        pending.items.update({label(m.metric, m.shape): m.items for m in measured.measurements if m.items})
        return verdicts

    def count_requests(self, model_run: ModelRun, client, before: tuple[int, int], test: str | None = None,
                       server: str = "") -> list[Verdict]:
        """The attempts ``client`` made since it counted ``before`` (attempts, failed attempts); any that
        failed is a verdict of its own, even when retries hid it. ``server``: "incumbent" for the paired
        incumbent's client, whose failures are its own figure."""
        attempts, failed = client.attempts - before[0], client.failed_attempts - before[1]
        counts = model_run.requests.setdefault(server or "candidate", {"attempts": 0, "failed": 0})
        counts["attempts"] += attempts
        counts["failed"] += failed
        if not failed:
            return []
        return self.record(model_run, [_failed_share(attempts, failed, "this test's", server)], test=test)

    def after_test(self, model_run: ModelRun, counted: dict, server, test: str | None = None) -> list[Verdict]:
        """What a test's end records beside its markers' figures: the failed attempts of each client in ``counted``
        ({"" or "incumbent": (client, its counts before the test)}), and a fleet's workers that died."""
        verdicts = [verdict for whose, (client, before) in counted.items()
                    for verdict in self.count_requests(model_run, client, before, test, whose)]
        return verdicts + self.count_dead_workers(model_run, server, test)

    def count_dead_workers(self, model_run: ModelRun, server, test: str | None = None) -> list[Verdict]:
        """A fleet's workers that died since the last look: each a failing verdict of its own, named, once; the
        gateway may hide a death from every request (it retries on the others)."""
        dead = getattr(server, "dead_workers", lambda: [])()
        reported = model_run.server.setdefault("dead_workers", [])
        new = [worker for worker in dead if str(worker) not in reported]
        reported.extend(str(worker) for worker in new)
        return self.record(model_run, [Measurement(
            "dead_workers", float(len(dead)), None,
            f"{len(dead)} of the fleet's {len(server.workers)} workers no longer run; its log: "
            f"{server.workers[worker.index - 1].log_path}", None, subject=str(worker)) for worker in new], test=test)

    # -- the end -----------------------------------------------------------------------------------

    def finish(self, *, interrupted: bool = False, controller: bool = True) -> None:
        """Record the run-wide figures and, in an update, write the baselines from the recorded verdicts.

        An interrupted run measured only part of what it set out to: it never rewrites baselines.
        ``controller`` is False on an xdist worker: it stores its own probe files, and the controller,
        the one writer of the TOML files, updates from the merged verdicts.
        """
        if controller:
            for model_run in self.run.models.values():
                for server, counts in model_run.requests.items():
                    if counts["attempts"]:
                        self.record(model_run, [_failed_share(counts["attempts"], counts["failed"], "the run's",
                                                              "" if server == "candidate" else server)])
        if not self.policy.update or interrupted:
            return
        for model, model_run in self.run.models.items():
            if not model_run.verdicts:
                continue
            decide = partial(self._judge.changes, model_run.verdicts, model_run.profile)  # given the file as it is
            if controller:
                changes = self.updates[model] = update_baselines(
                    self.store.directory, model, decide, machine=model_run.machine, software=model_run.software)
            else:  # an xdist worker decides the same from the file as it is; the controller writes the TOML
                changes = decide(self.store.baselines.for_model(model))
            self._store_beside(model_run, {c.metric for c in changes if c.moves})

    def _store_beside(self, model_run: ModelRun, moved: set[str]) -> None:
        """The samples, items and probe vectors behind the figures whose values an update moved, and no others:
        a baseline and the run it is checked against stay one run."""
        pending, model = self._pending[model_run.model], model_run.model
        if pending.vectors is not None and "drift_min_cosine" in moved:
            model_run.stored_files.append(str(self.store.vectors.save(
                model, vectors_name(model_run.profile), *pending.vectors)))
        timings = [timing for figures, timing in pending.timings if figures & moved]
        if timings:
            model_run.stored_files.append(str(self.store.timings.save(
                model, profile_name(model_run.profile), timings, machine_info(model_run))))
        for figure_label, groups in pending.items.items():
            if figure_label in moved:
                model_run.stored_files.append(str(self.store.items.save(
                    model, vectors_name(model_run.profile), figure_label, groups)))

    @property
    def refused_updates(self) -> list[Change]:
        return [c for changes in self.updates.values() for c in changes if c.refused]

    @property
    def failed(self) -> bool:
        """Whether the run as a whole failed: a failing verdict, or an update that was refused."""
        return bool(self.failing(self.run.verdicts()) or self.refused_updates)

    # -- xdist -------------------------------------------------------------------------------------

    def merge(self, worker_report: str) -> None:
        """Add an xdist worker's recorded verdicts to this (the controller's) run, judged as they were."""
        import json

        for model, worker in Run.from_dict(json.loads(worker_report)).models.items():
            mine = self.run.models.get(model)
            if mine is None:
                self.run.models[model] = worker
                continue
            mine.verdicts.extend(worker.verdicts)
            mine.stored_files.extend(worker.stored_files)
            mine.timings.extend(worker.timings)
            for server, counts in worker.requests.items():
                mine_counts = mine.requests.setdefault(server, {"attempts": 0, "failed": 0})
                for key, count in counts.items():
                    mine_counts[key] += count


def interval_against_samples(samples, stored, statistic: str, baseline: float) -> tuple[float, float] | None:
    """A timed figure's 95% interval against another run's samples of it (seconds; ``baseline``, in ms, is the
    figure those samples give): both runs resampled, so the other run's own noise counts too. None where either
    run has no samples, or where ``baseline`` is not their ``statistic`` (a hand-edited figure)."""
    import math

    from ..measure import stats

    if not samples or not stored:
        return None
    summary = stats.STATISTICS[statistic]
    if not math.isclose(baseline, float(summary(stored)) * 1000, rel_tol=1e-3):
        return None
    ratio = stats.ratio_interval(samples, stored, summary)
    return baseline * ratio[0], baseline * ratio[1]


def _run_marker(marker: str, target: Target, arguments: dict) -> Measured:
    from ..serve.client import EmbeddingRequestError

    try:
        return MARKERS[marker](target, **arguments)
    except EmbeddingRequestError as exc:  # a request that failed for good: the sentence, not a traceback
        raise MeasurementError(f"{type(exc).__name__}: {exc}") from None


def _failed_share(attempts: int, failed: int, whose: str, server: str = "") -> Measurement:
    return Measurement("failed_requests_percent", 100.0 * failed / attempts, None,
                       f"{failed} of {whose} {attempts} request attempts got a server error or no answer "
                       "(the client retried them)", server or None)
