"""A STAND-IN of GitHub's REST API for a pull request's comments: not GitHub; it keeps comments in memory.

Just the calls `embedeval pull-request` makes, answered as GitHub answers them: list a pull request's issue
comments (``GET /repos/OWNER/NAME/issues/N/comments``, in pages of at most ``page_size`` with a ``Link`` header
naming the next and last pages), create one (``POST`` there, 201) and update one (``PATCH
/repos/OWNER/NAME/issues/comments/ID``). Every call needs ``Authorization: Bearer TOKEN`` with a token it was
given: an unknown one gets 401 "Bad credentials", a read-only one 403 on a write, as a job without
``permissions: pull-requests: write`` does. Every call is recorded (method, path, query, status; never the token).
``prefix`` serves it under a path, as GitHub Enterprise Server serves ``/api/v3``.

    with GitHubAPIStandin(tokens={"tok": BOT}, page_size=2) as api:
        api.add_comment(7, "<!-- pytest-embedeval: minilm -->\\nquoted", OCTOCAT)
        ...GITHUB_API_URL=api.url...
        api.comments_of(7), api.calls
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass(frozen=True)
class Identity:
    """Who a token writes as."""

    login: str
    type: str = "Bot"  # "Bot" for GITHUB_TOKEN (github-actions[bot]) and Apps, "User" for a person
    write: bool = True  # False: the job's token has no pull-requests: write


BOT = Identity("github-actions[bot]")
OCTOCAT = Identity("octocat", "User")


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict
    status: int


class GitHubAPIStandin:
    """One STAND-IN API (not GitHub) for ``repository``'s pull requests ``pulls``, in a background thread."""

    def __init__(self, tokens: dict[str, Identity], *, repository: str = "octo/app", pulls: tuple[int, ...] = (7,),
                 page_size: int = 100, prefix: str = ""):
        self.tokens = tokens
        self.repository = repository
        self.pulls = set(pulls)
        self.page_size = page_size  # GitHub's most per page is 100; fewer makes pages without 100s of comments
        self.prefix = prefix.rstrip("/")
        self.comments: dict[int, dict] = {}  # id -> comment, in creation order
        self.calls: list[Call] = []
        self._next_id = 1000
        self._lock = threading.RLock()  # a write holds it while add_comment takes it again
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="github-api-standin", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{self.prefix}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def add_comment(self, number: int, body: str, author: Identity) -> dict:
        """A comment someone wrote before: a person, another bot, or an earlier run."""
        with self._lock:
            self._next_id += 1
            comment = {"id": self._next_id, "number": number, "body": body,
                       "user": {"login": author.login, "type": author.type},
                       "html_url": f"https://github.com/{self.repository}/pull/{number}#issuecomment-{self._next_id}"}
            self.comments[comment["id"]] = comment
            return comment

    def comments_of(self, number: int) -> list[dict]:
        return [c for c in self.comments.values() if c["number"] == number]

    # -- answers ------------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: dict, authorization: str, body: bytes) -> tuple[int, dict, object]:
        """(status, extra headers, JSON) for one call."""
        scheme, _, token = authorization.partition(" ")
        identity = self.tokens.get(token) if scheme == "Bearer" else None
        if identity is None:
            return 401, {}, {"message": "Bad credentials"}
        repo = re.escape(self.repository)
        if match := re.fullmatch(rf"/repos/{repo}/issues/(\d+)/comments", path):
            number = int(match.group(1))
            if number not in self.pulls:
                return 404, {}, {"message": "Not Found"}
            if method == "GET":
                return self.page(number, query)
            if method == "POST":
                return self.write(identity, lambda text: self.add_comment(number, text, identity), body, 201)
        if (match := re.fullmatch(rf"/repos/{repo}/issues/comments/(\d+)", path)) and method == "PATCH":
            comment = self.comments.get(int(match.group(1)))
            if comment is None:
                return 404, {}, {"message": "Not Found"}
            return self.write(identity, lambda text: comment.update(body=text) or comment, body, 200)
        return 404, {}, {"message": "Not Found"}

    def page(self, number: int, query: dict) -> tuple[int, dict, list]:
        per_page = min(int(query.get("per_page", 30)), self.page_size)
        page = int(query.get("page", 1))
        comments = self.comments_of(number)
        last = max(1, -(-len(comments) // per_page))

        def link(n: int, rel: str) -> str:
            query = urlencode({"per_page": per_page, "page": n})
            return f'<{self.url}/repos/{self.repository}/issues/{number}/comments?{query}>; rel="{rel}"'

        links = ([link(page + 1, "next"), link(last, "last")] if page < last else []) + (
            [link(1, "first"), link(page - 1, "prev")] if page > 1 else [])
        return 200, {"Link": ", ".join(links)} if links else {}, comments[(page - 1) * per_page:page * per_page]

    def write(self, identity: Identity, apply, body: bytes, status: int) -> tuple[int, dict, object]:
        if not identity.write:
            return 403, {}, {"message": "Resource not accessible by integration"}
        try:
            text = json.loads(body)["body"]
        except (ValueError, KeyError, TypeError):
            return 422, {}, {"message": "Invalid request: body is required"}
        if len(text) > 65536:
            return 422, {}, {"message": "Validation Failed: body is too long (maximum is 65536 characters)"}
        with self._lock:
            return status, {}, apply(text)


def _handler_for(api: GitHubAPIStandin):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet: the test output is the client's
            pass

        def _serve(self) -> None:
            url = urlsplit(self.path)
            path = url.path.removeprefix(api.prefix) if url.path.startswith(api.prefix + "/") else "/not-served"
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, answer = api.answer(self.command, path, query, self.headers.get("Authorization", ""),
                                                 body)
            api.calls.append(Call(self.command, path, query, status))
            data = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json; charset=utf-8", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

    return Handler
