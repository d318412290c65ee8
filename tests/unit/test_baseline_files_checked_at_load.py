"""A baseline file is checked when a run loads it: a broken field, a value that is not a number or a fixed baseline
loosened stops the run, naming the file and the field, before any server boots."""

import textwrap

import pytest

from support.suites import FIGURES_SUITE

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_a_broken_baseline_file_stops_the_run_before_any_server_boots(pytester):
    pytester.makepyfile(FIGURES_SUITE)
    (pytester.path / "baselines").mkdir()
    (pytester.path / "baselines" / "minilm.toml").write_text(
        'model = "minilm"\n[profiles.x]\nhardware = "cpu-2c"\nengine = "sglang"\ndtype = "float32"\n'
        'source = "measured"\ndate = "2026-11-26"\n[profiles.x.metrics]\nlatency_p50_ms = { value = 9, tolerance = 20 }\n')
    result = pytester.runpytest("--embed-model=minilm")  # no --embed-url: a boot would be slow, and must not happen
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*baselines/minilm.toml: profiles.x.metrics.latency_p50_ms.tolerance: "
                                 "latency_p50_ms takes a relative tolerance like \"15%\", got 20*"])


@pytest.mark.parametrize("written", ["nan", "inf", "-inf"])
def test_a_baseline_that_is_not_a_number_is_a_load_error_naming_file_and_field(pytester, written):
    (pytester.path / "baselines").mkdir()
    (pytester.path / "baselines" / "minilm.toml").write_text(textwrap.dedent(f"""
        model = "minilm"
        [profiles.p]
        hardware = "any"
        engine = "any"
        dtype = "any"
        source = "measured"
        date = "2026-12-01"
        [profiles.p.metrics]
        drift_min_cosine = {written}
    """))
    pytester.makepyfile("def test_x(embed_metric):\n    pass\n")
    result = pytester.runpytest("--embed-model=minilm", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*minilm.toml: profiles.p.metrics.drift_min_cosine.value: expected a finite "
                                 f"number, got {float(written)}*"])


def test_a_file_cannot_loosen_a_fixed_baseline(pytester):
    (pytester.path / "baselines").mkdir()
    (pytester.path / "baselines" / "minilm.toml").write_text(textwrap.dedent("""
        model = "minilm"
        [profiles.p]
        hardware = "any"
        engine = "any"
        dtype = "any"
        source = "measured"
        date = "2026-12-01"
        [profiles.p.metrics]
        failed_requests_percent = { value = 0, tolerance = 100 }
    """))
    pytester.makepyfile("def test_x(embed_metric):\n    pass\n")
    result = pytester.runpytest("--embed-model=minilm", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*minilm.toml: profiles.p.metrics.failed_requests_percent: failed_requests_percent "
                                 "has a fixed baseline of 0 on every server, which no file can move or loosen; "
                                 "remove the entry*"])
