"""Which servers a run tests: the candidate (booted for the model, or at a URL) and, in a paired run, the
incumbent beside it; where each runs when they share a machine."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from .gateway import GatewayError
from .remote import RemoteServer, UnreachableServer
from .sglang import ServerError as _BootError
from .placement import NoRoomForTwo, fleet_placement, placement
from .sglang import SGLangServer, detect_device


# No server to test, and the sentence says why.
CannotServe = (_BootError, UnreachableServer, NoRoomForTwo, GatewayError)


def server_for(spec, settings, log_dir: Path, worker: str | None = None, *, incumbent: bool = False,
               progress=None):
    """The server (not yet started) for ``spec``: the candidate, or with ``incumbent`` the paired incumbent;
    ``progress(line)`` hears how a long boot is going."""
    if not settings.allow_downloads:
        go_offline()
    pair = settings.incumbent
    url = pair.url if incumbent else settings.url
    key = pair.api_key if incumbent else settings.api_key  # each server its own: one never hears the other's
    if url:
        return RemoteServer(url, spec, api_key=key)
    device = detect_device() if settings.device == "auto" else settings.device
    arguments = settings.server_args
    if incumbent and pair.server_args is not None:
        arguments = pair.server_args
    # A key on every server the plugin boots, the user's or a new one: another user of a shared machine (or a
    # container on its network) can reach 127.0.0.1, and SGLang has had remote-code bugs in its routes.
    # Prefixed: SGLang's parser reads a key that begins with "-" (one in 64 of urlsafe tokens) as an option.
    key = key or f"embedeval-{secrets.token_urlsafe(32)}"
    name = f"sglang-{spec.alias}{'-incumbent' if incumbent else ''}"
    _unwind_on_sigterm()

    def sglang(allotted, log_name: str) -> SGLangServer:
        extra = arguments
        if allotted.memory_fraction and not any(a.startswith("--mem-fraction-static") for a in arguments):
            extra = (*arguments, "--mem-fraction-static", f"{allotted.memory_fraction:.3f}")
        return SGLangServer(
            spec, device=device, extra_args=tuple(extra), api_key=key, log_path=Path(log_dir) / f"{log_name}.log",
            boot_timeout=settings.boot_timeout, gpus=allotted.gpus, cpu_threads=allotted.cpu_threads,
            host=settings.host, offline=not settings.allow_downloads,
            python=(pair.python if incumbent and pair.python else sys.executable), any_sglang=settings.any_sglang,
            progress=progress)

    workers = settings.workers or spec.workers
    if workers == 1:
        return sglang(placement(settings, device, worker, incumbent), name)
    from .fleet import Fleet
    from .gateway import Gateway

    members = [sglang(allotted, f"{name}-worker{index}")
               for index, allotted in enumerate(fleet_placement(settings, device, workers, incumbent, worker), 1)]
    # The same key on every hop: the gateway checks it, and sends it to the workers.
    gateway = Gateway([m.url for m in members], key, Path(log_dir) / f"{name}-gateway.log",
                      policy=settings.gateway_policy or spec.gateway_policy, host=settings.host,
                      boot_timeout=settings.boot_timeout, env=members[0].environment())
    return Fleet(members, gateway)


def go_offline() -> None:
    """Nothing at test time reaches the hub unless asked: a missing file fails fast and says so.

    huggingface_hub and datasets read the variable once, at import: one imported before this (by the user's
    conftest, say) would otherwise retry the unreachable hub with back-off for minutes.
    """
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[variable] = "1"
    if "huggingface_hub.constants" in sys.modules:
        sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = True
    if "datasets.config" in sys.modules:
        sys.modules["datasets.config"].HF_HUB_OFFLINE = sys.modules["datasets.config"].HF_DATASETS_OFFLINE = True


@contextmanager
def serving(spec, settings, log_dir: Path, worker: str | None = None, *, incumbent: bool = False,
            progress=None):
    """The server for ``spec``, started for the block and always stopped after it."""
    server = server_for(spec, settings, log_dir, worker, incumbent=incumbent, progress=progress)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def client_for(server, settings, dimensions: int | None = None):
    """The real ``openai`` client bound to ``server``, counting every attempt; close it (or use ``with``)."""
    from .client import EmbeddingClient  # openai takes 0.6 s to import: not for every pytest run

    return EmbeddingClient(server.url, server.served_model(), api_key=server.api_key,
                           timeout=settings.request_timeout, dimensions=dimensions)


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _unwind_on_sigterm() -> None:
    # A CI runner cancelling a job sends SIGTERM, whose default kills pytest without teardown.
    # Unwinding as for Ctrl-C lets session teardown stop the servers instead of orphaning them.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
