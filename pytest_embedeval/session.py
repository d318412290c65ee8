"""The run session: the one judge of a run, without pytest.

Every figure of a run passes through ``RunSession.record`` once: it is compared with its baseline
there, the verdict is kept, and that same verdict is what fails a test, what the update writes or
refuses, what every report shows and what an xdist worker hands to the controller. Markers only
measure (``markers.py``); the session decides whether a timed figure that regressed is measured a
second time, and which verdicts fail under the run's policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .markers import MARKERS, TIMED, Measured, Measurement, MeasurementError, Target
from .metrics import Tolerance, metric
from .results import ModelRun, Run
from .store import BaselineError, Change, Store, profile_name, vectors_name
from .store.baselines import update as update_baselines
from .verdicts import Outcome, Verdict


@dataclass(frozen=True)
class Policy:
    """What fails a run: the options a user chose, in one place."""

    strict: bool = False  # a figure with no baseline for this hardware fails
    update: bool = False  # this run's figures become the baselines of this hardware
    accept_regressions: bool = False  # with update: a regressed figure is written, and fails nothing

    def fails(self, verdict: Verdict) -> bool:
        if verdict.outcome is Outcome.NOT_A_NUMBER:
            return True  # never accepted, never written: there is nothing to accept
        if verdict.outcome is Outcome.REGRESSED:
            return not self.accept_regressions
        return verdict.outcome is Outcome.NO_BASELINE and self.strict and not self.update


@dataclass
class _Pending:
    """What an update stores beside the TOML, from markers whose figures all passed."""

    vectors: tuple | None = None
    timings: list = field(default_factory=list)
    items: dict = field(default_factory=dict)  # accuracy metric -> its per-item values


class RunSession:
    """One run: the store, the policy, and every verdict, recorded once."""

    def __init__(self, store: Store, policy: Policy, progress: Callable[[str], None] = print):
        self.store = store
        self.policy = policy
        self.progress = progress
        self.run = Run()
        self.updates: dict[str, list[Change]] = {}  # model -> what the update wrote or refused
        self.written: list = []  # the report files written at the end
        self._pending: dict[str, _Pending] = {}
        self._stored_timings: dict[tuple[str, str], dict] = {}  # (model, profile) -> the baseline run's samples

    @classmethod
    def for_settings(cls, settings, progress: Callable[[str], None] = print) -> "RunSession":
        """The session of a run with these settings; raises BaselineError for a broken baseline file."""
        policy = Policy(settings.strict, settings.update_baselines, settings.accept_regressions)
        return cls(Store(settings.baselines), policy, progress)

    def open_server(self, server, *, hardware: str | None = None, api_key: str | None = None) -> ModelRun:
        """The record of one model's server in this run: where its figures are kept and judged."""
        from .hardware import HardwareProfile, describe
        from .results import model_facts

        detected, machine = describe(server.device, getattr(server, "gpus", None))
        engine, software = server.engine_info()
        model_run = ModelRun(
            model=server.spec.alias,
            profile=HardwareProfile(hardware or detected, engine, server.dtype),
            machine=machine,
            software=software,
            server={"url": server.url, "boot_seconds": server.boot_seconds, **launch_record(server, api_key)},
            facts=model_facts(server.spec),
        )
        return self.open_model(model_run)

    def open_model(self, model_run: ModelRun) -> ModelRun:
        profile_name(model_run.profile)  # a name that cannot be a file name fails here, before any figure
        self.run.models[model_run.model] = model_run
        self._pending[model_run.model] = _Pending()
        return model_run

    # -- judging -----------------------------------------------------------------------------------

    def judge(self, model_run: ModelRun, measurement: Measurement, *, tolerance=None, test: str | None = None,
              timings: list = ()) -> Verdict:
        """The verdict on one figure; records nothing. Raises ValueError naming a bad metric or tolerance."""
        try:
            definition = metric(measurement.metric)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        # A paired figure's own tolerance (the marker's paired_tolerance) was set for it alone: it beats the
        # marker's tolerance, which is written for the candidate's figures against their stored baselines.
        own_first = measurement.pair is not None and measurement.tolerance is not None
        chosen = measurement.tolerance if own_first or tolerance is None else tolerance
        parsed = None
        if chosen is not None:
            parsed = Tolerance.parse(chosen)
            definition.check_tolerance(parsed)
        ratio, sampled = self._against_stored_samples(model_run, measurement, timings)
        interval, note = self._against_stored_items(model_run, measurement)
        return self.store.baselines.for_model(model_run.model).compare(
            measurement.metric, float(measurement.value), model_run.profile, tolerance=parsed,
            interval=interval, test=test, note=note, ratio_interval=ratio, sampled_baseline=sampled,
            pair=measurement.pair)

    def _against_stored_items(self, model_run: ModelRun, measurement: Measurement) -> tuple:
        """An accuracy figure's interval against the run that wrote its baseline, when that run's items are
        stored and are the figure the baseline holds: both runs' items resampled together, so the interval
        is that of the change. Else the figure's own interval (another set of that many items)."""
        if not measurement.items:
            return measurement.interval, measurement.note
        found = self.store.baselines.for_model(model_run.model).find(measurement.metric, model_run.profile)
        stored = self.store.items.load(model_run.model, vectors_name(model_run.profile), measurement.metric)
        if found is None or stored is None:
            return measurement.interval, measurement.note
        from .accuracy.items import score
        from .accuracy.paired import paired_difference_interval

        baseline = found[1].value
        difference = paired_difference_interval(measurement.items, stored)
        if difference is None or abs(100 * score(stored) - baseline) > 1e-3:  # a hand-edited figure: no pairing
            return measurement.interval, measurement.note
        return ((baseline + 100 * difference[0], baseline + 100 * difference[1]),
                f"{measurement.note}; CI of the change from the baseline run, the same items resampled together")

    def _against_stored_samples(self, model_run: ModelRun, measurement: Measurement, timings) -> tuple:
        """(ratio interval, the baseline run's own figure) when the baseline run's samples are stored."""
        if not measurement.timing:
            return None, None
        from .measure import stats

        samples = next((t.samples for t in timings if t.name == measurement.timing), None)
        key = (model_run.model, profile_name(model_run.profile))
        if key not in self._stored_timings:  # read once a run: the file changes only when the run ends
            try:
                self._stored_timings[key] = self.store.timings.load(*key)
            except BaselineError as exc:  # a broken file: name it, rather than judge without it
                raise MeasurementError(str(exc)) from None
        stored = self._stored_timings[key]
        baseline = stored.get(measurement.timing)
        if not samples or not baseline:
            return None, None
        statistic = stats.STATISTICS[measurement.statistic]
        return stats.ratio_interval(samples, baseline, statistic), float(statistic(baseline)) * 1000

    def record(self, model_run: ModelRun, measurements: list[Measurement], *, tolerance=None,
               test: str | None = None, timings: list = ()) -> list[Verdict]:
        """Judge each figure once and keep the verdict: the only place a verdict is made."""
        verdicts = [self.judge(model_run, m, tolerance=tolerance, test=test, timings=timings) for m in measurements]
        model_run.verdicts.extend(verdicts)
        return verdicts

    def failing(self, verdicts: list[Verdict]) -> list[Verdict]:
        return [v for v in verdicts if self.policy.fails(v)]

    # -- markers -----------------------------------------------------------------------------------

    def target(self, model_run: ModelRun, server, client, settings, reference: tuple | None = None) -> Target:
        """What a marker measures: the server through the run's one counted client, the stored vectors, and
        in a paired run the reference ``(server, client)`` to measure beside it."""
        api_key, timeout = settings.api_key, settings.request_timeout
        paired = Target(*reference, api_key=api_key, timeout=timeout, progress=self.progress) if reference else None
        return Target(server, client, api_key=api_key, progress=self.progress, update=self.policy.update,
                      timeout=timeout, reference=paired, mteb_results=settings.mteb_results,
                      stored_vectors=lambda: self.store.vectors.load(model_run.model, vectors_name(model_run.profile)))

    def open_reference(self, model_run: ModelRun, server, described: str) -> None:
        """Note in the run's record which server the candidate's paired figures were measured against."""
        model_run.server["reference"] = {
            "described": described, "url": server.url, "software": server.engine_info()[1],
            **launch_record(server, None)}

    def measure(self, model_run: ModelRun, marker: str, target: Target, arguments: dict,
                test: str | None = None) -> list[Verdict]:
        """Run a marker and record its figures.

        One window of a shared runner can be slow for reasons that are not the server's. A timed
        figure that regressed is measured in a second, independent window, and the second decides:
        a noisy minute then fails a test only if it happens twice in a row, a slower server every time.
        """
        arguments = dict(arguments)
        tolerance = arguments.get("tolerance")
        measured = _run_marker(marker, target, arguments)
        if marker in TIMED:
            first = [self.judge(model_run, m, tolerance=tolerance, timings=measured.timings)
                     for m in measured.measurements]
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
        verdicts = self.record(model_run, measured.measurements, tolerance=tolerance, test=test,
                               timings=measured.timings)
        model_run.timings.extend(measured.timings)
        if not self.failing(verdicts):  # only what passed may become a baseline
            pending = self._pending[model_run.model]
            pending.timings.extend(measured.timings)
            pending.vectors = measured.vectors or pending.vectors
            pending.items.update({m.metric: m.items for m in measured.measurements if m.items})
        return verdicts

    def count_requests(self, model_run: ModelRun, client, before: tuple[int, int],
                       test: str | None = None) -> list[Verdict]:
        """The attempts ``client`` made since it counted ``before`` (attempts, failed attempts); any that
        failed is a verdict of its own, even when retries hid it."""
        attempts, failed = client.attempts - before[0], client.failed_attempts - before[1]
        model_run.requests["attempts"] = model_run.requests.get("attempts", 0) + attempts
        model_run.requests["failed"] = model_run.requests.get("failed", 0) + failed
        if not failed:
            return []
        return self.record(model_run, [_failed_share(attempts, failed, "this test's")], test=test)

    # -- the end -----------------------------------------------------------------------------------

    def finish(self, *, interrupted: bool = False, controller: bool = True) -> None:
        """Record the run-wide figures and, in an update, write the baselines from the recorded verdicts.

        An interrupted run measured only part of what it set out to: it never rewrites baselines.
        ``controller`` is False on an xdist worker: it stores its own probe files, and the controller,
        the one writer of the TOML files, updates from the merged verdicts.
        """
        if controller:
            for model_run in self.run.models.values():
                attempts, failed = model_run.requests.get("attempts", 0), model_run.requests.get("failed", 0)
                if attempts:
                    self.record(model_run, [_failed_share(attempts, failed, "the run's")])
        if not self.policy.update or interrupted:
            return
        for model, pending in self._pending.items():
            model_run = self.run.models[model]
            profile = profile_name(model_run.profile)
            if pending.vectors is not None:
                model_run.stored_files.append(str(self.store.vectors.save(
                    model, vectors_name(model_run.profile), *pending.vectors)))
            if pending.timings:
                model_run.stored_files.append(str(self.store.timings.save(
                    model, profile, pending.timings, machine_info(model_run))))
            for metric_name, groups in pending.items.items():
                model_run.stored_files.append(str(self.store.items.save(
                    model, vectors_name(model_run.profile), metric_name, groups)))
        if not controller:
            return
        for model_run in self.run.models.values():
            if model_run.verdicts:
                self.updates[model_run.model] = update_baselines(
                    self.store.directory, model_run.model, model_run.profile, model_run.verdicts,
                    machine=model_run.machine, software=model_run.software,
                    accept_regressions=self.policy.accept_regressions)

    @property
    def refused_updates(self) -> list[Change]:
        return [c for changes in self.updates.values() for c in changes if not c.written]

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
            for key, count in worker.requests.items():
                mine.requests[key] = mine.requests.get(key, 0) + count


def _run_marker(marker: str, target: Target, arguments: dict) -> Measured:
    from .client import EmbeddingRequestError

    try:
        return MARKERS[marker](target, **arguments)
    except EmbeddingRequestError as exc:  # a request that failed for good: the sentence, not a traceback
        raise MeasurementError(f"{type(exc).__name__}: {exc}") from None


def _failed_share(attempts: int, failed: int, whose: str) -> Measurement:
    return Measurement("failed_requests_percent", 100.0 * failed / attempts, None,
                       f"{failed} of {whose} {attempts} request attempts got a server error or no answer "
                       "(the client retried them)")


def machine_info(model_run: ModelRun) -> dict:
    """What pytest-benchmark's machine info lacks: the baseline profile and the accelerator."""
    return {"embedeval_profile": profile_name(model_run.profile), "embedeval_machine": model_run.machine}


def launch_record(server, api_key: str | None) -> dict:
    """How a booted server was started (argv with the key masked, OpenMP threads): both shape its timings."""
    from .engines.sglang import SGLangServer, redact

    if not isinstance(server, SGLangServer):
        return {"argv": None}
    return {"argv": redact(server.argv, api_key), "omp_threads": server.omp_threads}
