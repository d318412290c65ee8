"""A server this run did not start: ``--embed-url``. Same surface as SGLangServer, nothing to own."""

from __future__ import annotations

import ipaddress
import warnings
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from ..facts.names import safe_name
from ..facts.registry import ModelSpec
from ..facts.server_access import auth_headers


class UnreachableServer(RuntimeError):
    pass


class UnsafeServerReport(UnreachableServer):
    """The server reported something that cannot be used as a name (its dtype becomes part of file names)."""


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
            f"the API key will be sent unencrypted to {parts.hostname} (--embed-url {url} is plain http to "
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
            response = httpx.get(f"{self.url}/v1/models", headers=auth_headers(self.api_key), timeout=10.0)
        except httpx.HTTPError as exc:
            raise UnreachableServer(
                f"--embed-url {self.url} is unreachable ({type(exc).__name__}: {exc}). "
                "Start the server first, or drop --embed-url to let the plugin boot one."
            ) from None
        if response.status_code != 200:
            raise UnreachableServer(
                f"--embed-url {self.url}: GET /v1/models answered {response.status_code}; "
                "is it an OpenAI-compatible server (and is --embed-api-key right)?"
            )
        try:
            self._dtype = self._reported_dtype()
        except ValueError as exc:
            raise UnsafeServerReport(str(exc)) from None
        return self

    def _get(self, route: str):
        return httpx.get(f"{self.url}{route}", headers=auth_headers(self.api_key), timeout=10.0).json()

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
        return safe_name(str(reported), f"dtype reported by --embed-url {self.url}/get_server_info")

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
            return ""
        from ..facts.registry import standard_args
        from .sglang import CPU_ARGS

        plugin_args = (CPU_ARGS if self.device == "cpu" else ()) + standard_args(self.spec)
        return from_server_info(info, plugin_args) if isinstance(info, dict) else ""

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
