"""`embedeval compare RUN_A.json RUN_B.json`: one model's run against another run of it, judged by the judge.

The runs are saved as the plugin saves them: a run session records each figure (judged against an empty baseline
directory) and writes its JSON report. Their latencies are the per-request samples of the real minilm run kept with
the shipped baselines (baselines/timings/), or those samples changed on purpose.
"""

from pathlib import Path

import numpy as np
import pytest

from pytest_embedeval.cli import main as embedeval
from pytest_embedeval.facts.hardware import HardwareProfile
from pytest_embedeval.measure import stats
from pytest_embedeval.measure.markers import Measurement
from pytest_embedeval.measure.timing import Timing, timing_name
from pytest_embedeval.run.record import ModelRun
from pytest_embedeval.run.session import Policy, RunSession
from pytest_embedeval.store import Store, TimingStore

ROOT = Path(__file__).resolve().parents[2]
HERE = HardwareProfile("cpu-2c-intel-xeon", "sglang", "float32")
SHAPE = "batch 1 x 128 tokens"
P50 = f"latency_p50_ms ({SHAPE})"
THROUGHPUT = "throughput_tokens_per_s (batch 8 x 128 tokens, concurrency 2)"


@pytest.fixture(scope="module")
def real_samples() -> list[float]:
    """200 request latencies (seconds) of minilm on the 2-core dev VM, as the run that wrote its baselines kept them."""
    return TimingStore(ROOT / "baselines").load("minilm", "cpu-2c-intel-xeon-sglang-float32")[f"latency {SHAPE}"]


def latency_figures(samples: list[float]) -> tuple[list[Measurement], Timing]:
    """What the latency marker gives for these samples: p50/p90/p99/mean with their intervals, and the samples."""
    name = timing_name("latency", 1, 128)
    ms = [s * 1000 for s in samples]
    return [Measurement(f"latency_{statistic}_ms", float(stats.STATISTICS[statistic](ms)),
                        stats.interval(ms, stats.STATISTICS[statistic]), "test", SHAPE, timing=name,
                        statistic=statistic)
            for statistic in ("p50", "p90", "p99", "mean")], Timing(name, list(samples), test="test_latency")


def saved_run(path: Path, samples, *, models=("minilm",), profile=HERE, tokens_per_s=5000.0, score=74.91) -> Path:
    """A run of ``models`` recorded by a run session and saved as ``pytest --embed-report=PATH`` saves it."""
    session = RunSession(Store(path.parent / "no-baselines"), Policy(), progress=lambda line: None)
    for model in models:
        model_run = session.open_model(ModelRun(model, profile, "Intel(R) Xeon(R) Processor (2 cores)",
                                                "sglang 0.5.23, torch 2.14.1"))
        figures, timing = latency_figures(samples)
        session.record(model_run, figures, test="test_latency", timings=[timing])
        model_run.timings.append(timing)
        session.record(model_run, [Measurement("throughput_tokens_per_s", tokens_per_s, None, "concurrency 2",
                                               "batch 8 x 128 tokens, concurrency 2")], test="test_throughput")
        session.record(model_run, [Measurement("mteb:EmbedEvalSTS-en", score, (score - 0.3, score + 0.3))],
                       test="test_accuracy")
        model_run.requests["candidate"] = {"attempts": 300, "failed": 0}  # the run's share of failed requests
    session.finish()
    path.write_text(session.run.to_json())
    return path


def rows(out: str) -> dict[str, str]:
    """The comparison table's rows, by figure label."""
    return {line.split("  ")[0]: line for line in out.splitlines()
            if line.startswith(("latency_", "throughput_", "mteb:"))}


def test_a_planted_slowdown_is_a_regression_with_the_change_and_its_interval(tmp_path, real_samples, capsys):
    before = saved_run(tmp_path / "a.json", real_samples)
    after = saved_run(tmp_path / "b.json", np.asarray(real_samples) * 1.3, tokens_per_s=5000.0 / 1.3)
    assert embedeval(["compare", str(before), str(after)]) == 1
    captured = capsys.readouterr()
    assert "minilm: run B against run A" in captured.out
    assert f"A (before): {before}, created " in captured.out and "sglang 0.5.23" in captured.out
    p50 = rows(captured.out)[P50]
    assert "+30.0%" in p50 and "REGRESSED" in p50
    low, high = (float(end.rstrip("%")) for end in p50.split()[-3].split(".."))
    assert 15 < low < 30 < high  # both runs' samples resampled: the whole interval past the 15% tolerance
    assert "REGRESSED" in rows(captured.out)[THROUGHPUT] and "-23.1%" in rows(captured.out)[THROUGHPUT]
    assert "pass" in rows(captured.out)["mteb:EmbedEvalSTS-en"]
    regressions = captured.err.splitlines()
    assert any(line.startswith(f"{P50} regressed: ") and "(+30.0%, CI +" in line and line.endswith("tolerance 15%")
               for line in regressions), captured.err
    assert any(line.startswith(f"{THROUGHPUT} regressed: 5000 tokens/s -> 3846 tokens/s (-23.1%)")
               for line in regressions)


def test_the_same_run_twice_changes_nothing(tmp_path, real_samples, capsys):
    report = saved_run(tmp_path / "a.json", real_samples)
    assert embedeval(["compare", str(report), str(report)]) == 0
    captured = capsys.readouterr()
    found = rows(captured.out)
    assert len(found) == 6 and captured.err == ""
    for row in found.values():
        assert row.endswith(" pass"), row
        assert "+0.0%" in row or "+0 points" in row, row


def test_figures_of_another_hardware_are_not_comparable_and_never_pass(tmp_path, real_samples, capsys):
    before = saved_run(tmp_path / "a.json", real_samples)
    after = saved_run(tmp_path / "b.json", real_samples, profile=HardwareProfile("a100-80gb-x1", "sglang", "float32"))
    assert embedeval(["compare", str(before), str(after)]) == 0
    found = rows(capsys.readouterr().out)
    for label in (P50, THROUGHPUT):
        assert found[label].endswith("not comparable: run A ran as cpu-2c-intel-xeon / sglang / float32, "
                                     "run B as a100-80gb-x1 / sglang / float32"), found[label]
        assert " pass" not in found[label]
    # A score depends on the engine and dtype alone: it is compared across hardware, as against the store.
    assert found["mteb:EmbedEvalSTS-en"].endswith("pass")


def test_a_pair_too_noisy_to_tell_says_so_and_does_not_fail(tmp_path, capsys):
    rng = np.random.default_rng(7)
    before = saved_run(tmp_path / "a.json", list(rng.lognormal(np.log(0.03), 1.5, 12)))
    after = saved_run(tmp_path / "b.json", list(rng.lognormal(np.log(0.03), 1.5, 12)))
    assert embedeval(["compare", str(before), str(after)]) == 0
    out = capsys.readouterr().out
    assert rows(out)[P50].endswith("cannot tell") and " pass" not in rows(out)[P50]
    assert f"{P50} cannot tell: its 95% interval " in out


def test_markdown_gives_a_table_for_a_comment(tmp_path, real_samples, capsys):
    before = saved_run(tmp_path / "a.json", real_samples)
    assert embedeval(["compare", str(before), str(before), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "### minilm: run B against run A" in out and f"- A (before): {before}, created " in out
    assert "| metric | A | B | change | 95% CI of the change | tolerance | verdict |" in out
    assert f"| {P50} | " in out


def test_two_different_models_point_to_the_side_by_side_table(tmp_path, real_samples, capsys):
    minilm = saved_run(tmp_path / "a.json", real_samples)
    other = saved_run(tmp_path / "b.json", real_samples, models=("bge-large-zh",))
    assert embedeval(["compare", str(minilm), str(other)]) == 2
    err = capsys.readouterr().err
    assert f"{minilm} holds model minilm and {other} holds model bge-large-zh: no model in both" in err
    assert f"embedeval table {minilm} {other}" in err
    # `table` puts them side by side, as `compare` did before.
    assert embedeval(["table", str(minilm), str(other), "--dir", str(tmp_path / "none")]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert "minilm [cpu-2c-intel-xeon]" in header and "bge-large-zh [cpu-2c-intel-xeon]" in header
    assert any(line.startswith("latency p50") for line in lines)


def test_every_model_in_both_runs_is_compared_and_the_others_are_named(tmp_path, real_samples, capsys):
    both = saved_run(tmp_path / "a.json", real_samples, models=("minilm", "bge-large-zh"))
    one = saved_run(tmp_path / "b.json", real_samples, models=("minilm",))
    assert embedeval(["compare", str(both), str(one)]) == 0
    out = capsys.readouterr().out
    assert "minilm: run B against run A" in out and "bge-large-zh: run B against run A" not in out
    assert f"only in {both}: bge-large-zh" in out
    # The run's share of failed requests is judged against its fixed 0, as in any run, and shown beside A's.
    (share,) = [line for line in out.splitlines() if line.startswith("failed_requests_percent")]
    assert share.endswith("pass (against 0 % on every server)")


def test_an_unreadable_run_is_a_usage_error(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert embedeval(["compare", str(broken), str(broken)]) == 2
    assert f"{broken}: not a readable JSON run report" in capsys.readouterr().err
