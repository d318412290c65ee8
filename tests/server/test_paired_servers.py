"""Paired verdicts with two servers: their vectors compared text by text and accuracy scored on both and judged as a
difference (STAND-IN servers: a drifted kernel on cue), and a real SGLang incumbent booted beside the candidate and
measured in alternation."""

import json
import sys

import pytest
from support.suites import paired_suite

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# -- vectors of two servers (STAND-IN servers: a drifted kernel on cue) -----------------------------

DRIFT = "import pytest\n\n@pytest.mark.embed_drift\ndef test_drift():\n    pass\n"


@pytest.mark.parametrize("fault, outcome", [(None, "passed"), ("drifted", "failed")])
def test_the_two_servers_vectors_are_compared_text_by_text(pytester, standin, fault, outcome):
    candidate, incumbent = standin(), standin(fault, cosine=0.99)
    pytester.makepyfile(DRIFT)
    result = pytester.runpytest(f"--embed-url={candidate.url}", "--embed-model=minilm", "--embed-update-baselines",
                                f"--embed-incumbent-url={incumbent.url}")
    result.assert_outcomes(**{outcome: 1})
    shown = "1.000000" if fault is None else "0.990000"
    result.stdout.fnmatch_lines([f"*candidate vs incumbent (the server at {incumbent.url})*",
                                 f"paired_min_cosine*{shown}*{'pass' if fault is None else 'REGRESSED'}"])


def test_accuracy_is_scored_on_both_servers_and_judged_as_a_difference(pytester, standin, user_sts_suite):
    candidate, incumbent = standin(), standin()
    result = pytester.runpytest(f"--embed-url={candidate.url}", "--embed-model=minilm", "--embed-report=report.json",
                                f"--embed-incumbent-url={incumbent.url}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*embed_accuracy: task 1/1 ours (minilm, incumbent)*",
                                 "paired:data:ours * points * points *pass"])
    (model,) = json.loads((pytester.path / "report.json").read_text())["models"]
    paired = next(v for v in model["verdicts"] if v["metric"] == "paired:data:ours")
    assert paired["measured"] == 0 and paired["interval"] == [0, 0]  # the same vectors: no difference at all
    assert candidate.embedding_requests > 0 and incumbent.embedding_requests > 0


# -- two real SGLang servers ----------------------------------------------------------------------

PAIRED_SUITE = paired_suite(requests=80)


def test_a_real_sglang_incumbent_is_booted_beside_the_candidate_and_measured_in_alternation(pytester, embed_server):
    # The candidate is this suite's server; the incumbent is booted by the inner run, through the "other
    # virtualenv" route (here the same python) and with other server arguments: the two common cases at once.
    pytester.makepyfile(PAIRED_SUITE)
    result = pytester.runpytest(f"--embed-url={embed_server.url}", "--embed-model=minilm", "--embed-update-baselines",
                                f"--embed-incumbent-python={sys.executable}",
                                "--embed-incumbent-server-arg=--max-total-tokens 8192",
                                "--embed-report=report.json", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        f"*candidate vs incumbent (minilm, booted by {sys.executable}, with arguments --max-total-tokens 8192)*",
        "paired_latency_p50_ratio * ms * ms *x*pass",
        "paired_min_cosine*pass"])
    (model,) = json.loads((pytester.path / "report.json").read_text())["models"]
    incumbent = model["server"]["incumbent"]
    assert "--max-total-tokens" in incumbent["argv"] and incumbent["software"].startswith("sglang 0.5")
    p50 = next(v for v in model["verdicts"] if v["metric"] == "paired_latency_p50_ratio")
    assert len(p50["pair"]) == 2 and 0.5 < p50["measured"] < 2 and "back to back, A B B A" in p50["note"]
    assert p50["tolerance"] == "25%"
    cosine = next(v for v in model["verdicts"] if v["metric"] == "paired_min_cosine")
    assert cosine["measured"] > 0.9999  # the same model and dtype on both: the same vectors
