"""The pull request's comment end to end, as the reusable workflow makes it: an inner pytest boots real SGLang as the
candidate and, through --embed-incumbent-python, as the incumbent (other server arguments), measures them in
alternation and writes --embed-report; then `embedeval pull-request` posts that report to a STAND-IN of GitHub's
REST API (tests/support/github_api.py) on two pushes: one comment, created, then updated, never duplicated."""

import sys

import pytest
from support.github_api import BOT, GitHubAPIStandin
from support.suites import paired_suite

from pytest_embedeval.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOKEN = "ghs_pull-request-end-to-end-token"

PAIRED_SUITE = paired_suite(requests=40)


def embedeval_pull_request(*argv: str) -> int:
    return main(["pull-request", *map(str, argv)])


def test_a_paired_run_becomes_one_comment_updated_on_the_next_push(pytester, monkeypatch, capsys):
    pytester.makepyfile(PAIRED_SUITE)
    inner = pytester.runpytest_subprocess(
        "--embed-model=minilm", f"--embed-incumbent-python={sys.executable}",
        "--embed-incumbent-server-arg=--max-total-tokens 8192", "--embed-report=run.json", "-p", "no:randomly",
        "-p", "no:cacheprovider", timeout=900)
    inner.assert_outcomes(passed=2)
    report = pytester.path / "run.json"

    with GitHubAPIStandin({TOKEN: BOT}, repository="octo/app", pulls=(12,)) as api:
        for name, value in {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": "octo/app", "GITHUB_TOKEN": TOKEN,
                            "GITHUB_SERVER_URL": "https://github.com"}.items():
            monkeypatch.setenv(name, value)
        for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(proxy, raising=False)
        statuses = []
        for push, run_id in enumerate(("1001", "1002")):
            monkeypatch.setenv("GITHUB_RUN_ID", run_id)
            comment_file = pytester.path / f"comment-{push}.md"
            statuses.append(embedeval_pull_request(report, "--pr", 12, "--output", comment_file))
        printed = capsys.readouterr()

    assert statuses == [inner.ret, inner.ret] == [0, 0]  # the comment job's status is the run's verdict
    assert [c.method for c in api.calls] == ["GET", "POST", "GET", "PATCH"]
    (comment,) = api.comments_of(12)
    body = comment["body"]
    assert body == (pytester.path / "comment-1.md").read_text()
    assert "actions/runs/1002" in body and "actions/runs/1001" not in body  # the second push's comment
    assert body.splitlines()[0] == "<!-- pytest-embedeval: minilm -->"
    assert body.splitlines()[1].startswith("## ✅"), body
    rows = [line for line in body.splitlines() if line.startswith("| paired_")]
    assert any(r.startswith("| paired_latency_p50_ratio (") and " ms | " in r and r.endswith("| pass |") for r in rows)
    assert any(r.startswith("| paired_min_cosine |") for r in rows), rows
    assert "```mermaid\nxychart-beta" in body
    sides = body.split("#### What each side ran")[1]
    assert f"The candidate against minilm, booted by {sys.executable}, with arguments --max-total-tokens 8192" in body
    software = next(line for line in sides.splitlines() if line.startswith("| software |"))
    assert software.count("sglang 0.5") == 2  # one interpreter booted both
    assert "| server flags only this side has | --max-total-tokens 8192 | - |" in sides
    incumbent_command = sides.split("incumbent:")[1].split("candidate:")[0]
    assert "--max-total-tokens 8192" in incumbent_command and "--max-total-tokens 8192" not in sides.split(
        "candidate:")[1]
    assert TOKEN not in printed.out + printed.err + body
