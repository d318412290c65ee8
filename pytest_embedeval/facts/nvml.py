"""NVML, opened and closed in one place: every question the plugin asks a GPU goes through ``nvml()``."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def nvml():
    """pynvml, initialised for the block; None where there is no NVML (no driver, no GPU, no package)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        yield None
        return
    try:
        yield pynvml
    finally:
        pynvml.nvmlShutdown()


def gpu_memory(indexes: list[int] | None = None) -> dict[int, tuple[int, int]]:
    """(total, free) bytes of each GPU (all, or ``indexes``); {} without NVML."""
    with nvml() as lib:
        if lib is None:
            return {}
        chosen = indexes if indexes is not None else range(lib.nvmlDeviceGetCount())
        info = {i: lib.nvmlDeviceGetMemoryInfo(lib.nvmlDeviceGetHandleByIndex(i)) for i in chosen}
        return {i: (int(m.total), int(m.free)) for i, m in info.items()}


def device_used_bytes(indexes: list[int] | None = None) -> dict[int, int]:
    """Memory in use on each GPU (all, or ``indexes``); {} when there is no NVML."""
    with nvml() as lib:
        if lib is None:
            return {}
        chosen = indexes if indexes is not None else range(lib.nvmlDeviceGetCount())
        return {i: int(lib.nvmlDeviceGetMemoryInfo(lib.nvmlDeviceGetHandleByIndex(i)).used) for i in chosen}
