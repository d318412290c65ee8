"""The pull request's one comment: rendered from a saved paired run, written once and then updated in place through
a STAND-IN of GitHub's REST API (tests/support/github_api.py, a thread on 127.0.0.1), never duplicated, other
comments untouched, the token never shown."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import httpx
import pytest
from support.github_api import BOT, OCTOCAT, GitHubAPIStandin, Identity

from pytest_embedeval.cli import main
from pytest_embedeval.facts.hardware import HardwareProfile
from pytest_embedeval.judge.rules import Figure, Judge, Policy
from pytest_embedeval.report import comment
from pytest_embedeval.run.record import ModelRun, Run
from pytest_embedeval.store.baselines import BaselineStore
from pytest_embedeval.upgrade import pull_request
from pytest_embedeval.upgrade.pull_request import (
    CommentError,
    PullRequest,
    upsert,
)

TOKEN = "ghs_" + secrets.token_hex(16)
READ_ONLY = "ghs_" + secrets.token_hex(16)
HERE = HardwareProfile("cpu-2c-amd-epyc", "sglang", "float32", "", paired=True)
P50 = "paired_latency_p50_ratio (batch 1 x 16 tokens)"
CANDIDATE_ARGV = ["/venv/bin/python", "-m", "sglang.launch_server", "--model-path", "/models/minilm",
                  "--quantization", "fp8", "--port", "40001"]
INCUMBENT_ARGV = ["/opt/old/bin/python", "-m", "sglang.launch_server", "--model-path", "/models/minilm",
                  "--port", "40002"]


def figures(p50=(1.004, (0.998, 1.011)), memory=1.02, accuracy=(0.1, (-0.2, 0.4))):
    """A paired run's figures: latency ratio, memory ratio, vectors, and an accuracy difference on the same items."""
    return [Figure(P50, p50[0], p50[1], note="request pairs back to back, A B B A", pair=(20.0, 20.0 * p50[0])),
            Figure("paired_memory_ratio", memory, None, pair=(5.1e9, 5.1e9 * memory)),
            Figure("paired_min_cosine", 0.99999994, None),
            Figure("paired:mteb:EmbedEvalSTS-en", accuracy[0], accuracy[1], pair=(74.9, 74.9 + accuracy[0]))]


def saved_run(tmp_path, figures_=None, *, paired=True) -> Path:
    """A run report as pytest --embed-report writes it, its verdicts decided by the real judge."""
    judge = Judge(BaselineStore(tmp_path / "baselines"), Policy())
    chosen = figures() if figures_ is None else figures_
    verdicts = [judge.verdict("minilm", f, HERE, half_precision=False) for f in chosen]
    server = {"url": "http://127.0.0.1:40001", "argv": CANDIDATE_ARGV, "omp_threads": 1}
    if paired:
        server["incumbent"] = {"described": "minilm, booted by /opt/old/bin/python", "url": "http://127.0.0.1:40002",
                               "software": "sglang 0.5.22, torch 2.13.0, transformers 5.18.0 (/opt/old/bin/python)",
                               "dtype": "float32", "argv": INCUMBENT_ARGV, "omp_threads": 1}
    model_run = ModelRun("minilm", HERE, "AMD EPYC 7763 (2 cores)", "sglang 0.5.23, torch 2.14.1, transformers 5.19.0",
                         server=server, verdicts=verdicts)
    path = tmp_path / "run.json"
    path.write_text(Run({"minilm": model_run}, environment={"gpu_driver": None}).to_json())
    return path


def embedeval(*argv: str) -> int:
    """`embedeval pull-request ...`, as a user types it."""
    return main(["pull-request", *map(str, argv)])


def comment_of(path, capsys) -> tuple[int, str]:
    status = embedeval(path, "--dry-run")
    return status, capsys.readouterr().out


# -- what the comment says ------------------------------------------------------------------------


def test_a_regressed_pair_says_so_in_the_headline_and_the_table_and_fails_the_job(tmp_path, capsys):
    status, body = comment_of(saved_run(tmp_path, figures(p50=(1.12, (1.09, 1.15)))), capsys)
    assert status == 1
    first, headline = body.splitlines()[:2]
    assert first == "<!-- pytest-embedeval: minilm -->"
    assert headline.startswith("## ❌") and "1 regressed" in headline
    row = next(line for line in body.splitlines() if line.startswith(f"| {P50} |"))
    assert "REGRESSED" in row and "1.120x" in row and "22.4 ms" in row and "20 ms" in row
    assert "candidate 22.4 ms vs incumbent 20 ms" in body  # the verdict's own sentence under the headline


def test_a_clean_pair_passes(tmp_path, capsys):
    status, body = comment_of(saved_run(tmp_path), capsys)
    assert status == 0
    assert body.splitlines()[1].startswith("## ✅") and "pass" in body.splitlines()[1]
    assert "REGRESSED" not in body and "❌" not in body


def test_a_pair_that_cannot_tell_is_not_a_pass(tmp_path, capsys):
    status, body = comment_of(saved_run(tmp_path, figures(p50=(1.02, (0.7, 1.4)))), capsys)
    headline = body.splitlines()[1]
    assert headline.startswith("## ❔") and "cannot tell" in headline and "✅" not in body
    assert "measure more requests or items" in body  # what would settle it
    assert status == 0  # the run's own verdict: inconclusive fails nothing unless --embed-strict


def test_a_run_without_an_incumbent_cannot_tell_and_says_how_to_pair(tmp_path, capsys):
    alone = [Figure("latency_p50_ms (batch 1 x 16 tokens)", 21.0, (20.5, 21.6))]
    status, body = comment_of(saved_run(tmp_path, alone, paired=False), capsys)
    assert "cannot tell" in body.splitlines()[1] and "--embed-incumbent-python" in body and status == 0
    assert "this run had no incumbent" in body and "measured side by side" not in body


def test_accuracy_memory_and_a_chart_of_the_ratios_with_their_tolerance(tmp_path, capsys):
    _, body = comment_of(saved_run(tmp_path, figures(memory=1.3)), capsys)
    sections = re.findall(r"^#### (.+)$", body, re.MULTILINE)
    assert sections[:3] == ["Speed and vectors", "Accuracy on the same items (candidate minus incumbent, points)",
                            "Memory"]
    accuracy = body.split("#### Accuracy")[1].split("####")[0]
    assert "paired:mteb:EmbedEvalSTS-en" in accuracy and "74.9 points" in accuracy and "75 points" in accuracy
    memory = body.split("#### Memory")[1].split("```")[0]
    assert "1.300x" in memory and "REGRESSED" in memory and "5.10 GB" in memory
    chart = body.split("```mermaid\n")[1].split("```")[0]
    assert chart.startswith("xychart-beta") and "bar [1.0040, 1.3000]" in chart
    assert "line [0.9500, 0.9000]" in chart and "line [1.0500, 1.1000]" in chart  # 5% for latency, 10% for memory


def test_what_each_side_ran(tmp_path, capsys):
    _, body = comment_of(saved_run(tmp_path), capsys)
    sides = body.split("#### What each side ran")[1]
    software = next(line for line in sides.splitlines() if line.startswith("| software |"))
    assert "sglang 0.5.22, torch 2.13.0" in software and "sglang 0.5.23, torch 2.14.1" in software
    assert "| machine | AMD EPYC 7763 (2 cores) | AMD EPYC 7763 (2 cores) |" in sides
    assert "| server flags only this side has | - | --quantization fp8 |" in sides  # not the ports: every boot's own
    assert "--quantization fp8" in sides.split("candidate:")[1] and "--quantization" not in sides.split(
        "candidate:")[0].split("incumbent:")[1]


def test_text_from_the_report_cannot_break_the_table_or_add_html(tmp_path, capsys):
    hostile = figures()
    hostile[0] = Figure(P50.replace("tokens)", "tokens | <img src=https://evil.example/p.png>)"), 1.0, (0.99, 1.01),
                        pair=(20.0, 20.0))
    _, body = comment_of(saved_run(tmp_path, hostile), capsys)
    assert "<img" not in body and "&lt;img" in body
    table = [line for line in body.split("#### Speed and vectors")[1].split("\n\n")[1].splitlines()]
    assert len({len(re.findall(r"(?<!\\)\|", line)) for line in table}) == 1  # every row has as many cells


# -- posting it -----------------------------------------------------------------------------------


@pytest.fixture
def github(monkeypatch):
    """The STAND-IN API, and the environment GitHub Actions gives the comment job."""
    for name in ("GITHUB_EVENT_PATH", "GITHUB_RUN_ID", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
                 "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    def start(**options) -> GitHubAPIStandin:
        api = GitHubAPIStandin({TOKEN: BOT, READ_ONLY: Identity(BOT.login, write=False)}, **options).start()
        started.append(api)
        monkeypatch.setenv("GITHUB_API_URL", api.url)
        monkeypatch.setenv("GITHUB_REPOSITORY", api.repository)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        return api

    started: list[GitHubAPIStandin] = []
    yield start
    for api in started:
        api.stop()


def ours(api: GitHubAPIStandin) -> list[dict]:
    return [c for c in api.comments_of(7) if c["user"]["type"] == "Bot"
            and c["body"].startswith("<!-- pytest-embedeval: minilm -->\n")]


def test_the_first_run_posts_the_comment_and_the_next_push_updates_it(tmp_path, github, capsys):
    api = github()
    quoted = api.add_comment(7, "<!-- pytest-embedeval: minilm -->\nI quoted the bot's comment here", OCTOCAT)
    other_bot = api.add_comment(7, "pytest-embedeval: minilm looks fine to me", Identity("renovate[bot]"))
    assert embedeval(saved_run(tmp_path), "--pr", 7) == 0
    assert [(c.method, c.status) for c in api.calls] == [("GET", 200), ("POST", 201)]
    (created,) = ours(api)
    assert "✅" in created["body"].splitlines()[1]

    api.calls.clear()
    assert embedeval(saved_run(tmp_path, figures(p50=(1.12, (1.09, 1.15)))), "--pr", 7) == 1
    assert [(c.method, c.path) for c in api.calls] == [
        ("GET", "/repos/octo/app/issues/7/comments"), ("PATCH", f"/repos/octo/app/issues/comments/{created['id']}")]
    (updated,) = ours(api)
    assert updated["id"] == created["id"] and "❌" in updated["body"].splitlines()[1]
    assert api.comments[quoted["id"]] == quoted and api.comments[other_bot["id"]] == other_bot  # untouched
    assert len(api.comments_of(7)) == 3
    assert "updated the comment on octo/app#7" in capsys.readouterr().out


def test_its_own_comment_is_found_on_a_later_page(tmp_path, github):
    api = github(page_size=2)
    for n in range(5):
        api.add_comment(7, f"review comment {n}", OCTOCAT)
    embedeval(saved_run(tmp_path), "--pr", 7)  # the sixth comment: on the third page
    api.calls.clear()
    for _ in range(2):
        assert embedeval(saved_run(tmp_path), "--pr", 7) == 0
    pages = [c.query.get("page", "1") for c in api.calls if c.method == "GET"]
    assert pages == ["1", "2", "3", "1", "2", "3"]  # 6 comments, 2 a page: every page read each time
    assert [c.method for c in api.calls if c.method != "GET"] == ["PATCH", "PATCH"]
    assert len(ours(api)) == 1 and len(api.comments_of(7)) == 6


def test_a_comment_written_by_a_person_is_never_edited_even_with_the_marker(tmp_path, github):
    api = github()
    person = api.add_comment(7, comment.render(Run.from_json(saved_run(tmp_path))), OCTOCAT)
    assert embedeval(saved_run(tmp_path), "--pr", 7) == 0
    assert api.comments[person["id"]] == person
    assert [c.method for c in api.calls] == ["GET", "POST"] and len(ours(api)) == 1


def test_a_token_without_write_permission_is_told_which_permission(tmp_path, github, monkeypatch, capsys):
    api = github()
    monkeypatch.setenv("GITHUB_TOKEN", READ_ONLY)
    assert embedeval(saved_run(tmp_path), "--pr", 7) == 2
    err = capsys.readouterr().err
    assert "403" in err and "permissions: pull-requests: write" in err
    assert api.comments_of(7) == []


@pytest.mark.parametrize("token, status, fix", [("ghs_" + "0" * 32, 401, "the token was refused"),
                                                (TOKEN, 404, "check GITHUB_REPOSITORY and --pr")])
def test_github_errors_name_the_status_and_the_fix(tmp_path, github, monkeypatch, capsys, token, status, fix):
    github()
    monkeypatch.setenv("GITHUB_TOKEN", token)
    assert embedeval(saved_run(tmp_path), "--pr", 7 if status == 401 else 8) == 2
    err = capsys.readouterr().err
    assert str(status) in err and fix in err


def test_the_token_never_appears_in_what_is_printed_or_posted(tmp_path, github, monkeypatch, capsys):
    api = github()
    outputs = []
    for token, pr in ((TOKEN, 7), (TOKEN, 7), (READ_ONLY, 7), ("ghs_" + "1" * 32, 7), (TOKEN, 8)):
        monkeypatch.setenv("GITHUB_TOKEN", token)
        embedeval(saved_run(tmp_path), "--pr", pr, "--output", tmp_path / "comment.md")
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err, (tmp_path / "comment.md").read_text()]
    text = "\n".join(outputs + [c["body"] for c in api.comments.values()])
    assert TOKEN not in text and READ_ONLY not in text and "1" * 32 not in text
    assert "updated" in text and "403" in text and "401" in text and "404" in text  # every path was taken


def test_the_pull_request_number_comes_from_the_event(tmp_path, github, monkeypatch):
    api = github()
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "pull_request": {"number": 7}}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    assert embedeval(saved_run(tmp_path)) == 0 and len(ours(api)) == 1


def test_github_enterprise_servers_api_under_a_path(tmp_path, github):
    api = github(prefix="/api/v3")
    assert api.url.endswith("/api/v3")
    assert embedeval(saved_run(tmp_path), "--pr", 7) == 0 and len(ours(api)) == 1


def test_a_next_page_on_another_host_never_gets_the_token(tmp_path):
    seen = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(200, json=[], headers={"Link": '<https://evil.example/page2>; rel="next"'})

    target = PullRequest("https://api.github.com", "octo/app", 7)
    with pytest.raises(CommentError, match="another host"):
        upsert(target, TOKEN, "<!-- pytest-embedeval: minilm -->\nbody", transport=httpx.MockTransport(answer))
    assert seen == ["api.github.com"]


def test_without_a_token_it_says_how_to_give_one_or_to_dry_run(tmp_path, github, monkeypatch, capsys):
    github()
    monkeypatch.delenv("GITHUB_TOKEN")
    assert embedeval(saved_run(tmp_path), "--pr", 7) == 2
    err = capsys.readouterr().err
    assert "GITHUB_TOKEN is not set" in err and "--dry-run" in err


def test_output_writes_the_markdown_and_dry_run_posts_nothing(tmp_path, github):
    api = github()
    assert embedeval(saved_run(tmp_path), "--pr", 7, "--dry-run", "--output", tmp_path / "c.md") == 0
    assert api.calls == [] and (tmp_path / "c.md").read_text().startswith("<!-- pytest-embedeval: minilm -->")


def test_what_it_reads_must_be_a_run_report_of_a_run_reports_size(tmp_path, capsys):
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "something/else", "models": []}))
    assert embedeval(wrong, "--dry-run") == 2 and "pytest-embedeval/run/1" in capsys.readouterr().err
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as out:
        out.truncate(pull_request.MAX_REPORT_BYTES + 1)  # sparse: no disk used
    assert embedeval(huge, "--dry-run") == 2 and "MiB" in capsys.readouterr().err
    assert embedeval(tmp_path / "missing.json", "--dry-run") == 2
    assert "check that the GPU job uploaded it" in capsys.readouterr().err


def test_a_comment_over_githubs_limit_is_cut_with_a_note(tmp_path, capsys):
    many = [Figure(f"paired_latency_p50_ratio (batch 1 x {n} tokens)", 1.0, (0.99, 1.01), pair=(20.0, 20.0))
            for n in range(1, 900)]
    _, body = comment_of(saved_run(tmp_path, many), capsys)
    assert len(body) <= comment.MAX_COMMENT_CHARS and "cut at GitHub's comment limit" in body
