"""Which server a run tests: one the plugin boots for the model, or one already running at a URL."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from .engines.remote import RemoteServer, UnreachableServer
from .engines.sglang import ServerError as _BootError
from .engines.sglang import SGLangServer, detect_device
from .settings import Settings, worker_gpus

ServerError = (_BootError, UnreachableServer)  # what start() raises when there is no server to test


def server_for(spec, settings: Settings, log_dir: Path, worker: str | None = None):
    """The server (not yet started) that tests ``spec`` under these settings; ``worker`` is the xdist worker id."""
    if not settings.allow_downloads:
        # Nothing at test time reaches the hub unless asked: a missing file fails fast and says so.
        for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ[variable] = "1"
    if settings.url:
        return RemoteServer(settings.url, spec, api_key=settings.api_key)
    device = detect_device() if settings.device == "auto" else settings.device
    _unwind_on_sigterm()
    return SGLangServer(
        spec, device=device, extra_args=settings.server_args, api_key=settings.api_key,
        log_path=Path(log_dir) / f"sglang-{spec.alias}.log", boot_timeout=settings.boot_timeout,
        gpus=worker_gpus(settings.gpus, worker, device), host=settings.host)


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _unwind_on_sigterm() -> None:
    # A CI runner cancelling a job sends SIGTERM, whose default kills pytest without teardown.
    # Unwinding as for Ctrl-C lets session teardown stop the servers instead of orphaning them.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
