"""GPU memory of a server's process tree through NVML, with the fallback containers need."""

from __future__ import annotations

from dataclasses import dataclass

from ..facts.nvml import nvml
from .memory import process_tree

PER_PROCESS = "per-process (NVML)"
DEVICE_DELTA = "device-level delta (NVML)"


@dataclass(frozen=True)
class GpuMemory:
    bytes: int
    method: str  # PER_PROCESS or DEVICE_DELTA
    devices: tuple[int, ...]

    def note(self) -> str:
        if self.method == PER_PROCESS:
            return f"{self.method}, GPUs {list(self.devices)}"
        return (f"{self.method}, GPUs {list(self.devices)}: NVML does not list the server's pids (a container's "
                "pid namespace?), so this is device memory used now minus before the server started")


def tree_gpu_memory(pid: int, before: dict[int, int], indexes: list[int] | None = None) -> GpuMemory | None:
    """GPU memory held by the tree rooted at ``pid``; None without NVML or GPUs.

    ``before`` is ``device_used_bytes()`` taken before the server started, for the fallback.
    """
    with nvml() as lib:
        if lib is None:
            return None
        pids = {proc.pid for proc in process_tree(pid)}
        chosen = list(indexes if indexes is not None else range(lib.nvmlDeviceGetCount()))
        if not chosen:
            return None
        total, seen_on = 0, []
        for index in chosen:
            handle = lib.nvmlDeviceGetHandleByIndex(index)
            for proc in lib.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid in pids and proc.usedGpuMemory:
                    total += int(proc.usedGpuMemory)
                    seen_on.append(index)
        if seen_on:
            return GpuMemory(total, PER_PROCESS, tuple(sorted(set(seen_on))))
        now = {i: int(lib.nvmlDeviceGetMemoryInfo(lib.nvmlDeviceGetHandleByIndex(i)).used) for i in chosen}
        delta = sum(max(0, now[i] - before.get(i, 0)) for i in chosen)
        return GpuMemory(delta, DEVICE_DELTA, tuple(chosen))
