"""Which servers a run tests: the candidate (booted for the model, or at a URL) and, in a paired run, the
reference beside it; where each runs when they share a machine."""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from .engines.remote import RemoteServer, UnreachableServer
from .engines.sglang import ServerError as _BootError
from .engines.sglang import SGLangServer, detect_device
from .settings import Settings, gpu_count, worker_gpus


# On one GPU each of two servers gets this share of what is free for its static pool (weights and KV
# cache); the rest stays for activations and CUDA graphs, as SGLang's own default leaves ~12% of a GPU.
_PAIR_SHARE = 0.85 / 2
# The least KV-cache room worth booting a server for, as a fraction of its weights.
_KV_ROOM = 0.2


class NoRoomForTwo(ValueError):
    """Two servers do not fit on the one GPU they would share: the sentence gives the numbers."""


CannotServe = (_BootError, UnreachableServer, NoRoomForTwo)  # no server to test, and the sentence says why


def server_for(spec, settings: Settings, log_dir: Path, worker: str | None = None, *, reference: bool = False,
               progress=None):
    """The server (not yet started) for ``spec``: the candidate, or with ``reference`` the paired reference;
    ``progress(line)`` hears how a long boot is going."""
    if not settings.allow_downloads:
        go_offline()
    pair = settings.reference
    url = pair.url if reference else settings.url
    if url:
        return RemoteServer(url, spec, api_key=settings.api_key)
    device = detect_device() if settings.device == "auto" else settings.device
    arguments = settings.server_args
    if reference and pair.server_args is not None:
        arguments = pair.server_args
    allotted = placement(settings, device, worker, reference)
    if allotted.memory_fraction and not any(a.startswith("--mem-fraction-static") for a in arguments):
        arguments = (*arguments, "--mem-fraction-static", f"{allotted.memory_fraction:.3f}")
    _unwind_on_sigterm()
    return SGLangServer(
        spec, device=device, extra_args=tuple(arguments), api_key=settings.api_key,
        log_path=Path(log_dir) / f"sglang-{spec.alias}{'-reference' if reference else ''}.log",
        boot_timeout=settings.boot_timeout, gpus=allotted.gpus, cpu_threads=allotted.cpu_threads,
        host=settings.host, offline=not settings.allow_downloads,
        python=(pair.python if reference and pair.python else sys.executable), any_sglang=settings.any_sglang,
        progress=progress)


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


class Allotment(NamedTuple):
    """What one server of the run gets of the machine."""

    gpus: tuple[int, ...] | None  # pinned GPUs; None = what the environment says
    memory_fraction: float | None = None  # SGLang's --mem-fraction-static when two servers share one GPU
    cpu_threads: int | None = None  # OpenMP threads when two servers share the CPU; None = torch's own


def placement(settings: Settings, device: str, worker: str | None, reference: bool = False) -> Allotment:
    """Where one server of the run runs.

    A paired run that boots both servers gives each its own GPU where two are there to use; on one GPU
    both share it, each with a static memory fraction sized for two, or the run refuses with the numbers.
    On a CPU each gets half the cores (see paired_cpu_threads).
    """
    gpus = worker_gpus(settings.gpus, worker, device)
    pair = settings.reference
    if pair is None or pair.url or settings.url:
        return Allotment(gpus)
    if device == "cpu":
        return Allotment(gpus, cpu_threads=paired_cpu_threads())
    usable = list(settings.gpus) if settings.gpus else list(range(gpu_count()))
    if worker is None and len(usable) >= 2:
        return Allotment((usable[1 if reference else 0],))
    index = (gpus or (usable[0],))[0] if usable else 0
    from .nvml import gpu_memory

    total, free = gpu_memory([index]).get(index, (0, 0))
    if not total:
        return Allotment(gpus)
    specs = [settings.specs[0], pair.spec]
    return Allotment(gpus, share_one_gpu(index, total, free, [s.parameter_count for s in specs],
                                         [s.alias for s in specs]))


def paired_cpu_threads() -> int:
    """OpenMP threads for each of two servers that share the CPU: half its cores each.

    With torch's default, a thread per core each, a forward pass waits for whichever of its threads the
    other server (or any busy process) has descheduled: one busy core made a lone minilm server's p50 on a
    2-core machine 2.2 times as long (57.6 -> 127.1 ms); with one thread, 1.14 times (60.5 -> 68.9 ms).
    On Intel AMX and Arm hosts SGLang binds a thread to each core of a NUMA node itself after reading
    this, unless SGLANG_CPU_OMP_THREADS_BIND says otherwise.
    """
    from .hardware import usable_cores

    return max(1, usable_cores() // 2)


def share_one_gpu(index: int, total: int, free: int, parameters: list[int | None], names: list[str]) -> float:
    """SGLang's --mem-fraction-static for each of two servers on GPU ``index``; NoRoomForTwo when they cannot fit."""
    fraction = _PAIR_SHARE * free / total
    room = fraction * total
    gb = 1e9
    for name, count in zip(names, parameters):
        needed = (count or 0) * 2 * (1 + _KV_ROOM)  # 16-bit weights plus the least KV cache worth having
        if needed > room:
            raise NoRoomForTwo(
                f"a paired run would put two servers on GPU {index} ({free / gb:.1f} GB free of {total / gb:.1f} GB): "
                f"each may take {room / gb:.1f} GB, but {name} needs {needed / gb:.1f} GB (weights "
                f"{count * 2 / gb:.1f} GB plus {_KV_ROOM:.0%} for its KV cache). Give the reference a GPU of its own "
                "(--embed-gpus 0,1), or point --embed-reference-url at a server running elsewhere")
    return fraction


@contextmanager
def serving(spec, settings: Settings, log_dir: Path, worker: str | None = None, *, reference: bool = False,
            progress=None):
    """The server for ``spec``, started for the block and always stopped after it."""
    server = server_for(spec, settings, log_dir, worker, reference=reference, progress=progress)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def client_for(server, settings: Settings, dimensions: int | None = None):
    """The real ``openai`` client bound to ``server``, counting every attempt; close it (or use ``with``)."""
    from .client import EmbeddingClient  # openai takes 0.6 s to import: not for every pytest run

    return EmbeddingClient(server.url, server.served_model(), api_key=settings.api_key,
                           timeout=settings.request_timeout, dimensions=dimensions)


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _unwind_on_sigterm() -> None:
    # A CI runner cancelling a job sends SIGTERM, whose default kills pytest without teardown.
    # Unwinding as for Ctrl-C lets session teardown stop the servers instead of orphaning them.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
