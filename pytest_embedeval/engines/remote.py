"""A server this run did not start: ``--embed-url``. Same surface as SGLangServer, nothing to own."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from ..registry import ModelSpec
from . import auth_headers


class UnreachableServer(RuntimeError):
    pass


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
        """The dtype SGLang reports (/get_server_info); "auto" for other servers."""
        try:
            return str(self._get("/get_server_info").get("dtype", "auto"))
        except Exception:
            return "auto"

    @property
    def device(self) -> str:
        # The hardware key assumes the server runs on this machine (--embed-hardware overrides it).
        from .sglang import detect_device

        return detect_device()

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
