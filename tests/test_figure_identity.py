"""A figure knows what it measured: its shape, its deployment, where it ran and whether it was paired are its
identity; only a stored figure of the same identity judges it; a baseline moves only when someone means it;
nothing fixed can be accepted away; and a verdict that cannot tell says so instead of passing.

Each case is a user's suite run by pytester. The two-shape case runs against the real MiniLM server; the others
need a server that answers on cue (a reported fp8 deployment no CPU can run, a fifth of its requests failing, a
batch that changes a text's vector), so they run against the STAND-IN (tests/standin_server.py).
"""

import textwrap
from types import SimpleNamespace

import pytest

from pytest_embedeval.facts.deployment import from_args, from_server_info, gpu_count
from pytest_embedeval.facts.hardware import UNKNOWN, HardwareProfile
from pytest_embedeval.judge.rules import Figure, Judge, Policy
from pytest_embedeval.run.session import where_it_runs
from pytest_embedeval.store.baselines import BaselineStore, load

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run(pytester, server, *args, suite: str | None = None):
    if suite is not None:
        pytester.makepyfile(textwrap.dedent(suite))
    return pytester.runpytest(f"--embed-url={server.url}", "--embed-model=minilm", *args)


def stored(pytester) -> dict:
    """Every stored figure by profile name: {profile: {label: value}}."""
    path = pytester.path / "baselines" / "minilm.toml"
    return {name: {label: entry.value for label, entry in profile.metrics.items()}
            for name, profile in load(path).profiles.items()}


# -- shape -----------------------------------------------------------------------------------------------------

TWO_SHAPES = """
    import pytest

    @pytest.mark.embed_latency(batch_size=1, tokens=16, requests=40, warmup=5, tolerance="60%")
    def test_short():
        pass

    @pytest.mark.embed_latency(batch_size=1, tokens=200, requests=40, warmup=5, tolerance="60%")
    def test_long():
        pass
"""


@pytest.mark.server
def test_two_shapes_of_one_marker_are_two_figures_and_only_the_slowed_one_fails(pytester, embed_server):
    first = run(pytester, embed_server, "--embed-update-baselines", suite=TWO_SHAPES)
    first.assert_outcomes(passed=2)
    timed = next(figures for name, figures in stored(pytester).items() if not name.startswith("any-"))
    short, long = timed["latency_p50_ms (batch 1 x 16 tokens)"], timed["latency_p50_ms (batch 1 x 200 tokens)"]
    assert long > short  # two figures, each under its own label

    again = run(pytester, embed_server)
    again.assert_outcomes(passed=2)  # each judged against its own shape (one p50 would fail one of them)
    again.stdout.fnmatch_lines(["latency_p50_ms (batch 1 x 16 tokens) *pass*",
                                "latency_p50_ms (batch 1 x 200 tokens) *pass*"], consecutive=False)

    # The long path three times as slow: its baseline a third of what it was (no samples stored for that value).
    path = pytester.path / "baselines" / "minilm.toml"
    text = path.read_text()
    for statistic in ("p50", "p90", "p99", "mean"):
        text = _scale(text, f"latency_{statistic}_ms (batch 1 x 200 tokens)", 1 / 3)
    path.write_text(text)
    slowed = run(pytester, embed_server)
    slowed.assert_outcomes(passed=1, failed=1)
    slowed.stdout.fnmatch_lines(["*test_long*", "latency_p50_ms (batch 1 x 200 tokens) regressed*"])
    assert "test_short FAILED" not in slowed.stdout.str() and "FAILED test_short" not in slowed.stdout.str()


def _scale(text: str, label: str, factor: float) -> str:
    import re

    pattern = re.compile(rf'^("{re.escape(label)}" = )([0-9.e+]+)', re.M)
    assert pattern.search(text), f"{label} not in the file:\n{text}"
    return pattern.sub(lambda m: f"{m.group(1)}{float(m.group(2)) * factor:.6f}", text)


# -- deployment --------------------------------------------------------------------------------------------------

DIMENSIONS = """
    def test_dimensions(embed_client, embed_metric):
        embed_metric("dimensions", embed_client.embed(["a text"]).shape[1])
"""


def test_a_deployment_flag_is_part_of_the_identity(pytester, standin):
    bf16 = standin(server_info={"version": "stand-in", "dtype": "bfloat16"})
    run(pytester, bf16, "--embed-update-baselines", suite=DIMENSIONS).assert_outcomes(passed=1)
    assert stored(pytester) == {"any-sglang-bfloat16": {"dimensions": 384}}

    fp8 = standin(server_info={"version": "stand-in", "dtype": "bfloat16", "quantization": "fp8"})
    result = run(pytester, fp8, "--embed-strict")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["dimensions: measured 384 dims; no baseline for this figure's identity "
                                 "(* / sglang / bfloat16 / --quantization fp8); stored figures of another identity "
                                 "do not judge it: dimensions in profile 'any-sglang-bfloat16'"])
    run(pytester, fp8, "--embed-update-baselines").assert_outcomes(passed=1)
    assert stored(pytester) == {"any-sglang-bfloat16": {"dimensions": 384},
                                "any-sglang-bfloat16-quantization-fp8": {"dimensions": 384}}
    assert 'deployment = "--quantization fp8"' in (pytester.path / "baselines" / "minilm.toml").read_text()


def test_the_flags_that_change_results_are_the_deployment_in_one_spelling():
    assert from_args(["--tp", "2", "--quantization=fp8", "--log-level", "info", "--enable-metrics"]) == \
        "--quantization fp8 --tp-size 2"
    assert from_args(["--tensor-parallel-size", "2"]) == from_args(["--tp-size=2"])
    assert from_args([]) == ""
    # A running server's report: what the plugin gives every CPU server it boots is no deployment of the user's.
    cpu = ["--device", "cpu", "--attention-backend", "torch_native"]
    assert from_server_info({"attention_backend": "torch_native", "tp_size": 1}, cpu) == ""
    assert from_server_info({"attention_backend": "triton", "tp_size": 2, "quantization": "fp8"}, cpu) == \
        "--attention-backend triton --quantization fp8 --tp-size 2"
    assert gpu_count("--dp-size 2 --tp-size 2") == 4 and gpu_count("") == 1


# -- where it ran ------------------------------------------------------------------------------------------------

def test_the_gpu_count_in_the_key_is_the_servers_share_not_every_visible_gpu(monkeypatch):
    from pytest_embedeval.facts import hardware

    monkeypatch.setattr(hardware, "gpu_names", lambda indexes=None: (["NVIDIA H100 80GB HBM3"] * 8, "580.1"))
    assert hardware.describe("cuda", None, uses=2)[0] == "h100-80gb-x2"
    assert hardware.describe("cuda", None, uses=1)[0] == "h100-80gb-x1"


def test_a_server_on_another_machine_has_no_hardware_until_it_is_named(tmp_path):
    remote = SimpleNamespace(process=None, url="http://10.0.0.5:30000", device="cpu")
    assert where_it_runs(remote, "")[0] == UNKNOWN
    local = SimpleNamespace(process=None, url="http://127.0.0.1:30000", device="cpu", gpus=None)
    assert where_it_runs(local, "")[0].startswith("cpu-")

    (tmp_path / "m.toml").write_text(textwrap.dedent("""
        model = "m"
        [profiles.p]
        hardware = "cpu-2c-amd-epyc"
        engine = "sglang"
        dtype = "float32"
        source = "measured"
        date = "2026-12-01"
        [profiles.p.metrics]
        "latency_p50_ms (batch 1 x 128 tokens)" = 30.0
    """))
    judge = Judge(BaselineStore(tmp_path), Policy(update=True))
    here = HardwareProfile(UNKNOWN, "sglang", "float32")
    verdict = judge.verdict("m", Figure("latency_p50_ms (batch 1 x 128 tokens)", 31.0), here, half_precision=False)
    assert "name it with --embed-hardware KEY" in verdict.reason()
    change, = judge.changes([verdict], here, BaselineStore(tmp_path).for_model("m"))
    assert change.refused and "unknown hardware" in change.action


def test_a_paired_update_writes_its_own_profile_and_never_the_unpaired_one(pytester, standin):
    candidate, reference = standin(), standin()
    suite = """
        def test_latency(embed_metric):
            embed_metric("latency_p50_ms", 49.68)
    """
    paired = run(pytester, candidate, f"--embed-reference-url={reference.url}", "--embed-update-baselines",
                 suite=suite)
    paired.assert_outcomes(passed=1)
    (name, figures), = stored(pytester).items()
    assert name.endswith("-paired") and figures == {"latency_p50_ms": 49.68}
    assert "paired = true" in (pytester.path / "baselines" / "minilm.toml").read_text()
    # Alone, the same server is judged by no paired figure: it has none of its own yet.
    alone = run(pytester, candidate, "--embed-strict", suite=suite.replace("49.68", "32.3"))
    alone.assert_outcomes(failed=1)
    alone.stdout.fnmatch_lines(["latency_p50_ms: measured 32.3 ms; no baseline for this figure's identity*"
                                "latency_p50_ms in profile '*-paired'*"])


# -- a baseline moves only when someone means it --------------------------------------------------------------------

def test_four_small_steps_cannot_walk_a_baseline_away(pytester, standin):
    server = standin()
    suite = """
        def test_latency(embed_metric):
            embed_metric("latency_p50_ms", {value}, interval=({value} * 0.97, {value} * 1.03))
    """
    outcomes = []
    for value in (100.0, 108.0, 116.64, 125.97):  # +8% a run: each step alone within the 15% tolerance
        result = run(pytester, server, "--embed-update-baselines", suite=suite.format(value=value))
        outcomes.append(result.parseoutcomes().get("failed", 0))
        assert next(iter(stored(pytester).values())) == {"latency_p50_ms": 100.0}  # where it was first accepted
    assert outcomes == [0, 0, 0, 1]  # +26% in all: the last step fails, judged against the first
    result.stdout.fnmatch_lines(["latency_p50_ms*100 ms*126 ms*refused: regressed"])
    accepted = run(pytester, server, "--embed-update-baselines", "--embed-accept-regressions")
    accepted.assert_outcomes(passed=1)
    assert next(iter(stored(pytester).values())) == {"latency_p50_ms": 125.97}  # moved, because someone meant it


def test_accepting_regressions_cannot_accept_failed_requests(pytester, standin):
    server = standin("some-errors", every=5)
    result = run(pytester, server, "--embed-update-baselines", "--embed-accept-regressions", suite="""
        def test_vectors(embed_client):
            for i in range(12):
                embed_client.embed([f"text {i}"])
    """)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["failed_requests_percent regressed: measured *"])


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


# -- every verdict before any skip ------------------------------------------------------------------------------------

DRIFT = """
    import pytest

    @pytest.mark.embed_drift
    def test_drift():
        pass
"""


def test_drift_without_stored_vectors_still_judges_batch_invariance(pytester, standin):
    result = run(pytester, standin("batch-dependent", cosine=0.5), suite=DRIFT)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["batch_invariance_min_cosine regressed: measured 0.500000*"])

    healthy = run(pytester, standin())
    healthy.assert_outcomes(passed=1)  # judged, not skipped: its drift figure has no baseline
    healthy.stdout.fnmatch_lines(["drift_min_cosine *no baseline*", "batch_invariance_min_cosine *pass*"],
                                 consecutive=False)
    run(pytester, standin(), "--embed-strict").assert_outcomes(failed=1)


# -- cannot tell -----------------------------------------------------------------------------------------------------

def test_a_value_outside_its_own_interval_is_inconclusive_and_never_written(pytester, standin):
    server = standin()
    suite = """
        def test_latency(embed_metric):
            embed_metric("latency_p50_ms", {value}, interval={interval})
    """
    run(pytester, server, "--embed-update-baselines", suite=suite.format(value=35.0, interval=(34.0, 36.0)))
    result = run(pytester, server, "--embed-update-baselines",
                 suite=suite.format(value=1000.0, interval=(0.9, 1.1)))
    result.stdout.fnmatch_lines(["latency_p50_ms*inconclusive*", "latency_p50_ms*refused: cannot tell"],
                                consecutive=False)
    assert next(iter(stored(pytester).values())) == {"latency_p50_ms": 35.0}
    strict = run(pytester, server, "--embed-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["latency_p50_ms inconclusive: the measured value lies outside its own 95% "
                                 "interval (0.9..1.1): the measurement is unsound*"])


def test_a_paired_ratio_whose_interval_cannot_tell_is_inconclusive_not_a_pass(pytester, standin):
    server = standin()
    suite = """
        def test_pair(embed_metric):
            embed_metric("paired_latency_p50_ratio", 0.876, interval=(0.637, 1.57))
    """
    result = run(pytester, server, suite=suite)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["paired_latency_p50_ratio *inconclusive*"])
    strict = run(pytester, server, "--embed-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["paired_latency_p50_ratio inconclusive: its 95% interval 0.933 wide cannot tell a "
                                 "change of 5% from none*measure more requests or items*"])


def test_a_figure_at_its_rounded_baseline_with_a_zero_width_interval_passes():
    # A stored score is rounded to 6 decimals; the interval of the change from its run is built around it.
    from pytest_embedeval.judge.rules import compare
    from pytest_embedeval.facts.metrics import metric
    from pytest_embedeval.judge.verdicts import Outcome

    assert compare(metric("mteb:EmbedEvalSTS-en"), 74.9101318, 74.910132, interval=(74.910132, 74.910132))[0] \
        is Outcome.PASSED
