"""A timed regression counts only when a second window shows it; an untimed figure is measured once."""

import pytest

from pytest_embedeval.measure import markers
from pytest_embedeval.facts.hardware import HardwareProfile
from pytest_embedeval.run.record import ModelRun
from pytest_embedeval.run.session import Policy, RunSession
from pytest_embedeval.store import Store
from pytest_embedeval.measure.timing import Timing


class _Server:  # the session only reads a figure's model from the run record
    spec = None


def _session_with_latency_baseline(tmp_path, lines):
    (tmp_path / "m.toml").write_text(
        'model = "m"\n[profiles.here]\nhardware = "any"\nengine = "any"\ndtype = "any"\nsource = "measured"\n'
        'date = "2026-12-01"\n[profiles.here.metrics]\nlatency_p50_ms = 40.0\n')
    session = RunSession(Store(tmp_path), Policy(), progress=lines.append)
    run = session.open_model(ModelRun("m", HardwareProfile("cpu-2c", "sglang", "float32"), "", ""))
    return session, run


@pytest.mark.parametrize("windows, decided, runs", [
    ([50.0, 40.0], 40.0, 2),   # a noisy first window: the second decides, and passes
    ([50.0, 51.0], 51.0, 2),   # a slower server: regressed twice, the second is reported
    ([40.0, 99.0], 40.0, 1),   # no regression: measured once
])
def test_a_timed_regression_counts_only_when_a_second_window_shows_it(monkeypatch, tmp_path, windows, decided, runs):
    seen, lines = iter(windows), []

    def fake_latency(target, **arguments):  # stands in for the real marker: the session's policy is what is tested
        return markers.Measured([markers.Measurement("latency_p50_ms", next(seen), note="batch 1")],
                                timings=[Timing(f"window {len(lines)}", [0.04])])

    monkeypatch.setitem(markers.MARKERS, "embed_latency", fake_latency)
    session, run = _session_with_latency_baseline(tmp_path, lines)
    (verdict,) = session.measure(run, "embed_latency", markers.Target(_Server(), None), {})
    assert verdict.measured == decided and len(lines) == runs - 1
    assert run.verdicts == [verdict]  # recorded once, whatever was measured
    assert len(run.timings) == 1  # only the deciding window's samples are kept
    if runs == 2:
        assert lines[0].startswith("@pytest.mark.embed_latency: latency_p50_ms regressed; measuring again")
        assert verdict.note == "batch 1; second run, the first regressed (50)"


def test_untimed_markers_are_measured_once(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setitem(markers.MARKERS, "embed_drift", lambda target: calls.append(1) or markers.Measured(
        [markers.Measurement("drift_min_cosine", 0.5)]))
    session, run = _session_with_latency_baseline(tmp_path, [])
    session.measure(run, "embed_drift", markers.Target(_Server(), None), {})
    assert calls == [1]  # a wrong vector is wrong every time: no second look
