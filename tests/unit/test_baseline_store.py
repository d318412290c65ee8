"""The baseline store as a library: format, validation, verdicts, updates, atomicity, concurrency."""

import multiprocessing
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_embedeval.store.baselines import BaselineError, BaselineStore, load, update
from pytest_embedeval.facts.hardware import cpu_family, HardwareProfile, gpu_hardware_id
from pytest_embedeval.judge.rules import Figure, Judge, Policy, compare
from pytest_embedeval.facts.metrics import Tolerance, metric
from pytest_embedeval.judge.verdicts import Outcome

REPO_BASELINES = Path(__file__).parents[2] / "baselines"
A100 = HardwareProfile("a100-80gb-x1", "sglang", "auto")
CPU = HardwareProfile("cpu-2c", "sglang", "float32")


def verdict_of(store: BaselineStore, model: str, figure: str, value: float, here: HardwareProfile, **kw):
    """The judge's verdict on one figure against a store, as a run makes it."""
    return Judge(store, Policy()).verdict(model, Figure(figure, value, **kw), here, half_precision=False)


# -- verdicts -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "measured", "baseline", "outcome"),
    [
        ("latency_p50_ms", 100.0, 89.0, Outcome.PASSED),  # +12%, inside 15%
        ("latency_p50_ms", 110.0, 89.0, Outcome.REGRESSED),  # +24%
        ("latency_p50_ms", 60.0, 89.0, Outcome.IMPROVED),  # faster: reported, never a failure
        ("throughput_tokens_per_s", 1600.0, 1850.0, Outcome.REGRESSED),  # higher is better
        ("throughput_tokens_per_s", 2100.0, 1850.0, Outcome.IMPROVED),
        ("cmteb_avg", 71.9, 72.27, Outcome.PASSED),  # 0.37 points, inside 0.5
        ("cmteb_avg", 71.5, 72.27, Outcome.REGRESSED),
        ("dimensions", 1024, 2560, Outcome.REGRESSED),  # exact: any change is wrong
        ("dimensions", 2560, 2560, Outcome.PASSED),
        ("latency_p50_ms", 50.0, None, Outcome.NO_BASELINE),
    ],
)
def test_each_verdict(name, measured, baseline, outcome):
    assert compare(metric(name), measured, baseline)[0] is outcome


def test_a_difference_within_the_noise_interval_is_not_a_regression():
    latency = metric("latency_p50_ms")
    # the point estimate is 20% slower, but the interval reaches back inside the 15% band
    assert compare(latency, 120.0, 100.0, interval=(110.0, 130.0))[0] is Outcome.PASSED
    assert compare(latency, 125.0, 100.0, interval=(118.0, 131.0))[0] is Outcome.REGRESSED


def test_a_figure_at_its_rounded_baseline_with_a_zero_width_interval_passes():
    # A stored score is rounded to 6 decimals; the interval of the change from its run is built around it.
    assert compare(metric("mteb:EmbedEvalSTS-en"), 74.9101318, 74.910132, interval=(74.910132, 74.910132))[0] \
        is Outcome.PASSED


def test_a_regression_reads_as_a_sentence_and_a_table(tmp_path):
    (tmp_path / "m.toml").write_text(MEASURED_ELSEWHERE)
    here = HardwareProfile("cpu-2c-intel-xeon", "sglang", "float32")
    verdict = verdict_of(BaselineStore(tmp_path), "m", "latency_p50_ms (batch 1 x 128 tokens)", 40.0, here)
    assert verdict.reason() == (
        "latency_p50_ms (batch 1 x 128 tokens) regressed: measured 40 ms, baseline 30 ms (+33.3%, tolerance 15%; "
        "profile 'xeon', source measured)"
    )
    section = verdict.section()
    for label in ("metric", "baseline", "measured", "delta", "tolerance"):
        assert label in section


def test_tolerances_carry_their_unit():
    assert Tolerance.parse("10%") == Tolerance(0.10, relative=True)
    assert Tolerance.parse(0.5) == Tolerance(0.5, relative=False)
    with pytest.raises(ValueError, match="relative tolerance"):
        metric("latency_p50_ms").check_tolerance(Tolerance.parse(5))
    with pytest.raises(ValueError, match="tolerance in points"):
        metric("cmteb_avg").check_tolerance(Tolerance.parse("2%"))


def test_hardware_keys_ignore_form_factor():
    assert gpu_hardware_id(["NVIDIA A100-SXM4-80GB"]) == "a100-80gb-x1"
    assert gpu_hardware_id(["NVIDIA A100 80GB PCIe"] * 2) == "a100-80gb-x2"
    assert gpu_hardware_id(["NVIDIA H100 80GB HBM3"]) == "h100-80gb-x1"


# -- the shipped store ----------------------------------------------------------------------------

def test_the_articles_table_is_the_first_set_with_its_provenance():
    store = BaselineStore(REPO_BASELINES)
    qwen, bge = store.models["qwen3-4b"], store.models["bge-large-zh"]
    assert qwen.profiles["article"].source == "article" and qwen.profiles["article"].hardware == "a100-80gb-x1"
    article = {name: entry.value for name, entry in qwen.profiles["article"].metrics.items()}
    assert article == {"gpu_memory_bytes": 22.3e9, "latency_p50_ms (batch 1 x 128 tokens)": 89.0,
                       "max_throughput_tokens_per_s": 1850.0, "cmteb_avg": 70.58, "stsb_spearman": 86.4,
                       "dimensions": 2560, "context_length": 32768}
    bge_article = {name: entry.value for name, entry in bge.profiles["article"].metrics.items()}
    assert bge_article["latency_p50_ms (batch 1 x 128 tokens)"] == 37.0 and bge_article["gpu_memory_bytes"] == 4.8e9
    assert qwen.profiles["official"].metrics["cmteb_avg"].value == 72.27
    assert bge.profiles["official"].metrics["cmteb_avg"].value == 64.53
    assert bge.profiles["official"].metrics["context_length"].value == 512


def test_published_figures_are_shown_beside_the_verdict_but_never_judge():
    # An article's or a model card's figure was measured elsewhere, and some are wrong: a new runner's
    # first run must go green, with the published figure and the difference from it in every report.
    store = BaselineStore(REPO_BASELINES)
    assert "512 positions" in store.models["bge-large-zh"].profiles["article"].metrics["context_length"].disputed
    verdict = verdict_of(store, "bge-large-zh", "context_length", 512, A100)
    assert (verdict.outcome, verdict.baseline) == (Outcome.NO_BASELINE, None)
    assert verdict.published == "article 8192 tokens (disputed); official 512 tokens: +0"
    latency = verdict_of(store, "bge-large-zh", "latency_p50_ms (batch 1 x 128 tokens)", 40.0, A100)
    assert latency.outcome is Outcome.NO_BASELINE and latency.published == "article 37 ms on a100-80gb-x1: +8%"
    assert "published: article 37 ms on a100-80gb-x1: +8%" in latency.reason()


MEASURED_ELSEWHERE = """
model = "m"
[profiles.xeon]
hardware = "cpu-2c-intel-xeon"
engine = "sglang"
dtype = "float32"
source = "measured"
date = "2026-11-26"
[profiles.xeon.metrics]
"latency_p50_ms (batch 1 x 128 tokens)" = 30.0
"mteb:EmbedEvalSTS-en" = 74.9
drift_min_cosine = 1.0
"""


def test_scores_and_vectors_are_judged_on_any_hardware_timings_only_on_their_own(tmp_path):
    (tmp_path / "m.toml").write_text(MEASURED_ELSEWHERE)
    stored = BaselineStore(tmp_path)
    epyc = HardwareProfile("cpu-8c-amd-epyc", "sglang", "float32")
    latency = "latency_p50_ms (batch 1 x 128 tokens)"
    assert verdict_of(stored, "m", "mteb:EmbedEvalSTS-en", 70.0, epyc).outcome is Outcome.REGRESSED
    assert verdict_of(stored, "m", "drift_min_cosine", 1.0, epyc).profile == "xeon"
    assert verdict_of(stored, "m", latency, 300.0, epyc).outcome is Outcome.NO_BASELINE
    assert verdict_of(stored, "m", latency, 300.0, HardwareProfile("cpu-2c-intel-xeon", "sglang", "float32")
                      ).outcome is Outcome.REGRESSED
    # another dtype computes other vectors: nothing to compare with
    assert verdict_of(stored, "m", "drift_min_cosine", 1.0, HardwareProfile("cpu-8c", "sglang", "bfloat16")
                      ).outcome is Outcome.NO_BASELINE


def test_a_cpu_key_names_the_processor_family():
    assert cpu_family("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz") == "intel-xeon-platinum-8375c"
    assert cpu_family("AMD EPYC") == "amd-epyc"
    assert cpu_family("AMD Ryzen 9 7950X 16-Core Processor") == "amd-ryzen-9-7950x"


def test_no_baseline_from_other_hardware_is_used():
    verdict = verdict_of(BaselineStore(REPO_BASELINES), "qwen3-4b", "latency_p50_ms (batch 1 x 128 tokens)", 20.0, CPU)
    assert verdict.outcome is Outcome.NO_BASELINE
    assert "no baseline for this figure's identity (cpu-2c / sglang / float32)" in verdict.reason()


# -- validation -----------------------------------------------------------------------------------

GOOD = """
model = "m"

[profiles.p]
hardware = "cpu-2c"
engine = "sglang"
dtype = "float32"
source = "measured"
date = "2026-11-26"

[profiles.p.metrics]
latency_p50_ms = { value = 20.0, tolerance = "25%" }
host_memory_bytes = 3.1e9
"""


@pytest.mark.parametrize(
    ("broken", "field", "expected"),
    [
        (GOOD.replace('"25%"', "25"), "profiles.p.metrics.latency_p50_ms.tolerance", 'relative tolerance like "15%"'),
        (GOOD.replace("latency_p50_ms", "latency_p55_ms"), "profiles.p.metrics.latency_p55_ms", "unknown metric"),
        (GOOD.replace("3.1e9", '"3.1 GB"'), "profiles.p.metrics.host_memory_bytes.value", "expected a number"),
        (GOOD.replace('source = "measured"', 'source = "blog"'), "profiles.p.source", "expected one of"),
        (GOOD.replace('date = "2026-11-26"', 'date = "yesterday"'), "profiles.p.date", "YYYY-MM-DD"),
        (GOOD.replace('hardware = "cpu-2c"\n', ""), "profiles.p", "field 'hardware' is missing"),
        (GOOD.replace('model = "m"', 'model = "other"'), "model", "must be named other.toml"),
        (GOOD.replace("3.1e9", '{ value = 3.1e9, units = "B" }'),
         "profiles.p.metrics.host_memory_bytes.units", "unknown field"),
        (GOOD + "\n[oops", "syntax", ""),
    ],
)
def test_a_broken_file_names_its_file_field_and_what_was_expected(tmp_path, broken, field, expected):
    path = tmp_path / "m.toml"
    path.write_text(broken)
    with pytest.raises(BaselineError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: {field}: ")
    assert expected in str(info.value)


# -- updates --------------------------------------------------------------------------------------

def updated(directory, here, figures: dict, accept: bool = False) -> list:
    """An update as a run makes it: each figure judged, then the judge's decisions carried out by the store."""
    judge = Judge(BaselineStore(Path(directory)), Policy(update=True, accept_regressions=accept))
    verdicts = [judge.verdict("m", Figure(name, value), here, half_precision=False) for name, value in figures.items()]
    return update(directory, "m", lambda current: judge.changes(verdicts, here, current), machine="x", software="y")


def write_good(tmp_path) -> Path:
    path = tmp_path / "m.toml"
    path.write_text("# reviewed by the team\n" + GOOD)
    return path


def test_update_writes_a_new_profile_and_keeps_the_rest_of_the_file(tmp_path):
    path = write_good(tmp_path)
    before = path.read_text()
    here = HardwareProfile("h100-80gb-x1", "sglang", "auto")
    changes = updated(tmp_path, here, {"latency_p50_ms": 9.5, "dimensions": 384})
    assert [(c.metric, c.old, c.new, c.action) for c in changes] == [
        ("dimensions", None, 384, "new"), ("latency_p50_ms", None, 9.5, "new")]
    after = path.read_text()
    assert after.startswith(before)  # comments, order and the old profile untouched
    profile = load(path).profiles["h100-80gb-x1-sglang-auto"]
    assert profile.source == "measured" and profile.metrics["latency_p50_ms"].value == 9.5


def test_update_rewrites_values_in_place_and_keeps_their_tolerance(tmp_path):
    path = write_good(tmp_path)
    path.write_text(path.read_text().replace("[profiles.p]", "[profiles.cpu-2c-sglang-float32]")
                    .replace("[profiles.p.metrics]", "[profiles.cpu-2c-sglang-float32.metrics]"))
    changes = updated(tmp_path, CPU, {"latency_p50_ms": 14.0})  # 30% faster: past the 25% band
    assert changes[0].action == "improved"
    text = path.read_text()
    assert 'latency_p50_ms = { value = 14.0, tolerance = "25%" }' in text
    assert "host_memory_bytes = 3.1e9" in text


def test_update_refuses_to_write_a_regression_unless_accepted(tmp_path):
    path = write_good(tmp_path)
    path.write_text(path.read_text().replace("[profiles.p]", "[profiles.cpu-2c-sglang-float32]")
                    .replace("[profiles.p.metrics]", "[profiles.cpu-2c-sglang-float32.metrics]"))
    before = path.read_text()
    changes = updated(tmp_path, CPU, {"latency_p50_ms": 40.0})
    assert [(c.action, c.refused) for c in changes] == [("refused: regressed", True)]
    assert path.read_text() == before
    changes = updated(tmp_path, CPU, {"latency_p50_ms": 40.0}, accept=True)
    assert changes[0].action == "accepted regression"
    assert load(path).profiles["cpu-2c-sglang-float32"].metrics["latency_p50_ms"].value == 40.0


# A writer killed between writing and renaming: os.replace is delayed so the kill lands there.
SLOW_WRITER = textwrap.dedent("""
    import os, sys, time
    from pytest_embedeval.store import baselines
    from pytest_embedeval.facts.hardware import HardwareProfile
    real_replace = os.replace
    def slow_replace(src, dst):
        print("WRITTEN, NOT RENAMED", flush=True)
        time.sleep(60)
        real_replace(src, dst)
    from pytest_embedeval.store import files
    files.os.replace = slow_replace
    from pytest_embedeval.judge.rules import Figure, Judge, Policy
    here = HardwareProfile("cpu-2c", "sglang", "float32")
    judge = Judge(baselines.BaselineStore(sys.argv[1]), Policy(update=True))
    verdicts = [judge.verdict("m", Figure("latency_p50_ms", 1.0), here, half_precision=False)]
    baselines.update(sys.argv[1], "m", lambda current: judge.changes(verdicts, here, current), machine="x",
                     software="y")
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killing_an_update_midway_leaves_the_old_file_intact(tmp_path, sig):
    path = write_good(tmp_path)
    before = path.read_bytes()
    writer = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "WRITTEN, NOT RENAMED"
    writer.send_signal(sig)
    writer.wait(30)
    assert path.read_bytes() == before
    load(path)
    # the next update cleans what the killed writer left and succeeds
    updated(tmp_path, CPU, {"latency_p50_ms": 2.0})
    assert not list(tmp_path.glob(".m.toml.*.tmp"))
    assert load(path).profiles["cpu-2c-sglang-float32"].metrics["latency_p50_ms"].value == 2.0


def _write_one(directory: str, name: str, value: float) -> None:
    updated(directory, CPU, {name: value})


def test_concurrent_writers_lose_no_value(tmp_path):
    write_good(tmp_path)
    names = ["latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms", "boot_seconds", "dimensions"]
    with multiprocessing.get_context("spawn").Pool(len(names)) as pool:
        pool.starmap(_write_one, [(str(tmp_path), name, 10.0 + i) for i, name in enumerate(names)])
    profiles = load(tmp_path / "m.toml").profiles
    # Times go to this hardware's profile; a shape (dimensions) to the engine and dtype's, on any hardware.
    metrics = {**profiles["cpu-2c-sglang-float32"].metrics, **profiles["any-sglang-float32"].metrics}
    assert {name: metrics[name].value for name in names} == {name: 10.0 + i for i, name in enumerate(names)}


def test_show_prints_the_articles_table_next_to_the_official_figures(capsys):
    from pytest_embedeval.cli import main

    assert main(["baselines", "show", "--dir", str(REPO_BASELINES)]) == 0
    out = capsys.readouterr().out
    for model in ("qwen3-4b", "bge-large-zh"):
        assert f"{model}  (" in out
    assert out.count("article [article, a100-80gb-x1]  official [official, any]") == 2
    assert re.search(r"\ncmteb_avg +68.21 points \(disputed\) +64.53 points", out)
    assert "article.context_length: disputed: the model has 512 positions" in out
    assert main(["baselines", "show", "nope", "--dir", str(REPO_BASELINES)]) == 2
    assert "no baselines for 'nope'" in capsys.readouterr().err
