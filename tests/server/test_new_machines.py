"""A run on a machine the baselines were not measured on: what still judges, what does not, and what the
first update writes. The servers are STAND-INs: these tests are about the store, not about vectors."""

import shutil
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REPO_BASELINES = Path(__file__).parents[2] / "baselines"

XEON = textwrap.dedent("""
    model = "minilm"
    [profiles.xeon]
    hardware = "cpu-2c-intel-xeon"
    engine = "openai-compatible"
    dtype = "auto"
    source = "measured"
    date = "2026-11-26"
    [profiles.xeon.metrics]
    "mteb:EmbedEvalSTS-en" = 74.9
    latency_p50_ms = 30.0
""")


def test_another_cpu_still_judges_scores_and_says_once_that_its_timings_have_no_baseline(pytester, standin):
    (pytester.path / "baselines").mkdir()
    (pytester.path / "baselines" / "minilm.toml").write_text(XEON)
    pytester.makepyfile("""
        def test_score(embed_metric):
            embed_metric("mteb:EmbedEvalSTS-en", 70.0)

        def test_latency(embed_metric):
            embed_metric("latency_p50_ms", 300.0)

        def test_throughput(embed_metric):
            embed_metric("throughput_tokens_per_s", 10.0)
    """)
    result = pytester.runpytest(f"--embed-url={standin().url}", "--embed-model=minilm",
                                "--embed-hardware=cpu-8c-amd-epyc")
    result.assert_outcomes(failed=1, passed=2)
    result.stdout.fnmatch_lines(["mteb:EmbedEvalSTS-en regressed: measured 70 points, baseline 74.9 points "
                                 "(-4.9, tolerance 0.5; profile 'xeon', source measured)"])
    hint = [line for line in result.outlines if "has no timing or memory baselines" in line]
    assert hint == ["embedeval: minilm has no timing or memory baselines for cpu-8c-amd-epyc (latency_p50_ms, "
                    "throughput_tokens_per_s); scores and vectors were still checked. Record this machine's by "
                    "running the same command with --embed-update-baselines"]


def test_the_first_update_on_a_new_gpu_runner_writes_a_whole_profile_and_shows_the_article_beside_it(
        pytester, standin):
    (pytester.path / "baselines").mkdir()
    shutil.copy(REPO_BASELINES / "qwen3-4b.toml", pytester.path / "baselines")
    pytester.makepyfile("""
        def test_figures(embed_metric, embed_client):
            assert embed_client.embed(["hello"]).shape == (1, 2560)
            embed_metric("latency_p50_ms", 60.0)
            embed_metric("gpu_memory_bytes", 9.1e9)
            embed_metric("cmteb_avg", 72.1)
    """)
    args = (f"--embed-url={standin('truncated', dimensions=2560).url}", "--embed-model=qwen3-4b",
            "--embed-hardware=h100-80gb-x1", "--embed-strict")
    first = pytester.runpytest(*args, "--embed-update-baselines")
    first.assert_outcomes(passed=1)
    assert first.ret == pytest.ExitCode.OK  # nothing measured here before: nothing to refuse, strict or not
    first.stdout.fnmatch_lines(["cmteb_avg *no baseline*article 70.58 points (disputed); official 72.27 points: -0.17",
                                "gpu_memory_bytes *no baseline*article 22.30 GB on a100-80gb-x1: -59%",
                                "latency_p50_ms *no baseline*article 89 ms on a100-80gb-x1: -33%"])
    text = (pytester.path / "baselines" / "qwen3-4b.toml").read_text()
    assert "[profiles.h100-80gb-x1-openai-compatible-auto]" in text and 'source = "measured"' in text
    for figure in ("latency_p50_ms = 60.0", "gpu_memory_bytes = 9100000000.0", "cmteb_avg = 72.1"):
        assert figure in text
    # The next strict run on that runner is judged by what it measured there, the article still beside it.
    again = pytester.runpytest(*args)
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["latency_p50_ms *60 ms (h100-80gb-x1-openai-compatible-auto, measured)*pass*article*"])
