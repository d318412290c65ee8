"""SGLang's model gateway (``smg``) in front of a fleet's workers: its launch, readiness, questions and teardown.

The gateway routes ``/v1/embeddings`` to one worker per request and says which in a response header; it asks the
workers for their health and drops one that stops answering. It is started through ``gateway_main`` so that the
key reaches it through a pipe, never its command line (``/proc/PID/cmdline`` is readable by every user).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ..facts.server_access import auth_headers
from .ports import LOCALHOST, describe_pid, free_port, listeners, port_taken, tree_pids
from .processes import process_tree, stop_tree
from .sglang import _die_with_parent, log_tail
from .watchdog import end_session, start_watchdog

# The worker that answered, as the gateway names it (its URL): the one per-request fact no metric endpoint gives.
ROUTED_HEADER = "x-smg-routed-worker-id"


class GatewayError(RuntimeError):
    """The gateway could not be started, or never saw its workers: the message carries the tail of its log."""


def installed() -> bool:
    return importlib.util.find_spec("smg") is not None


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as of

    try:
        return f"smg {of('smg')}"
    except PackageNotFoundError:
        return "smg (not installed)"


@dataclass
class Gateway:
    worker_urls: list[str]
    api_key: str = field(repr=False)
    log_path: Path
    policy: str = "round_robin"
    host: str = LOCALHOST
    port: int | None = None
    boot_timeout: float = 120.0
    env: dict = field(default_factory=lambda: dict(os.environ), repr=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port(self.host)
        self.metrics_port = free_port(self.host)
        self.process: subprocess.Popen | None = None
        self.watchdog: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        host = LOCALHOST if self.host in ("0.0.0.0", "::", "") else self.host  # reached over loopback
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "pytest_embedeval.serve.gateway_main", "--host", self.host,
                "--port", str(self.port), "--worker-urls", *self.worker_urls, "--policy", self.policy,
                "--prometheus-host", self.host, "--prometheus-port", str(self.metrics_port), "--log-level", "info"]

    def start(self) -> "Gateway":
        if not installed():
            raise GatewayError("a fleet needs SGLang's model gateway: pip install 'pytest-embedeval[fleet]' "
                               "(the smg package), or drop --embed-workers")
        for port in (self.port, self.metrics_port):
            if port_taken(self.host, port):
                owners = ", ".join(describe_pid(pid) for pid, _ in listeners(port, self.host)) or "another process"
                raise GatewayError(f"cannot start the gateway: port {port} on {self.host} is taken by {owners}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        try:
            self.process = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env, start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            log.close()
        self.process.stdin.write(self.api_key.encode() + b"\n")
        self.process.stdin.close()
        try:
            self.watchdog = start_watchdog(self.process.pid, self.env)
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_until_ready(self) -> None:
        """Ready = alive, its port owned by its own process, and every worker registered and healthy: its
        /health answers 200 seconds before it has asked the workers anything."""
        deadline = time.monotonic() + self.boot_timeout
        owner_checked, seen = False, None
        with httpx.Client(timeout=5.0, trust_env=False) as http:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise GatewayError(f"the gateway exited with code {code} before it was ready.\n"
                                       f"Log: {self.log_path}\n{self.log_tail()}")
                try:
                    status = http.get(f"{self.url}/health").status_code
                except httpx.TransportError:
                    status = None
                if status is not None and not owner_checked:  # the key goes nowhere before the owner is known
                    foreign = [pid for pid, _ in listeners(self.port, self.host)
                               if pid not in tree_pids(self.process.pid)]
                    if foreign:
                        raise GatewayError(f"port {self.port} was taken by {describe_pid(foreign[0])} while the "
                                           "gateway started: its answers would not be the fleet's")
                    owner_checked = True
                if status == 200:
                    seen = self.workers(http)
                    healthy = {w.get("url") for w in seen if w.get("is_healthy", True)}
                    if set(self.worker_urls) <= healthy:
                        return
                if time.monotonic() > deadline:
                    listed = ", ".join(f"{w.get('url')} ({'healthy' if w.get('is_healthy') else 'unhealthy'})"
                                       for w in seen or []) or "none"
                    raise GatewayError(
                        f"the gateway did not list all {len(self.worker_urls)} workers as healthy within "
                        f"{self.boot_timeout:.0f} s (it lists: {listed}); it was stopped.\n"
                        f"Log: {self.log_path}\n{self.log_tail()}")
                time.sleep(0.2)

    def workers(self, http: httpx.Client | None = None) -> list[dict]:
        return list_workers(self.url, self.api_key, http)

    def stop(self, grace: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_tree(process_tree(self.process.pid), grace)
        if self.process is not None:
            end_session(self.process.pid, grace=0.0)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait(timeout=5)

    def __enter__(self) -> "Gateway":
        return self if self.process is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines, self.api_key)


def list_workers(url: str, api_key: str | None, http: httpx.Client | None = None) -> list[dict]:
    """The workers a gateway at ``url`` routes to (its ``/workers``); [] where it answers no such list (it is
    no gateway, or not one that says)."""
    own = http is None
    http = http or httpx.Client(timeout=10.0, trust_env=False)
    try:
        answer = http.get(f"{url.rstrip('/')}/workers", headers=auth_headers(api_key))
        listed = answer.json().get("workers") if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        listed = None
    finally:
        if own:
            http.close()
    return [w for w in listed if isinstance(w, dict) and w.get("url")] if isinstance(listed, list) else []
