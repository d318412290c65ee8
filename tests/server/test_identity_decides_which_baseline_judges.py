"""A figure knows what it measured: its shape, its deployment, where it ran and whether it was paired are its
identity; only a stored figure of the same identity judges it; a baseline moves only when someone means it;
nothing fixed can be accepted away; and a verdict that cannot tell says so instead of passing.

Each case is a user's suite run by pytester. The two-shape case runs against the real MiniLM server; the others
need a server that answers on cue (a reported fp8 deployment no CPU can run, a fifth of its requests failing, a
batch that changes a text's vector), so they run against the STAND-IN (tests/support/standin.py).
"""

import textwrap

import pytest

from pytest_embedeval.store.baselines import load

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


def test_two_shapes_of_one_marker_are_two_figures_and_only_the_slowed_one_fails(pytester, embed_server):
    first = run(pytester, embed_server, "--embed-update-baselines", suite=TWO_SHAPES)
    first.assert_outcomes(passed=2)
    timed = next(figures for name, figures in stored(pytester).items() if not name.startswith("any-"))
    short, long = timed["latency_p50_ms (batch 1 x 16 tokens)"], timed["latency_p50_ms (batch 1 x 200 tokens)"]
    assert long > short  # two figures, each under its own label

    again = run(pytester, embed_server)
    again.assert_outcomes(passed=2)  # each judged against its own shape (one p50 would fail one of them)
    # Neither fails: "pass", or "improved" when the recording run met a busier moment of a shared machine.
    again.stdout.re_match_lines([r"latency_p50_ms \(batch 1 x 16 tokens\) .* (pass|improved)\b",
                                 r"latency_p50_ms \(batch 1 x 200 tokens\) .* (pass|improved)\b"], consecutive=False)

    # The long path ten times as slow: its baseline a tenth of what it was (no samples stored for that value). Ten
    # times, so that no busy moment of a shared machine can make the recording run that slow by itself.
    path = pytester.path / "baselines" / "minilm.toml"
    text = path.read_text()
    for statistic in ("p50", "p90", "p99", "mean"):
        text = _scale(text, f"latency_{statistic}_ms (batch 1 x 200 tokens)", 1 / 10)
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
