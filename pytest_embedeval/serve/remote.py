"""A server this run did not start: ``--embed-url``. Same surface as SGLangServer, nothing to own."""

from __future__ import annotations

import ipaddress
import warnings
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from ..facts.names import safe_name
from ..facts.registry import ModelSpec
from ..facts.server_access import auth_headers, redact_url


class UnreachableServer(RuntimeError):
    pass


class UnsafeServerReport(UnreachableServer):
    """The server reported something that cannot be used as a name (its dtype becomes part of file names)."""


INFO_SECONDS = 10.0  # the whole of one answer about the server (/v1/models, /get_server_info)
INFO_BYTES = 1 << 20


class InsecureKeyWarning(UserWarning):
    """An API key is about to travel unencrypted over a network."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (by name or address); other names are taken as remote."""
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_key_in_clear(url: str, api_key: str | None) -> bool:
    """Warn (InsecureKeyWarning) when ``api_key`` would be sent over plain http to another machine.

    Returns whether it warned. Anyone on the path between the two machines can read an http header.
    """
    parts = urlsplit(url)
    if not api_key or parts.scheme != "http" or is_loopback(parts.hostname or ""):
        return False
    warnings.warn(
        InsecureKeyWarning(
            f"the API key will be sent unencrypted to {parts.hostname} (--embed-url {redact_url(url)} is plain http to "
            "another machine): anyone on the network path can read it. Use an https:// URL, or reach the server "
            "through an SSH tunnel on localhost."
        ),
        stacklevel=2,
    )
    return True


@dataclass
class RemoteServer:
    url: str
    spec: ModelSpec
    api_key: str | None = field(default=None, repr=False)  # a repr reaches tracebacks (a failing test's arguments)
    process = None  # not ours: its memory cannot be measured, and it is never stopped
    boot_seconds = None

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if self.url.endswith("/v1"):
            self.url = self.url[: -len("/v1")]
        warn_if_key_in_clear(self.url, self.api_key)

    def start(self) -> "RemoteServer":
        try:
            response = self._request("/v1/models")
        except httpx.HTTPError as exc:
            raise UnreachableServer(
                f"--embed-url {redact_url(self.url)} is unreachable ({type(exc).__name__}: {exc}). "
                "Start the server first, or drop --embed-url to let the plugin boot one."
            ) from None
        if response.status_code != 200:
            raise UnreachableServer(
                f"--embed-url {redact_url(self.url)}: GET /v1/models answered {response.status_code}; "
                "is it an OpenAI-compatible server (and is --embed-api-key right)?"
            )
        try:
            self._dtype = self._reported_dtype()
        except ValueError as exc:
            raise UnsafeServerReport(str(exc)) from None
        from .gateway import list_workers

        # A gateway (SGLang's model gateway) lists the workers it routes to: the run measures each of them, numbered
        # by URL, so that "worker 2 of 2" is the same worker in every run whatever order the gateway lists them in.
        self._workers = sorted(w["url"].rstrip("/") for w in list_workers(self.url, self.api_key))
        return self

    def worker_urls(self) -> list[str]:
        """The workers behind it, where it is a gateway that lists them; [] for one server."""
        return list(getattr(self, "_workers", []))

    def _request(self, route: str) -> httpx.Response:
        """GET ``route``, whole answer within INFO_SECONDS (a server trickling a byte every 9 s is cut off)
        and INFO_BYTES; like every request of the plugin's, never through a proxy."""
        from .client import DeadlineTransport

        with httpx.Client(transport=DeadlineTransport(INFO_SECONDS, limit=INFO_BYTES), timeout=INFO_SECONDS,
                          headers=auth_headers(self.api_key)) as http:
            response = http.get(f"{self.url}{route}")
            response.read()
            return response

    def _get(self, route: str):
        return self._request(route).json()

    def served_model(self) -> str:
        """The id the server lists first, for servers that validate the request's model."""
        try:
            return self._get("/v1/models")["data"][0]["id"]
        except Exception:
            return self.spec.alias

    @property
    def dtype(self) -> str:
        """The dtype SGLang reports (/get_server_info); "auto" for other servers. Read once, at start."""
        if getattr(self, "_dtype", None) is None:
            self._dtype = self._reported_dtype()
        return self._dtype

    def _reported_dtype(self) -> str:
        # It becomes part of the baseline's file names: a value that is not a plain name (a server that
        # reports "/../../x") is refused (ValueError) rather than written outside the store.
        try:
            info = self._get("/get_server_info")
            reported = info.get("dtype", "auto") if isinstance(info, dict) else "auto"
        except Exception:
            return "auto"
        return safe_name(str(reported), f"dtype reported by --embed-url {redact_url(self.url)}/get_server_info")

    @property
    def device(self) -> str:
        # The hardware key assumes the server runs on this machine (--embed-hardware overrides it).
        from .sglang import detect_device

        return detect_device()

    def deployment(self) -> str:
        """The flags that change results, as the server reports them about itself ("" where it does not)."""
        from ..facts.deployment import from_server_info

        try:
            info = self._get("/get_server_info")
        except Exception:
            info = None
        from ..facts.registry import standard_args
        from .argv import CPU_ARGS

        plugin_args = (CPU_ARGS if self.device == "cpu" else ()) + standard_args(self.spec)
        flags = from_server_info(info, plugin_args) if isinstance(info, dict) else ""
        fleet = f"--fleet-workers {len(self.worker_urls())}" if self.worker_urls() else ""  # never one server's
        return " ".join(filter(None, [flags, fleet]))

    def engine_info(self) -> tuple[str, str]:
        try:
            return "sglang", f"sglang {self._get('/get_server_info')['version']} (--embed-url)"
        except Exception:
            return "openai-compatible", "unknown server (--embed-url)"

    def is_alive(self) -> bool:
        return True

    def stop(self) -> None:
        pass

    def log_tail(self, lines: int = 40) -> str:
        return "(no log: --embed-url points at a server this run did not start)"
