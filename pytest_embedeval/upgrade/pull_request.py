"""A pull request's one comment, written once and updated in place (the Markdown is ``report/comment.py``'s).

    embedeval pull-request RUN.json [--pr N] [--output comment.md] [--dry-run]

The comment opens with a hidden marker line naming the run's models, so that the next push finds it again: the
first run POSTs it, every later one PATCHes the same comment. A comment counts as ours when its first line is
the marker and its author is a bot (``user.type == "Bot"``: the workflow's ``GITHUB_TOKEN`` writes as
github-actions[bot], a GitHub App as its own bot); a person's comment that quotes the marker is never touched.
The exit status is the run's verdict (1 when a verdict fails), 2 when the report or GitHub is the problem.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .. import __version__
from ..report.comment import render
from ..run.record import Run

MAX_REPORT_BYTES = 32 * 1024 * 1024  # a run report is kilobytes to a few megabytes (every request's latency)
MAX_PAGES = 50  # 5,000 comments: far more than a pull request has; a bound against a Link loop
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
API_VERSION = "2022-11-28"
REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


class CommentError(Exception):
    """The comment could not be made: the sentence names what and the fix."""


def exit_status(run: Run) -> int:
    """The run's verdict as the job's status: 1 when the judge said a verdict fails the run."""
    return 1 if run.failing() else 0


# -- GitHub ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PullRequest:
    api_url: str  # https://api.github.com, or a GitHub Enterprise Server's https://HOST/api/v3
    repository: str  # owner/name
    number: int


def upsert(pull_request: PullRequest, token: str, body: str, transport: httpx.BaseTransport | None = None) -> str:
    """PATCH the pull request's comment that carries the body's marker, else POST one; "updated" or "created"."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": API_VERSION, "User-Agent": f"pytest-embedeval/{__version__}"}
    first_line = body.split("\n", 1)[0]
    with httpx.Client(base_url=pull_request.api_url.rstrip("/"), headers=headers, timeout=TIMEOUT,
                      transport=transport) as client:
        ours = next((c for c in _comments(client, pull_request)
                     if c.get("body", "").split("\n", 1)[0].strip() == first_line
                     and (c.get("user") or {}).get("type") == "Bot"), None)
        if ours is not None:
            _call(client, "PATCH", f"/repos/{pull_request.repository}/issues/comments/{ours['id']}", pull_request,
                  json={"body": body})
            return "updated"
        _call(client, "POST", f"/repos/{pull_request.repository}/issues/{pull_request.number}/comments", pull_request,
              json={"body": body})
        return "created"


def _comments(client: httpx.Client, pull_request: PullRequest):
    """Every comment of the pull request's conversation, page by page (the Link header's next)."""
    url = f"/repos/{pull_request.repository}/issues/{pull_request.number}/comments?per_page=100"
    origin = urlsplit(str(client.base_url))[:2]
    for _ in range(MAX_PAGES):
        response = _call(client, "GET", url, pull_request)
        yield from response.json()
        url = response.links.get("next", {}).get("url")
        if not url:
            return
        if urlsplit(url)[:2] != origin:  # the token goes only where GITHUB_API_URL points
            raise CommentError(f"GitHub's next page of comments is on another host ({urlsplit(url).netloc}); "
                               f"GITHUB_API_URL is {pull_request.api_url}")
    raise CommentError(f"pull request #{pull_request.number} has more than {MAX_PAGES} pages of comments")


def _call(client: httpx.Client, method: str, url: str, pull_request: PullRequest, **kwargs) -> httpx.Response:
    try:
        response = client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise CommentError(f"GitHub's API at {pull_request.api_url} did not answer {method} "
                           f"{urlsplit(url).path} ({type(exc).__name__}: {exc}); check GITHUB_API_URL "
                           "and the runner's network") from None
    if response.is_success:
        return response
    try:
        message = str(response.json().get("message", ""))[:200]
    except (ValueError, AttributeError):
        message = ""
    raise CommentError(f"GitHub answered {response.status_code} to {method} {urlsplit(url).path}"
                       f"{f' ({message})' if message else ''}: {_fix(response, pull_request)}")


def _fix(response: httpx.Response, pull_request: PullRequest) -> str:
    status = response.status_code
    if status == 401:
        return ("the token was refused: give the step the job's token, env GITHUB_TOKEN: ${{ github.token }}, "
                "or a token that has not expired")
    if status in (403, 429) and response.headers.get("x-ratelimit-remaining") == "0":
        return "the token's API rate limit is spent: run the job again after it resets"
    if status == 403:
        return ("the token may not write comments: the job needs permissions: pull-requests: write (a fork's pull "
                "request only ever gets a read-only token)")
    if status == 404:
        return (f"no pull request #{pull_request.number} in {pull_request.repository} that this token can see: check "
                "GITHUB_REPOSITORY and --pr")
    if status == 422:
        return "GitHub refused the comment's body"
    return "GitHub's API failed; run the job again, and check https://www.githubstatus.com if it keeps failing"


# -- the command ----------------------------------------------------------------------------------


def add_parser(commands) -> None:
    """``embedeval pull-request``, added to the command's subparsers."""
    parser = commands.add_parser(
        "pull-request", help="write or update the pull request's one comment from a saved paired run",
        description="Render a saved run (pytest --embed-report) as the pull request's comment and post it, or "
                    "update the one posted before. Reads GITHUB_TOKEN, GITHUB_REPOSITORY, GITHUB_API_URL and "
                    "GITHUB_EVENT_PATH. Exit status: 1 when a verdict fails the run.")
    parser.add_argument("run", type=Path, help="the run report (pytest --embed-report)")
    parser.add_argument("--pr", type=int, help="the pull request's number (default: GITHUB_EVENT_PATH's)")
    parser.add_argument("--output", type=Path, help="also write the comment's Markdown to this file")
    parser.add_argument("--dry-run", action="store_true", help="post nothing (print the Markdown without --output)")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    try:
        run = read_run(args.run)
        body = render(run, run_url())
        if args.output:
            args.output.write_text(body, encoding="utf-8")
        if args.dry_run:
            if not args.output:
                sys.stdout.write(body)
            return exit_status(run)
        pull_request, token = from_environment(args.pr)
        done = upsert(pull_request, token, body)
        print(f"{done} the comment on {pull_request.repository}#{pull_request.number}")
    except CommentError as exc:
        print(f"embedeval pull-request: {exc}", file=sys.stderr)
        return 2
    return exit_status(run)


def read_run(path: Path) -> Run:
    """The run report, refused when it is not a plain file of a run report's size and format."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise CommentError(f"{path}: no run report there (a plain file written by pytest --embed-report); check "
                           "that the GPU job uploaded it")
    if path.stat().st_size > MAX_REPORT_BYTES:
        raise CommentError(f"{path}: {path.stat().st_size} bytes, more than a run report's "
                           f"{MAX_REPORT_BYTES // 2**20} MiB; it is not one")
    try:
        return Run.from_json(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise CommentError(f"{path}: not a run report pytest --embed-report writes ({exc})") from None


def from_environment(number: int | None) -> tuple[PullRequest, str]:
    """The pull request and the token, from the options and what GitHub Actions sets."""
    token = os.environ.get("GITHUB_TOKEN", "")
    if not token:
        raise CommentError("GITHUB_TOKEN is not set: give the step env GITHUB_TOKEN: ${{ github.token }} (and the "
                           "job permissions: pull-requests: write), or pass --dry-run")
    repository = os.environ.get("GITHUB_REPOSITORY", "")
    if not REPOSITORY.fullmatch(repository):
        raise CommentError(f"GITHUB_REPOSITORY is {repository!r}: set it to owner/name (GitHub Actions sets it)")
    number = number if number is not None else _event_number()
    if number <= 0:
        raise CommentError(f"--pr {number}: a pull request's number is a positive integer")
    return PullRequest(os.environ.get("GITHUB_API_URL") or "https://api.github.com", repository, number), token


def _event_number() -> int:
    path = os.environ.get("GITHUB_EVENT_PATH")
    try:
        number = json.loads(Path(path).read_text(encoding="utf-8"))["pull_request"]["number"] if path else None
    except (OSError, ValueError, KeyError, TypeError):
        number = None
    if not isinstance(number, int):
        raise CommentError("no pull request number: pass --pr N, or run in a pull_request workflow "
                           f"(GITHUB_EVENT_PATH {path or 'is unset'} has no pull_request.number)")
    return number


def run_url() -> str | None:
    """The workflow run's page, where GitHub Actions says which run this is."""
    names = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    server, repository, run_id = (os.environ.get(name) for name in names)
    return f"{server}/{repository}/actions/runs/{run_id}" if server and repository and run_id else None
